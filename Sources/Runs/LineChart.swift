import Foundation

/// A line chart written as plain SVG: several series, each a line with a shaded band
/// (mean ± standard error), labelled axes with round-number ticks, and a legend.
public struct LineChart {
    /// One curve: points with the band's lower and upper edge at each.
    public struct Series {
        public var label: String
        public var x: [Double]
        public var y: [Double]
        public var low: [Double]
        public var high: [Double]
        /// Draw a marker at every point (for short curves such as adaptation curves).
        public var markers: Bool

        public init(label: String, x: [Double], y: [Double], band: [Double]? = nil, markers: Bool = false) {
            self.label = label
            self.x = x
            self.y = y
            let band = band ?? [Double](repeating: 0, count: y.count)
            low = zip(y, band).map { $0 - $1 }
            high = zip(y, band).map { $0 + $1 }
            self.markers = markers
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var width = 720.0
    public var height = 440.0
    /// A logarithmic x axis (ticks at 1, 2 and 5 times the powers of ten), for curves whose
    /// steps span orders of magnitude, as meta-RL papers plot sample efficiency; points at
    /// x ≤ 0 are left out.
    public var logarithmicX = false

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logarithmicX: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logarithmicX = logarithmicX
    }

    /// Ticks of a logarithmic axis from `low` to `high` (both > 0): the powers of ten, with 2×
    /// and 5× between them when fewer than three powers fall inside.
    static func logarithmicTicks(_ low: Double, _ high: Double) -> [Double] {
        let first = Int(floor(log10(low))), last = Int(ceil(log10(high)))
        let multiples: [Double] = last - first < 3 ? [1, 2, 5] : [1]
        var ticks: [Double] = []
        for e in first...last {
            let power: Double = pow(10, Double(e))
            for m in multiples where m * power >= low * (1 - 1e-9) && m * power <= high * (1 + 1e-9) { ticks.append(m * power) }
        }
        return ticks
    }

    /// Colour-blind-safe palette (Okabe–Ito).
    static let colours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    /// Round tick values covering `low…high`, about `count` of them.
    static func ticks(_ low: Double, _ high: Double, count: Int = 6) -> [Double] {
        guard high > low else { return [low] }
        let raw = (high - low) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var values: [Double] = []
        var v = ceil(low / step) * step
        while v <= high + step * 1e-9 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return values
    }

    /// A tick label: plain for ordinary values, with a k / M / G suffix for large ones.
    static func format(_ v: Double) -> String {
        func plain(_ x: Double) -> String {
            if x == x.rounded() { return String(Int64(x)) }
            var text = String(format: "%.3f", x)
            while text.hasSuffix("0") { text.removeLast() }
            return text
        }
        for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e4, "k")] where abs(v) >= scale {
            return plain(v / (scale == 1e4 ? 1e3 : scale)) + suffix
        }
        if v != 0 && abs(v) < 1e-3 { return String(format: "%.1e", v) }
        return plain(v)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// The chart as an SVG document.
    public func svg() -> String {
        let left = 78.0, right = 24.0, top = 42.0, bottom = 58.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let finite = { (values: [Double]) in values.filter(\.isFinite) }
        let series = logarithmicX ? self.series.map { s in
            var kept = s
            let keep = s.x.indices.filter { s.x[$0] > 0 }
            (kept.x, kept.y, kept.low, kept.high) = (keep.map { s.x[$0] }, keep.map { s.y[$0] }, keep.map { s.low[$0] }, keep.map { s.high[$0] })
            return kept
        } : self.series
        let xs = series.flatMap { finite($0.x) }, ys = series.flatMap { finite($0.low) + finite($0.high) + finite($0.y) }
        var xMin = xs.min() ?? 0, xMax = xs.max() ?? 1, yMin = ys.min() ?? 0, yMax = ys.max() ?? 1
        if xMax <= xMin { (xMin, xMax) = logarithmicX ? (xMin / 2, xMax * 2) : (xMin - 0.5, xMax + 0.5) }
        if yMax <= yMin { yMin -= 0.5; yMax += 0.5 }
        let pad = (yMax - yMin) * 0.05
        yMin -= pad; yMax += pad
        // Whole-number x values (episodes, steps) get whole-number ticks only.
        let integral = xs.allSatisfy { $0 == $0.rounded() }
        let xTicks = logarithmicX ? Self.logarithmicTicks(xMin, xMax)
            : Self.ticks(xMin, xMax).filter { !integral || $0 == $0.rounded() }
        let yTicks = Self.ticks(yMin, yMax)
        let scale: (Double) -> Double = logarithmicX ? { log10($0) } : { $0 }
        func px(_ x: Double) -> Double { left + (scale(x) - scale(xMin)) / (scale(xMax) - scale(xMin)) * plotWidth }
        func py(_ y: Double) -> Double { top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }

        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="24" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

        """
        // Grid and ticks.
        for t in yTicks {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(t)))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Self.format(t))</text>\n"
        }
        for t in xTicks {
            out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + plotHeight))\" stroke=\"#f0f0f0\"/>\n"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(Self.format(t))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>\n"

        // Bands, then lines, so that no band covers a line.
        for (i, s) in series.enumerated() {
            let colour = Self.colours[i % Self.colours.count]
            let points = s.x.indices.filter { s.x[$0].isFinite && s.low[$0].isFinite && s.high[$0].isFinite }
            guard points.count > 1, zip(s.low, s.high).contains(where: { $0 != $1 }) else { continue }
            let upper = points.map { "\(f(px(s.x[$0]))),\(f(py(s.high[$0])))" }
            let lower = points.reversed().map { "\(f(px(s.x[$0]))),\(f(py(s.low[$0])))" }
            out += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(colour)\" fill-opacity=\"0.2\" stroke=\"none\"/>\n"
        }
        for (i, s) in series.enumerated() {
            let colour = Self.colours[i % Self.colours.count]
            let points = s.x.indices.filter { s.x[$0].isFinite && s.y[$0].isFinite }
            let path = points.map { "\(f(px(s.x[$0]))),\(f(py(s.y[$0])))" }.joined(separator: " ")
            out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\"/>\n"
            if s.markers {
                for j in points {
                    out += "<line x1=\"\(f(px(s.x[j])))\" y1=\"\(f(py(s.low[j])))\" x2=\"\(f(px(s.x[j])))\" y2=\"\(f(py(s.high[j])))\" stroke=\"\(colour)\"/>\n"
                    out += "<circle cx=\"\(f(px(s.x[j])))\" cy=\"\(f(py(s.y[j])))\" r=\"3\" fill=\"\(colour)\"/>\n"
                }
            }
        }
        // Legend, top left inside the plot.
        for (i, s) in series.enumerated() {
            let colour = Self.colours[i % Self.colours.count]
            let y = top + 16 + Double(i) * 18
            out += "<rect x=\"\(f(left + 10))\" y=\"\(f(y - 10))\" width=\"\(f(Double(s.label.count) * 6.6 + 34))\" height=\"18\" fill=\"white\" fill-opacity=\"0.85\"/>\n"
            out += "<line x1=\"\(f(left + 14))\" y1=\"\(f(y - 1))\" x2=\"\(f(left + 36))\" y2=\"\(f(y - 1))\" stroke=\"\(colour)\" stroke-width=\"3\"/>\n"
            out += "<text x=\"\(f(left + 42))\" y=\"\(f(y + 3))\">\(Self.escape(s.label))</text>\n"
        }
        out += "</svg>\n"
        return out
    }
}
