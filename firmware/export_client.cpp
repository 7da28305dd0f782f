// A client of exported emulator packages (firmware.export), as CMSSW loads them: dlopen each
// NAME_vN.so, create the model through its extern "C" create_model(), and score events with
// prepare_input / predict / read_result. Several packages are loaded and used in one process.
//
// Compiled by firmware.export_client with -include of a generated header that includes each
// package's interface header and defines MODELS(X) as X(INPUT_TYPE, RESULT_TYPE, NAMESPACE) ...
// (the types and namespace as interface.json names them).
//
//   client describe                      one JSON line per package: the types and sizes of its header
//   client score LIB IN OUT [LIB IN OUT ...]  per package (in MODELS order): IN holds float64 inputs
//       on the grid, n_inputs per event; OUT gets float64 (score, accept) per event. The events are
//       scored interleaved, every package's model alive at once.
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "emulator.h"

namespace {

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
constexpr bool is_signed(const ap_fixed_base<W, I, S, Q, O, N>*) { return S; }

template <class T>
std::string describe_type() {
    return "{\"width\": " + std::to_string(T::width) + ", \"integer\": " + std::to_string(T::iwidth) +
           ", \"signed\": " + (is_signed(static_cast<const T*>(nullptr)) ? "true" : "false") + "}";
}

[[noreturn]] void fail(const std::string& message) {
    std::cerr << "export_client: " << message << std::endl;
    std::exit(1);
}

std::vector<double> read_doubles(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail("cannot read " + path);
    std::vector<double> values(static_cast<std::size_t>(in.tellg()) / sizeof(double));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(double)));
    return values;
}

// one loaded package: its library, its model, its events and its scores
template <class Input, class Result>
struct Loaded {
    void* library = nullptr;
    hls4mlEmulator::Model* model = nullptr;
    hls4mlEmulator::destroy_model_cls* destroy = nullptr;
    std::vector<Input> inputs;
    std::vector<double> outputs;
    std::string out_path;
    std::size_t n_inputs = 0, n_results = 0, score_index = 0, accept_index = 0;

    void load(const std::string& path, const std::string& in_path, const std::string& out) {
        library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!library) fail(std::string("dlopen: ") + dlerror());
        auto* create = reinterpret_cast<hls4mlEmulator::create_model_cls*>(dlsym(library, "create_model"));
        destroy = reinterpret_cast<hls4mlEmulator::destroy_model_cls*>(dlsym(library, "destroy_model"));
        if (!create || !destroy) fail(path + ": no create_model/destroy_model");
        model = create();
        std::vector<double> values = read_doubles(in_path);
        if (values.size() % n_inputs != 0) fail(in_path + ": not a whole number of events");
        inputs.assign(values.begin(), values.end());  // the values are on the grid: exact
        outputs.reserve(2 * (values.size() / n_inputs));
        out_path = out;
    }

    std::size_t events() const { return inputs.size() / n_inputs; }

    void score(std::size_t event) {
        std::vector<Result> result(n_results);
        model->prepare_input(&inputs[event * n_inputs]);
        model->predict();
        model->read_result(result.data());
        outputs.push_back(result[score_index].to_double());
        outputs.push_back(result[accept_index].to_double());
    }

    void finish() {
        std::ofstream out(out_path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(outputs.data()),
                  static_cast<std::streamsize>(outputs.size() * sizeof(double)));
        if (!out) fail("cannot write " + out_path);
        destroy(model);
        dlclose(library);
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string verb = argc > 1 ? argv[1] : "";
    if (verb == "describe") {
#define DESCRIBE(INPUT, RESULT, NS)                                                                          \
    std::cout << "{\"namespace\": \"" #NS "\", \"input\": " << describe_type<INPUT>()                       \
              << ", \"n_inputs\": " << NS::N_INPUTS << ", \"result\": " << describe_type<RESULT>()             \
              << ", \"n_results\": " << NS::N_RESULTS << ", \"score_index\": " << NS::SCORE_INDEX            \
              << ", \"accept_index\": " << NS::ACCEPT_INDEX << ", \"score\": " << describe_type<NS::score_t>() \
              << "}" << std::endl;
        MODELS(DESCRIBE)
        return 0;
    }
    if (verb != "score") fail("usage: client describe | client score LIB IN OUT [LIB IN OUT ...]");
    int arg = 2;
    std::size_t n_events = 0;
#define LOAD(INPUT, RESULT, NS)                                                                          \
    Loaded<INPUT, RESULT> NS##_loaded;                                                                   \
    NS##_loaded.n_inputs = NS::N_INPUTS;                                                                 \
    NS##_loaded.n_results = NS::N_RESULTS;                                                               \
    NS##_loaded.score_index = NS::SCORE_INDEX;                                                           \
    NS##_loaded.accept_index = NS::ACCEPT_INDEX;                                                         \
    if (arg + 3 > argc) fail("score: LIB IN OUT for every package");                                    \
    NS##_loaded.load(argv[arg], argv[arg + 1], argv[arg + 2]);                                           \
    arg += 3;                                                                                            \
    n_events = std::max(n_events, NS##_loaded.events());
    MODELS(LOAD)
#define SCORE(INPUT, RESULT, NS) \
    if (event < NS##_loaded.events()) NS##_loaded.score(event);
    for (std::size_t event = 0; event < n_events; ++event) {
        MODELS(SCORE)
    }
#define FINISH(INPUT, RESULT, NS) NS##_loaded.finish();
    MODELS(FINISH)
    return 0;
}
