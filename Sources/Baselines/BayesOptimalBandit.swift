import Envs
import TensorCore

/// Why an exact Bayes-optimal or Gittins computation cannot be done as asked.
public struct BaselineError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The exact Bayes-optimal policy for a Bernoulli bandit with Beta(1, 1) priors and a
/// known number of pulls, by dynamic programming over the joint posterior:
///
///     V(b) = max_a  p_a(b)·(1 + V(b + success_a)) + (1 − p_a(b))·V(b + failure_a),
///     V(b) = 0 when no pulls remain,  p_a(b) = (1 + s_a) / (2 + s_a + f_a).
///
/// Arms are exchangeable, so a belief is stored with its arms sorted; values are memoised.
/// Arms not pulled yet are all alike and only one of them is tried, so a belief's key holds
/// just the pulled arms (fewer than n), and the value does not depend on k once k ≥ n:
/// no trial of n pulls can touch more than n arms.
/// This is the true ceiling of expected trial return that a meta-learner can approach.
public struct BayesOptimalBandit: PosteriorBanditStrategy {
    public var counts = BetaCounts()
    var table: ValueTable?

    public init() {}

    /// The most belief states the memo may hold (about 1 GB).
    public static let stateLimit = 20_000_000.0

    /// Checks that `arms` × `pulls` fits: the (s, f) of the arms a belief has pulled (at most
    /// min(k, n − 1) of them) must pack into the 64-bit key, and the belief states, about
    /// C(n + 2k′, 2k′) / k′! of them with k′ = min(k, n), into memory.
    public static func check(arms: Int, pulls: Int) throws(BaselineError) {
        let effectiveArms = Swift.min(arms, pulls), keyedArms = Swift.min(arms, Swift.max(pulls - 1, 0))
        var states = 1.0
        for i in stride(from: 1, through: 2 * effectiveArms, by: 1) { states *= Double(pulls + i) / Double(i) }
        for i in stride(from: 1, through: effectiveArms, by: 1) { states /= Double(i) }
        let examples = "e.g. k=2 with n ≤ 173, k=5 with n ≤ 33, any k with n ≤ 10"
        guard bitsPerArm(pulls) * keyedArms <= 64 else {
            throw BaselineError(message: "bayes-optimal: k=\(arms), n=\(pulls) is too large for exact dynamic programming (a belief needs \(bitsPerArm(pulls) * keyedArms) bits, the memo's key holds 64; \(examples))")
        }
        guard states <= stateLimit else {
            throw BaselineError(message: "bayes-optimal: k=\(arms), n=\(pulls) is too large for exact dynamic programming (about \(String(format: "%.1e", states)) belief states; the limit is \(String(format: "%.0e", stateLimit)), \(examples))")
        }
    }

    static func bitsPerArm(_ pulls: Int) -> Int {
        let cells = (pulls + 1) * (pulls + 1)
        return Int.bitWidth - (cells - 1).leadingZeroBitCount
    }

