import Foundation

/// Wall-clock timing for benchmarks: the median of repeated measurements.
public enum Timing {
    /// Seconds since an arbitrary origin (monotonic).
    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// The median over `samples` measurements of the seconds one call of `body` takes,
    /// each measurement averaging `inner` calls, after `warmup` untimed calls.
    public static func median(samples: Int, inner: Int = 1, warmup: Int = 1, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<samples {
            let start = now()
            for _ in 0..<inner { body() }
            times.append((now() - start) / Double(inner))
        }
        return medianOf(times)
    }

    /// `median` for a body that can throw.
    public static func medianThrowing(samples: Int, warmup: Int = 1, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<samples {
            let start = now()
            try body()
            times.append(now() - start)
        }
        return medianOf(times)
    }

    public static func medianOf(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
