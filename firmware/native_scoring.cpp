// The firmware's whole scoring for one model, in integer SIMD: raw events -> input mantissas ->
// the Dense layers on integer mantissas -> the score, sixteen events side by side (one per
// int32 lane), bit-exact with the emulator.
//
// firmware/native.py writes the model's part in place of the @MODEL@ line (namespace `net`: the
// grid's constants, the layers as straight-line code on `Lanes` with the weights as constants,
// the score's sum of squares and constants) and compiles the whole with g++ -O3 -march=native -ffp-contract=off.
//
// Exactness, step by step (firmware/native.py checks every bound before it writes a model):
// - projection: the same double operations as firmware/compiled.py's _project_and_multiply, in
//   the same order (float -> double, log1p for pT, minus the center, divided by the step, floor,
//   clipped to the grid). For pT, log1p is replaced by a table lookup that gives the very same
//   mantissa: projected pT never decreases with pT, so mantissa m is reached at one threshold,
//   the smallest float that projects to m or above; `prepare` finds every threshold by bisection
//   with log1p itself, and checks the floats around each one, when the library is loaded. Where
//   the check fails, the kernel keeps log1p.
// - a layer: weights and biases are integers at a power-of-two scale 2**-shift of the result
//   mantissa, so each lane's accumulator is the exact integer the emulator's float product
//   holds; ReLU, then rounding by a shift (TRN floor, RND half up, RND_CONV half to even),
//   then saturation.
// - the score: each error term (output minus input, or the output) on a common integer scale,
//   rounded and saturated to the error type, squared and summed, shifted onto the score's grid
//   (floor), capped; with a multiplicity prior, the prior's mantissa for the event's counts of
//   filled slots added and capped again; written in the software's units: m * lsb / divisor.
// An event with a NaN in a filled slot gets a NaN score and is counted: the caller rescores it
// on the compiled numpy path, which defines what NaN does. Asked for it, the kernel also says of
// each event whether all 76 of its values are finite (the replay quarantines the others), in the
// same pass over the event that projects it, so the caller need not read the batch again.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

constexpr int kSlots = 19;
constexpr int kFeatures = 4;
constexpr int kInputs = kSlots * 3;
// @LANES@

// @MODEL@

// Per event of a block: the index leptons * (jet slots + 1) + jets of its counts of filled slots
// (a slot is filled when any of its three input mantissas is non-zero), into net::kPrior.
inline void prior_index(const Lanes* __restrict q, Lanes* __restrict index) {
    Lanes leptons = {}, jets = {};
    for (int s = net::kLeptonSlots[0]; s < net::kLeptonSlots[1]; ++s)
        leptons -= (q[3 * s] | q[3 * s + 1] | q[3 * s + 2]) != 0;  // a true comparison is -1
    for (int s = net::kJetSlots[0]; s < net::kJetSlots[1]; ++s)
        jets -= (q[3 * s] | q[3 * s + 1] | q[3 * s + 2]) != 0;
    *index = leptons * (net::kJetSlots[1] - net::kJetSlots[0] + 1) + jets;
}

