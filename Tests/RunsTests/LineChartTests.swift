import Foundation
import Testing
@testable import Runs

@Suite struct LineChartTests {
    /// The x pixel of every vertical grid line, in drawing order.
    func gridLines(_ svg: String) -> [Double] {
        svg.split(separator: "\n").filter { $0.contains("stroke=\"#f0f0f0\"") }.compactMap { line in
            guard let range = line.range(of: "x1=\"") else { return nil }
            return Double(line[range.upperBound...].prefix { $0 != "\"" })
        }
    }

    @Test func logarithmicTicksArePowersOfTenOrOneTwoFiveWithinADecadeOrTwo() {
        #expect(LineChart.logarithmicTicks(1e3, 1e7) == [1e3, 1e4, 1e5, 1e6, 1e7])
        #expect(LineChart.logarithmicTicks(15, 900) == [20, 50, 100, 200, 500])
    }

    @Test func aLogarithmicAxisSpacesDecadesEquallyAndLeavesOutNonPositiveX() throws {
        let series = LineChart.Series(label: "run", x: [0, 10, 100, 1000], y: [5, 1, 2, 3])
        var chart = LineChart(title: "t", xLabel: "steps", yLabel: "return", series: [series], logarithmicX: true)
        let svg = chart.svg()
        let xs = gridLines(svg)
        // Ticks 10, 20, 50, 100, 200, 500, 1000: the decades 10–100 and 100–1000 equally wide.
        try #require(xs.count == 7)
        #expect(abs((xs[3] - xs[0]) - (xs[6] - xs[3])) < 0.02)
        #expect(abs((xs[1] - xs[0]) - (xs[4] - xs[3])) < 0.02)
        #expect(!svg.contains("nan") && !svg.contains("inf"))
        // The point at x = 0 is dropped, so y = 5 sets no tick: the y axis ends near 3.
        #expect(!svg.contains(">5<"))
        chart.logarithmicX = false
        let linear = gridLines(chart.svg())
        #expect(linear.count > 3)
    }
}
