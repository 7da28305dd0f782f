"""The C++ and make files of an exported package (``firmware.export``), as text.

The layout follows cms-hls4ml's emulator packages (AXOL1TL, CICADA): an ``emulator.h`` with the
``hls4mlEmulator::Model`` interface, one class implementing it in ``NAME_emulator_vN.cpp`` with
``extern "C"`` ``create_model()``/``destroy_model()``, the HLS source under ``NN/``, and a Makefile
that builds ``NAME_vN.so``. Everything the class defines lives in the package's namespace, and the
library exports nothing but the two ``extern "C"`` functions (``-fvisibility=hidden``), so several
packages, or several versions of one, load into one process.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("EMULATOR_H", "PackageNames", "emulator_source", "interface_header", "makefile")

#: the Model part of cms-hls4ml/hls4mlEmulatorExtras' include/hls4ml/emulator.h, same class and
#: vtable order: a library built against it loads through that project's ModelLoader as it is
EMULATOR_H = """\
#ifndef HLS4ML_EMULATOR_H_
#define HLS4ML_EMULATOR_H_

// The hls4mlEmulator::Model interface of cms-hls4ml/hls4mlEmulatorExtras (include/hls4ml/emulator.h):
// the same class, so a library built here loads through that project's ModelLoader unchanged.
#include <any>

namespace hls4mlEmulator {
class Model {
public:
    virtual void prepare_input(std::any input) = 0;
    virtual void predict() = 0;
    virtual void read_result(std::any result) = 0;
    virtual ~Model() = default;
};

typedef Model* create_model_cls();
typedef void destroy_model_cls(Model*);
}  // namespace hls4mlEmulator

#endif
"""


@dataclass(frozen=True)
class PackageNames:
    """Every name of one package: ``NAME`` and version ``N`` give ``NAME_vN.so``, its namespace and files."""

    name: str
    version: int

    @property
    def stem(self) -> str:
        """``NAME_vN``: the library's file name without ``.so``, the HLS top function and its source file."""
        return f"{self.name}_v{self.version}"

    @property
    def namespace(self) -> str:
        return f"hls4ml_{self.stem}"

    @property
    def library(self) -> str:
        return f"{self.stem}.so"

    @property
    def emulator_class(self) -> str:
        return f"{self.name}_emulator_v{self.version}"

    @property
    def header(self) -> str:
        """The header a client includes: the input and result types and the sizes."""
        return f"{self.emulator_class}.h"


def interface_header(names: PackageNames, result_type: str) -> str:
    """``NAME_emulator_vN.h``: the element types ``prepare_input``/``read_result`` take and their counts,
    derived from hls4ml's emulation constants (``inputs_t``, ``outputs_t``) so they cannot disagree."""
    guard = f"{names.namespace.upper()}_EMULATOR_H_"
    return f"""\
#ifndef {guard}
#define {guard}

// {names.stem}: what a client of {names.library} needs. prepare_input takes a pointer to N_INPUTS
// values of input_t (already on the input grid: see interface.json's "preprocessing");
// read_result fills N_RESULTS values of result_t: the score at SCORE_INDEX, the accept bit at ACCEPT_INDEX.
#include <cstddef>
#include <tuple>

#include "NN/{names.stem}.h"

namespace {names.namespace} {{
constexpr std::size_t N_INPUTS = std::tuple_size_v<std::tuple_element_t<0, inputs_t>>;
using score_t = std::tuple_element_t<0, outputs_t>::value_type;
using accept_t = std::tuple_element_t<1, outputs_t>::value_type;
// holds every score and the bits 0 and 1 exactly
typedef {result_type} result_t;
constexpr std::size_t N_RESULTS = 2;
constexpr std::size_t SCORE_INDEX = 0;
constexpr std::size_t ACCEPT_INDEX = 1;
}}  // namespace {names.namespace}

#endif
"""