    public mutating func start(arms: Int, pulls: Int) {
        counts.start(arms: arms)
        if table == nil || table!.arms != arms || table!.pulls != pulls {
            table = ValueTable(arms: arms, pulls: pulls)
        }
    }

    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        var s = counts.successes, f = counts.failures
        // Arms in the same belief state have the same value: compute it once per state.
        var byState: [Int: Double] = [:]
        let q = (0..<counts.arms).map { a -> Double in
            let state = s[a] << 32 | f[a]
            if let known = byState[state] { return known }
            let p = counts.mean(a)
            s[a] += 1
            let win = table!.value(s, f)
            s[a] -= 1
            f[a] += 1
            let loss = table!.value(s, f)
            f[a] -= 1
            let value = p * (1 + win) + (1 - p) * loss
            byState[state] = value
            return value
        }
        return argmaxFirst(counts.arms) { q[$0] }
    }

    /// The strategy for trials of `pulls` pulls of `arms` arms, its value table made (and
    /// the size checked) up front, so that ``expectedReturn`` and the trials share one table.
    public init(arms: Int, pulls: Int) throws(BaselineError) {
        try Self.check(arms: arms, pulls: pulls)
        start(arms: arms, pulls: pulls)
    }

    /// The expected total reward of a trial of the size last started, over the prior; nil
    /// before any start.
    public var expectedReturn: Double? {
        table.map { $0.value([Int](repeating: 0, count: $0.arms), [Int](repeating: 0, count: $0.arms)) }
    }

    /// The Bayes-optimal expected total reward of a trial of `pulls` pulls of `arms` arms.
    public static func expectedReturn(arms: Int, pulls: Int) throws(BaselineError) -> Double {
        try BayesOptimalBandit(arms: arms, pulls: pulls).expectedReturn!
    }

    /// Memoised V over sorted beliefs (a reference type so policy copies share it).
    final class ValueTable {
        let arms: Int, pulls: Int, bits: Int
        var memo: [UInt64: Double] = [:]

        init(arms: Int, pulls: Int) {
            self.arms = arms
            self.pulls = pulls
            bits = BayesOptimalBandit.bitsPerArm(pulls)
        }

        /// The pulled arms' cells in ascending order, packed; the unpulled arms (cell 0) are
        /// implied by the table's arm count.
        func key(_ cells: [Int]) -> UInt64 {
            var pulled = cells.filter { $0 != 0 }
            pulled.sort()
            var k: UInt64 = 0
            for c in pulled { k = k << UInt64(bits) | UInt64(c) }
            return k
        }

        func value(_ s: [Int], _ f: [Int]) -> Double {
            var total = 0
            for a in 0..<arms { total += s[a] + f[a] }
            if total >= pulls { return 0 }
            let cells = (0..<arms).map { s[$0] * (pulls + 1) + f[$0] }
            let k = key(cells)
            if let v = memo[k] { return v }
            var s = s, f = f
            var best = 0.0
            // Arms in identical belief states give identical values: try one of each.
            var seen = Set<Int>()
            for a in 0..<arms where seen.insert(cells[a]).inserted {
                let p = Double(1 + s[a]) / Double(2 + s[a] + f[a])
                s[a] += 1
                let win = value(s, f)
                s[a] -= 1
                f[a] += 1
                let loss = value(s, f)
                f[a] -= 1
                best = Swift.max(best, p * (1 + win) + (1 - p) * loss)
            }
            memo[k] = best
            return best
        }
    }
}

/// The Gittins index strategy (Gittins 1979) for Beta posteriors with discount γ: pull
/// the arm of highest index, the retirement reward λ at which continuing and retiring
/// are equally good:
///
///     V(a, b) = max( λ/(1 − γ),  p + γ(p·V(a+1, b) + (1 − p)·V(a, b+1)) ),  p = a/(a+b).
///
/// Bayes-optimal for the infinite discounted problem; on a trial of n pulls γ is a tuning
/// knob, by default matched to the trial: γ = 1 − 2/n, the best of 0.7–0.998 on every cell of
/// the RL² paper's Table 1 (n = 10, 100, 500; README, "Bernoulli bandits").
/// The indices of every posterior a trial can reach come from one ``GittinsIndexTable``,
/// built when a trial of more pulls (or another matched discount) starts and shared by the
/// copies of the strategy.
public struct GittinsBandit: PosteriorBanditStrategy {
    /// γ, or nil for 1 − 2/n on a trial of n pulls.
    public var discount: Double?
    /// Pulls of look-ahead beyond the deepest posterior of a trial (the value after them is
    /// max(λ, p)/(1 − γ)), or nil for 5/(1 − γ) between 50 and 5 000: γ^depth below 1 %.
    public var depth: Int?
    public var counts = BetaCounts()
    var cache: TableCache

    public init(discount: Double? = nil, depth: Int? = nil) {
        self.discount = discount
        self.depth = depth
        cache = TableCache()
    }

    /// The discount and look-ahead used on a trial of `pulls` pulls.
    public func settings(pulls: Int) -> (discount: Double, depth: Int) {
        let g = discount ?? Swift.max(0, 1 - 2 / Double(Swift.max(pulls, 1)))
        return (g, depth ?? Swift.min(5000, Swift.max(50, Int((5 / (1 - g) - 1e-9).rounded(.up)))))
    }

