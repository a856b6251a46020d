import Testing
@testable import HeapSnapKit

@Suite struct EstimateTests {
    @Test func differenceAddsVariance() {
        let a = Estimate(value: 10, variance: 4)
        let b = Estimate(value: 3, variance: 5)
        #expect((a - b) == Estimate(value: 7, variance: 9))
        #expect((a - b).standardDeviation == 3)
        #expect(a.scaled(by: 2) == Estimate(value: 20, variance: 16))
    }
}
