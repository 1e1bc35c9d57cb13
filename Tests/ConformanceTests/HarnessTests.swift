import Testing
import WirebeatConformance
import WirebeatCore

/// The harness is tested too: a correct plugin passes every mode, and each deliberately
/// broken plugin is caught by the mode meant to catch it.
struct HarnessTests {
    static let capture = LineCapture.make()

    static func plugins<F: LineFlaw>(_ flaw: F.Type) throws -> [LoadedPlugin] {
        var registry = PluginRegistry()
        registry.register(LinePlugin<F>.self)
        return try registry.load(nil)
    }

    /// The golden: what the correct plugin gives on the undamaged capture.
    static func golden() throws -> [JSONValue] {
        capture.replay(plugins: try plugins(Correct.self)).events
    }

    static func run<F: LineFlaw>(_ flaw: F.Type, _ mode: MutationMode) throws -> ConformanceResult {
        let suite = ConformanceSuite(registry: PluginRegistry())
        let golden = try golden()
        return try #require(suite.run(name: "line/synthetic", plugin: F.name, mode: mode, capture: capture,
                                      golden: golden, timeout: .seconds(5)) { try plugins(flaw) })
    }

    @Test func goldenIsWhatTheConversationSays() throws {
        let events = try Self.golden()
        #expect(events.map { $0.value(at: "line.request")?.stringValue } == ["HELLO there", "GET apples", "GET pears", "GET plums", "QUIT"])
        #expect(events.map { $0.value(at: "line.response")?.stringValue } == ["+OK hello", "+OK 3 apples", "+OK 5 pears", "+OK 0 plums", "+OK bye"])
        #expect(events.allSatisfy { $0.value(at: "error.message") == nil })
    }

    @Test(arguments: MutationMode.tcpModes)
    func correctPluginPassesEveryMode(_ mode: MutationMode) throws {
        let result = try Self.run(Correct.self, mode)
        #expect(result.runs > 0)
        #expect(result.failedCount == 0, "\(result.failures.map(\.description).joined(separator: "\n"))")
    }

    @Test func oneMessagePerSegmentIsCaughtBySplit() throws {
        #expect(try Self.run(AssumesOneMessagePerSegment.self, .split).failedCount > 0)
    }

    @Test func ignoringGapsIsCaughtByGap() throws {
        let result = try Self.run(IgnoresGaps.self, .gap)
        #expect(result.failedCount > 0)
        #expect(result.failures.first?.message.contains("packet loss") == true)
    }

    @Test func neverFlushingIsCaughtByFin() throws {
        let result = try Self.run(NeverFlushesOnFIN.self, .fin)
        #expect(result.failedCount > 0)
        #expect(result.failures.first?.message.contains("was not published") == true)
    }

    @Test func keepingStatePastTimeoutIsCaughtByTimeout() throws {
        let result = try Self.run(KeepsStatePastTimeout.self, .timeout)
        #expect(result.failedCount > 0)
    }

    @Test func overproductionIsCaughtBySplit() throws {
        let result = try Self.run(Overproduces.self, .split)
        #expect(result.failedCount > 0)
        #expect(result.failures.first?.message.contains("expected 5 events") == true)
    }

    /// A failure names capture, mode, seed and parameters, and its saved pcap replays.
    @Test func failureIsReproducible() throws {
        var options = ConformanceOptions()
        let dir = "/tmp/wirebeat-harness-\(UInt32.random(in: 0...UInt32.max))"
        options.saveFailuresTo = dir
        let suite = ConformanceSuite(registry: PluginRegistry(), options: options)
        let golden = try Self.golden()
        let result = try #require(suite.run(name: "line/synthetic", plugin: "x", mode: .split, capture: Self.capture,
                                            golden: golden, timeout: .seconds(5)) { try Self.plugins(AssumesOneMessagePerSegment.self) })
        let failure = try #require(result.failures.first)
        #expect(failure.description.contains("line/synthetic [split] seed=1"))
        let saved = try #require(failure.savedCapture)
        let replayed = try Replay.collect(file: saved, plugins: try Self.plugins(AssumesOneMessagePerSegment.self)).events.map(\.json)
        #expect(replayed != golden)
        let savedCorrect = try Replay.collect(file: saved, plugins: try Self.plugins(Correct.self)).events.map(\.json)
        #expect(savedCorrect == golden)
    }
}