def emulator_source(names: PackageNames) -> str:
    """``NAME_emulator_vN.cpp``: the ``hls4mlEmulator::Model`` of the package, calling the HLS top
    function through hls4ml's ``NAME_vN_emulator(inputs, outputs)``."""
    return f"""\
// {names.stem}: the firmware's score and accept bit as an hls4mlEmulator::Model (cms-hls4ml layout).
#include <algorithm>
#include <any>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "emulator.h"
#include "{names.header}"

namespace {names.namespace} {{

class {names.emulator_class} : public hls4mlEmulator::Model {{
    inputs_t inputs_{{}};
    outputs_t outputs_{{}};

    template <class T>
    static T* pointer(std::any& value, const char* what, const char* expected) {{
        if (value.type() == typeid(T*)) return std::any_cast<T*>(value);
        if constexpr (std::is_const_v<T>) {{
            using Mutable = std::remove_const_t<T>;
            if (value.type() == typeid(Mutable*)) return std::any_cast<Mutable*>(value);
        }}
        throw std::invalid_argument(std::string("{names.stem}::") + what + ": expected a std::any holding " +
                                    expected + ", got " + value.type().name());
    }}

public:
    // input: {names.namespace}::input_t* (or const input_t*) to N_INPUTS values on the input grid
    void prepare_input(std::any input) override {{
        const input_t* values = pointer<const input_t>(input, "prepare_input", "{names.namespace}::input_t*");
        std::copy(values, values + N_INPUTS, std::get<0>(inputs_).begin());
    }}

    void predict() override {{ {names.stem}_emulator(inputs_, outputs_); }}

    // result: {names.namespace}::result_t* to N_RESULTS values: score, accept bit
    void read_result(std::any result) override {{
        result_t* values = pointer<result_t>(result, "read_result", "{names.namespace}::result_t*");
        values[SCORE_INDEX] = std::get<0>(outputs_)[0];
        values[ACCEPT_INDEX] = std::get<1>(outputs_)[0];
    }}
}};

}}  // namespace {names.namespace}

extern "C" __attribute__((visibility("default"))) hls4mlEmulator::Model* create_model() {{
    return new {names.namespace}::{names.emulator_class};
}}

extern "C" __attribute__((visibility("default"))) void destroy_model(hls4mlEmulator::Model* model) {{
    delete model;
}}
"""


def makefile(names: PackageNames) -> str:
    """The Makefile: ``make`` builds ``NAME_vN.so`` with g++ (C++17, -fPIC) and the package's own ap_types."""
    objects = f"build/{names.emulator_class}.o build/{names.stem}.o"
    return f"""\
# {names.stem}: `make` builds {names.library}, an hls4mlEmulator::Model (create_model/destroy_model).
# Needs nothing but a C++17 compiler: the ap_types headers hls4ml ships are in ap_types/.
CXX ?= g++
CXXFLAGS ?= -O3
# required: the library is loaded with dlopen; it exports only create_model and destroy_model
REQUIRED_FLAGS := -std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden -Wno-unknown-pragmas
INCLUDES := -I. -INN -Iap_types
LIB := {names.library}

.PHONY: all clean
all: $(LIB)

$(LIB): {objects}
\t$(CXX) $(CXXFLAGS) $(REQUIRED_FLAGS) -shared $^ -o $@

build/{names.emulator_class}.o: {names.emulator_class}.cpp {names.header} emulator.h NN/{names.stem}.h NN/defines.h
\t@mkdir -p build
\t$(CXX) $(CXXFLAGS) $(REQUIRED_FLAGS) $(INCLUDES) -c $< -o $@

build/{names.stem}.o: NN/{names.stem}.cpp NN/{names.stem}.h NN/defines.h NN/parameters.h
\t@mkdir -p build
\t$(CXX) $(CXXFLAGS) $(REQUIRED_FLAGS) $(INCLUDES) -c $< -o $@

clean:
\trm -rf build $(LIB)
"""
