// The firmware's whole scoring of a calorimeter-region model in integer SIMD: region counts -> input
// mantissas -> the layers on integer mantissas (a convolution as the Dense layer of its nonzero
// weights) -> the score, sixteen events side by side, bit-exact with the emulator.
//
// firmware/native.py writes the model's part in place of the @MODEL@ line (namespace `net`: the
// input grid, the layers as straight-line code with the weights as constants, the score) and the
// shared lanes and casts (native_lanes.hpp) in place of @LANES@, and compiles the whole with
// g++ -O3 -march=native -ffp-contract=off. The steps are those of native_scoring.cpp after its
// projection: a count c is the mantissa c * 2**kInputShift of the input grid; an event with a
// count off the grid (negative, or above it) gets a NaN score and is counted, and the caller
// rescores it on the numpy emulator, which defines what wrapping or saturating the input does.

#include <cmath>
#include <cstdint>
#include <cstring>

// @LANES@

// @MODEL@

extern "C" {

// Scores of n events (n x net::kInputs int32 region counts, C order, io_parallel's flat order) into
// scores; returns how many events had a count off the input grid (their scores are NaN).
int64_t native_region_scores(int64_t n, const int32_t* counts, double* scores) {
    alignas(64) int32_t q[net::kInputs][kBlock];
    int64_t off_grid = 0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int lanes = n - start < kBlock ? static_cast<int>(n - start) : kBlock;
        bool off[kBlock] = {};
        for (int b = 0; b < kBlock; ++b) {
            const int32_t* event = counts + (start + (b < lanes ? b : 0)) * net::kInputs;
            for (int k = 0; k < net::kInputs; ++k) {
                const int32_t c = b < lanes ? event[k] : 0;
                const bool outside = c < net::kCountLow || c > net::kCountHigh;
                off[b] |= outside;
                q[k][b] = (outside ? 0 : c) * (1 << net::kInputShift);
            }
        }
        alignas(64) int32_t totals[kBlock];
        net::network(reinterpret_cast<const Lanes*>(q), reinterpret_cast<Lanes*>(totals));
        for (int b = 0; b < lanes; ++b) {
            int64_t mant = totals[b];
            mant = net::kScoreShift >= 0 ? mant * (int64_t(1) << net::kScoreShift) : mant >> -net::kScoreShift;
            mant = mant > net::kSquaresHigh ? net::kSquaresHigh : mant;
            scores[start + b] = off[b] ? NAN : static_cast<double>(mant) * net::kLsb / net::kDivisor;
            off_grid += off[b];
        }
    }
    return off_grid;
}

}  // extern "C"