    public mutating func start(arms: Int, pulls: Int) {
        counts.start(arms: arms)
        let (g, d) = settings(pulls: pulls)
        if let table = cache.table, table.discount == g, table.depth == d, table.maxPulls >= pulls { return }
        cache.table = GittinsIndexTable(discount: g, depth: d, maxPulls: pulls)
    }

    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        let table = cache.table!
        return argmaxFirst(counts.arms) { a in table.index(alpha: 1 + counts.successes[a], beta: 1 + counts.failures[a]) }
    }

    /// The Gittins index of a Beta(alpha, beta) arm, as a per-pull reward rate, on a trial of
    /// `pulls` pulls (which sets the matched discount; with a given discount it does not matter).
    public func index(alpha: Int, beta: Int, pulls: Int) -> Double {
        var copy = self
        copy.start(arms: 1, pulls: Swift.max(pulls, alpha + beta - 2))
        return copy.cache.table!.index(alpha: alpha, beta: beta)
    }

    final class TableCache { var table: GittinsIndexTable? }
}

/// The Gittins indices of every Beta(a, b) posterior with a, b ≥ 1 and a + b ≤ maxPulls + 2,
/// all at once: for each retirement reward λ of a grid over (0, 1), one backward pass over
/// the triangle of posteriors up to `depth` pulls beyond the deepest gives, for every
/// posterior, how much continuing beats retiring; that advantage falls as λ grows, and a
/// posterior's index is where it crosses zero, interpolated linearly between grid points.
/// Cost: grid × (maxPulls + depth)² / 2 operations (about a second at 500 pulls, depth 300).
public struct GittinsIndexTable: Sendable {
    public let discount: Double
    public let depth: Int
    /// The deepest trial covered: posteriors after up to this many pulls of one arm.
    public let maxPulls: Int
    /// Index of (a, b) at `offset(a + b) + a − 1`.
    var values: [Double]

    /// Retirement rewards tried; the interpolation error is far below their spacing.
    public static let gridSize = 4096

    public init(discount: Double, depth: Int, maxPulls: Int) {
        self.discount = discount
        self.depth = depth
        self.maxPulls = maxPulls
        let deepest = maxPulls + 2          // largest a + b that is looked up
        let horizon = deepest + depth       // a + b where the look-ahead stops
        values = [Double](repeating: 1, count: Self.offset(deepest + 1))
        var previous = [Double](repeating: .infinity, count: values.count)   // advantage at the previous λ
        var found = [Bool](repeating: false, count: values.count)
        var row = [Double](repeating: 0, count: horizon + 1)
        let g = discount, grid = Self.gridSize
        for i in 1..<grid {
            let lambda = Double(i) / Double(grid)
            let retire = lambda / (1 - g)
            // Row t holds the posteriors with a + b = t: row[a] for a = 1 … t − 1.
            let last = 1.0 / Double(horizon)
            for a in 1..<horizon { row[a] = Swift.max(lambda, Double(a) * last) / (1 - g) }
            for t in stride(from: horizon - 1, through: 2, by: -1) {
                let inverse = 1.0 / Double(t)
                let recorded = t <= deepest, base = Self.offset(t) - 1
                for a in 1..<t {
                    let p = Double(a) * inverse
                    // row[a + 1] is (a+1, b) and row[a] is (a, b+1), both of total t + 1.
                    let continuing = p + g * (p * row[a + 1] + (1 - p) * row[a])
                    row[a] = Swift.max(retire, continuing)
                    if recorded {
                        let k = base + a, advantage = continuing - retire
                        if !found[k], advantage <= 0 {
                            let before = previous[k], h = 1.0 / Double(grid)
                            values[k] = before.isFinite ? lambda - h + h * before / (before - advantage) : lambda
                            found[k] = true
                        }
                        previous[k] = advantage
                    }
                }
            }
        }
        // A posterior still ahead at the last grid point has its index in the last interval.
        for k in values.indices where !found[k] { values[k] = 1 - 0.5 / Double(grid) }
    }

    /// Index of Beta(alpha, beta), alpha, beta ≥ 1 and alpha + beta ≤ maxPulls + 2.
    @inline(__always)
    public func index(alpha: Int, beta: Int) -> Double { values[Self.offset(alpha + beta) + alpha - 1] }

    /// Where the posteriors with a + b = t begin: rows 2 … t − 1 hold 1 … t − 2 entries.
    @inline(__always)
    static func offset(_ t: Int) -> Int { (t - 2) * (t - 1) / 2 }
}