namespace {

inline int32_t project_value(double v, int k, bool log_pt) {
    if (log_pt) v = std::log1p(v);
    double mant = std::floor((v - net::kCenter[k]) / net::kStep[k]);
    mant = mant < net::kGridLow ? net::kGridLow : (mant > net::kGridHigh ? net::kGridHigh : mant);
    return static_cast<int32_t>(mant);
}

// Floats as unsigned keys in the order of their values (-0 just below +0; no NaN here).
inline uint32_t key_of(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

inline float float_of(uint32_t key) {
    const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

constexpr uint32_t kMinusInf = 0x007fffffu, kPlusInf = 0xff800000u;  // key_of(-inf), key_of(+inf)
constexpr uint32_t kSmallestPositive = 0x80000001u;  // the key of the smallest positive float
constexpr int kMaxSteps = 4;  // the most thresholds one bucket of a pT table may hold

// pT -> mantissa without log1p: thresholds[i] is the key of the smallest positive float that
// projects to kGridLow + 1 + below + i or above (those every positive float reaches, `below`,
// and those only +inf reaches are left out), then kMaxSteps sentinels; first[j] counts the
// thresholds under bucket j (the keys whose bits above `shift` are base + j), first[buckets] all.
struct PtTable {
    std::vector<uint32_t> thresholds;
    std::vector<uint16_t> first;
    int64_t base = 0, buckets = 0;
    int32_t below = 0;
    int shift = 16, steps = 0;

    int32_t operator()(float pt) const {
        const uint32_t key = key_of(pt);
        if (key >= kPlusInf) return static_cast<int32_t>(net::kGridHigh);
        int64_t j = static_cast<int64_t>(key >> shift) - base;
        j = j < 0 ? 0 : (j > buckets ? buckets : j);
        const uint32_t* t = thresholds.data() + first[j];
        int32_t i = first[j];
        for (int r = 0; r < kMaxSteps; ++r) i += t[r] <= key;  // sorted: counts those passed; no branch
        return static_cast<int32_t>(net::kGridLow) + below + static_cast<int32_t>(i);
    }
};

// The smallest key of a positive float projecting to `target` or above at input k.
uint32_t threshold(int k, int32_t target) {
    uint32_t lo = kSmallestPositive, hi = kPlusInf;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (project_value(float_of(mid), k, true) >= target) hi = mid; else lo = mid + 1;
    }
    return lo;
}

bool build_table(int k, PtTable& table) {
    const int32_t low = static_cast<int32_t>(net::kGridLow), high = static_cast<int32_t>(net::kGridHigh);
    std::vector<uint32_t>& t = table.thresholds;
    for (int32_t target = low + 1; target <= high; ++target) {
        const uint32_t key = threshold(k, target);
        if (key == kSmallestPositive) ++table.below;
        else if (key < kPlusInf) t.push_back(key);
    }
    const size_t n = t.size();
    if (n == 0 || n >= 65536) return false;
    for (table.shift = 16; table.shift >= 8; --table.shift) {  // the widest buckets needing few steps
        table.base = t.front() >> table.shift;
        table.buckets = (t.back() >> table.shift) - table.base + 1;
        if (table.buckets > 65536) return false;
        table.first.assign(table.buckets + 1, 0);
        table.steps = 0;
        size_t count = 0;
        for (int64_t j = 0; j <= table.buckets; ++j) {
            const size_t before = count;
            while (count < n && t[count] < (static_cast<uint64_t>(table.base + j) << table.shift)) ++count;
            table.first[j] = static_cast<uint16_t>(count);
            if (static_cast<int>(count - before) > table.steps) table.steps = static_cast<int>(count - before);
        }
        if (table.steps <= kMaxSteps) break;
    }
    if (table.steps > kMaxSteps) return false;
    t.resize(n + kMaxSteps, 0xffffffffu);  // the last bucket's steps read these
    for (size_t i = 0; i < n; ++i) {  // the floats around each threshold agree with the table
        for (int64_t d = -4; d <= 4; ++d) {
            const int64_t key = static_cast<int64_t>(t[i]) + d;
            if (key < kSmallestPositive || key > kPlusInf) continue;
            const float x = float_of(static_cast<uint32_t>(key));
            if (project_value(x, k, true) != table(x)) return false;
        }
    }
    return project_value(float_of(kSmallestPositive), k, true) == table(float_of(kSmallestPositive))
        && project_value(float_of(kPlusInf), k, true) == table(float_of(kPlusInf));
}

std::vector<PtTable> tables;  // one per slot; empty: project pT with log1p

// The angles of a block's filled slots, projected together (the divisions vectorize).
struct Angles {
    double value[kBlock * kSlots * 2];
    int32_t input[kBlock * kSlots * 2];
    int32_t* out[kBlock * kSlots * 2];
    int n = 0;

    void add(float v, int k, int32_t* where) {
        value[n] = v;
        input[n] = k;
        out[n++] = where;
    }

    void project() {
        alignas(64) double mant[kBlock * kSlots * 2];
        for (int i = 0; i < n; ++i) {
            double m = std::floor((value[i] - net::kCenter[input[i]]) / net::kStep[input[i]]);
            mant[i] = m < net::kGridLow ? net::kGridLow : (m > net::kGridHigh ? net::kGridHigh : m);
        }
        for (int i = 0; i < n; ++i) *out[i] = static_cast<int32_t>(mant[i]);
        n = 0;
    }
};

// Whether all of an event's values are finite (no exponent of all ones), without a branch per value.
inline bool all_finite(const float* __restrict event) {
    uint32_t special = 0;
    for (int i = 0; i < kSlots * kFeatures; ++i) {
        uint32_t u;
        std::memcpy(&u, event + i, sizeof u);
        special |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
    }
    return special == 0;
}

// Lane b of q from one event: pT now, the angles into `angles`; false on a NaN.
inline bool project(const float* __restrict event, int32_t (*__restrict q)[kBlock], int b, Angles& angles) {
    uint32_t filled = 0;  // the slots with pT > 0, found without a branch per slot
    for (int s = 0; s < kSlots; ++s) filled |= static_cast<uint32_t>(event[s * kFeatures] > 0) << s;
    const int start = angles.n;
    while (filled) {
        const int s = __builtin_ctz(filled);
        filled &= filled - 1;
        const float* slot = event + s * kFeatures;
        const int k = 3 * s;
        if (std::isnan(slot[1]) || std::isnan(slot[2])) {
            angles.n = start;
            return false;
        }
        q[k][b] = tables.empty() ? project_value(slot[0], k, net::kLogPt) : tables[s](slot[0]);
        angles.add(slot[1], k + 1, &q[k + 1][b]);
        angles.add(slot[2], k + 2, &q[k + 2][b]);
    }
    return true;
}

}  // namespace

extern "C" {

// Builds the pT tables of a log-pT model; returns 1 when the kernel uses them (0: log1p).
int native_prepare() {
    if (!net::kLogPt || !tables.empty()) return !tables.empty();
    std::vector<PtTable> built(kSlots);
    for (int s = 0; s < kSlots; ++s)
        if (!build_table(3 * s, built[s])) return 0;
    tables = std::move(built);
    return 1;
}

// Scores of n events (n x 19 x 4 float32, C order) into scores; returns how many events had a NaN
// in a filled slot (their scores are NaN). With `finite` (else null), finite[i] = 1 when all of
// event i's values are finite, else 0.
int64_t native_scores(int64_t n, const float* particles, double* scores, uint8_t* finite) {
    alignas(64) int32_t q[kInputs][kBlock];
    Angles angles;  // on the stack: thread-local storage in a shared library costs a call per access
    int64_t with_nan = 0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int lanes = n - start < kBlock ? static_cast<int>(n - start) : kBlock;
        bool nan[kBlock] = {};
        std::memset(q, 0, sizeof q);  // the inputs of empty slots
        for (int b = 0; b < kBlock; ++b) {
            const float* event = particles + (start + b) * kSlots * kFeatures;
            if (finite != nullptr && b < lanes) finite[start + b] = all_finite(event);
            if (b < lanes && project(event, q, b, angles)) continue;
            nan[b] = b < lanes;
            for (int k = 0; k < kInputs; ++k) q[k][b] = 0;  // a lane without an event, or with a NaN
        }
        angles.project();
        alignas(64) int32_t totals[kBlock], prior[kBlock];
        net::network(reinterpret_cast<const Lanes*>(q), reinterpret_cast<Lanes*>(totals));
        if constexpr (net::kHasPrior) prior_index(reinterpret_cast<const Lanes*>(q), reinterpret_cast<Lanes*>(prior));
        for (int b = 0; b < lanes; ++b) {
            int64_t mant = totals[b];
            mant = net::kScoreShift >= 0 ? mant * (int64_t(1) << net::kScoreShift) : mant >> -net::kScoreShift;
            mant = mant > net::kSquaresHigh ? net::kSquaresHigh : mant;
            if constexpr (net::kHasPrior) {
                mant += net::kPrior[prior[b]];
                mant = mant > net::kScoreHigh ? net::kScoreHigh : mant;
            }
            scores[start + b] = nan[b] ? NAN : static_cast<double>(mant) * net::kLsb / net::kDivisor;
            with_nan += nan[b];
        }
    }
    return with_nan;
}

}  // extern "C"
