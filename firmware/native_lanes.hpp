// Integer SIMD lanes and the casts every native scoring kernel shares: sixteen events side by side,
// one per int32 lane. firmware/native.py puts this text in place of the @LANES@ line of a kernel's
// source (native_scoring.cpp, native_regions.cpp) before it compiles it.

constexpr int kBlock = 16;
typedef int32_t Lanes __attribute__((vector_size(4 * kBlock), may_alias));  // one int32 per event of a block

enum Rounding { TRN = 0, RND = 1, RND_CONV = 2 };

// A mantissa times 2**Shift -> the mantissa, rounded as Mode says.
template <int Shift, int Mode>
inline Lanes round_shift(Lanes v) {
    if constexpr (Shift == 0) {
        return v;
    } else {
        const Lanes floor_part = v >> Shift;
        if constexpr (Mode == TRN) return floor_part;
        const Lanes rest = v & ((1 << Shift) - 1);
        constexpr int32_t half = 1 << (Shift - 1);
        if constexpr (Mode == RND) return floor_part - (rest >= half);  // a true comparison is -1
        return floor_part - ((rest > half) | ((rest == half) & ((floor_part & 1) != 0)));
    }
}

template <int32_t Low, int32_t High>
inline Lanes clamp(Lanes v) {
    const Lanes low = Lanes{} + Low, high = Lanes{} + High;
    v = v < low ? low : v;
    return v > high ? high : v;
}

// A layer's cast of its accumulators: ReLU, rounding, saturation.
template <int Shift, int Mode, bool Relu, int32_t Low, int32_t High>
inline Lanes cast(Lanes v) {
    if constexpr (Relu) v = v > Lanes{} ? v : Lanes{};
    return clamp<Low, High>(round_shift<Shift, Mode>(v));
}
