import Testing
import WirebeatCore
@testable import WirebeatPlugins

final class CollectingPublisher: EventPublisher {
    var events: [Event] = []
    func publish(_ event: Event) { events.append(event) }
}

/// One step of a scripted TCP conversation, as the core would deliver it.
enum Step {
    case client(String)
    case server(String)
    case clientBytes([UInt8])
    case serverBytes([UInt8])
    case gap(Direction, Int)
    /// A payload whose bytes in `lost` never arrive: the core reports them as a gap.
    case lossy(Direction, [UInt8], lost: Range<Int>)
    case fin(Direction)

    var payload: (Direction, [UInt8])? {
        switch self {
        case .client(let s): return (.original, Array(s.utf8))
        case .lossy(let d, let b, _): return (d, b)
        case .server(let s): return (.reverse, Array(s.utf8))
        case .clientBytes(let b): return (.original, b)
        case .serverBytes(let b): return (.reverse, b)
        default: return nil
        }
    }
}

/// How each step's payload is cut into the segments fed to `parse`.
enum Split {
    case whole
    case bytewise
    /// Step `step` cut in two at `at`; the others whole.
    case twoWay(step: Int, at: Int)
    /// Every payload cut into random pieces.
    case random(seed: UInt64)
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let testConnection = ConnectionInfo(id: 1, transport: .tcp,
                                    client: Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000),
                                    server: Endpoint(ip: IPAddress("10.0.0.2")!, port: 25))

/// Feeds a conversation to a fresh SMTP plugin the way the core does: each segment is appended
/// to its direction's buffer and parsed, then the other direction is parsed again if it has
/// bytes left (a parser may wait for the peer); then FINs, gaps and the final close.
func runSMTP(_ steps: [Step], config: [String: ConfigValue] = [:], split: Split = .whole,
             close: CloseReason = .closed) -> [Event] {
    let plugin = try! SMTPPlugin(config: PluginConfig(pluginName: "smtp", values: config))
    let publisher = CollectingPublisher()
    let logger = LoggingSetup().logger(for: "smtp")
    var state = plugin.makeConnectionState(for: testConnection)
    var streams = [StreamBuffer(), StreamBuffer()]
    var finished = [false, false]
    var rng = SplitMix64(seed: { if case .random(let s) = split { return s }; return 0 }())
    var time = Timestamp(seconds: 1_700_000_000)

    func feed(_ piece: ArraySlice<UInt8>, _ d: Direction, _ ctx: PluginContext) {
        streams[d.rawValue].append(contentsOf: piece)
        plugin.parse(&streams[d.rawValue], direction: d, state: &state, context: ctx)
        let other = d.opposite
        if !finished[other.rawValue] && !streams[other.rawValue].isEmpty {
            plugin.parse(&streams[other.rawValue], direction: other, state: &state, context: ctx)
        }
    }

    for (index, step) in steps.enumerated() {
        // A gap is reported with the segment after the hole: no time passes.
        if case .gap = step {} else { time = time + .milliseconds(10) }
        let ctx = PluginContext(connection: testConnection, timestamp: time, publisher: publisher, logger: logger)
        switch step {
        case .lossy(let d, let bytes, let lost):
            feed(bytes[..<lost.lowerBound], d, ctx)
            _ = plugin.gapInStream(direction: d, byteCount: lost.count, stream: &streams[d.rawValue],
                                   state: &state, context: ctx)
            feed(bytes[lost.upperBound...], d, ctx)
        case .gap(let d, let n):
            _ = plugin.gapInStream(direction: d, byteCount: n, stream: &streams[d.rawValue], state: &state, context: ctx)
        case .fin(let d):
            finished[d.rawValue] = true
            plugin.receivedFIN(direction: d, reason: .fin, remaining: &streams[d.rawValue], state: &state, context: ctx)
        default:
            let (d, bytes) = step.payload!
            var pieces: [ArraySlice<UInt8>] = []
            switch split {
            case .whole: pieces = [bytes[...]]
            case .bytewise: pieces = bytes.indices.map { bytes[$0...$0] }
            case .twoWay(let s, let at) where s == index && at <= bytes.count:
                pieces = [bytes[..<at], bytes[at...]]
            case .twoWay: pieces = [bytes[...]]
            case .random:
                var i = 0
                while i < bytes.count {
                    let n = Int.random(in: 1...max(1, min(bytes.count - i, 40)), using: &rng)
                    pieces.append(bytes[i..<i + n])
                    i += n
                }
            }
            for piece in pieces { feed(piece, d, ctx) }
        }
    }
    time = time + .milliseconds(10)
    plugin.connectionClosed(reason: close, state: &state,
                            context: PluginContext(connection: testConnection, timestamp: time,
                                                   publisher: publisher, logger: logger))
    return publisher.events
}

func jsonLines(_ events: [Event]) -> [String] { events.map { JSONWriter.compact($0.json) } }

/// The output for the whole-message run must equal the byte-at-a-time run and every two-way
/// split of every message.
func expectSplitInvariant(_ steps: [Step], config: [String: ConfigValue] = [:],
                          sourceLocation: SourceLocation = #_sourceLocation) {
    let reference = jsonLines(runSMTP(steps, config: config))
    #expect(jsonLines(runSMTP(steps, config: config, split: .bytewise)) == reference,
            "bytewise", sourceLocation: sourceLocation)
    for (index, step) in steps.enumerated() {
        if case .lossy = step { continue }
        guard let (_, bytes) = step.payload, bytes.count > 1 else { continue }
        for at in 1..<bytes.count {
            let out = jsonLines(runSMTP(steps, config: config, split: .twoWay(step: index, at: at)))
            if out != reference {
                Issue.record("split of step \(index) at \(at) differs", sourceLocation: sourceLocation)
                return
            }
        }
    }
}

extension Event {
    func string(_ field: String) -> String? { self[field]?.stringValue }
    func int(_ field: String) -> Int64? { self[field]?.intValue }
    func strings(_ field: String) -> [String]? { self[field]?.arrayValue?.compactMap(\.stringValue) }
    var smtpType: String? { string("smtp.type") }
    var command: String? { string("smtp.request.command") }
    var code: Int64? { int("smtp.response.code") }
    var notes: String? { string("error.message") }
}

extension Array where Element == Event {
    func ofType(_ type: String) -> [Event] { filter { $0.smtpType == type } }
    var commands: [String] { compactMap(\.command) }
}
