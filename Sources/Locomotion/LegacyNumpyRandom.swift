/// NumPy's legacy global generator (`np.random.seed(s)` then `np.random.uniform`): MT19937
/// seeded with `init_genrand`, doubles from two 32-bit draws. Only for reproducing the fixed
/// task sets reference code drew that way (oyster's cheetah-vel: seed 1337); MetaRL's own
/// randomness is `Xoshiro256`.
struct LegacyNumpyRandom {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// The generator `np.random.seed(seed)` leaves.
    init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for i in 0..<624 {
                let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7fff_ffff)
                state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_b0df)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// `np.random.random_sample()`: 53 random bits in [0, 1).
    mutating func nextDouble() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864 + b) / 9_007_199_254_740_992
    }

    /// `np.random.uniform(low, high)`.
    mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * nextDouble() }
}
