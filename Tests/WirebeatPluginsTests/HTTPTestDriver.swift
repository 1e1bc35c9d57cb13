import Testing
import WirebeatCore
@testable import WirebeatPlugins

/// Collects what the HTTP plugin publishes.
final class HTTPTestPublisher: EventPublisher {
    var events: [Event] = []
    func publish(_ event: Event) { events.append(event) }
}

/// One step of a scripted HTTP conversation, as the TCP layer would deliver it.
enum HTTPStep {
    case client(String)
    case server(String)
    case clientBytes([UInt8])
    case serverBytes([UInt8])
    /// `byteCount` bytes lost at this point of the direction.
    case gap(Direction, Int)
    /// A payload whose bytes in `lost` never arrive (reported as a gap).
    case lossy(Direction, [UInt8], lost: Range<Int>)
    case fin(Direction)
    case reset

    var payload: (Direction, [UInt8])? {
        switch self {
        case .client(let s): return (.original, Array(s.utf8))
        case .server(let s): return (.reverse, Array(s.utf8))
        case .clientBytes(let b): return (.original, b)
        case .serverBytes(let b): return (.reverse, b)
        case .lossy(let d, let b, _): return (d, b)
        default: return nil
        }
    }
}

enum HTTPSplit {
    case whole
    case bytewise
    case twoWay(step: Int, at: Int)
    case random(seed: UInt64)
}

struct HTTPRandom: RandomNumberGenerator {
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

let httpConnection = ConnectionInfo(id: 1, transport: .tcp,
                                    client: Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000),
                                    server: Endpoint(ip: IPAddress("10.0.0.2")!, port: 80))

/// Feeds a conversation to a fresh HTTP plugin the way the TCP layer does: each piece is
/// appended and parsed, then the other direction is parsed again if it holds bytes (a side
/// may wait for its peer); FINs, gaps and the final close as scripted. Each step is 10 ms later.
func runHTTP(_ steps: [HTTPStep], config: [String: ConfigValue] = [:], split: HTTPSplit = .whole,
             close: CloseReason = .closed) -> [Event] {
    let plugin = try! HTTPPlugin(config: PluginConfig(pluginName: "http", values: config))
    let publisher = HTTPTestPublisher()
    let logger = LoggingSetup().logger(for: "http")
    var state = plugin.makeConnectionState(for: httpConnection)
    var streams = [StreamBuffer(), StreamBuffer()]
    var finished = [false, false]
    var rng = HTTPRandom(seed: { if case .random(let s) = split { return s }; return 0 }())
    var time = Timestamp(seconds: 1_700_000_000)

    func feed(_ piece: ArraySlice<UInt8>, _ d: Direction, _ ctx: PluginContext) {
        guard !finished[d.rawValue] else { return }
        streams[d.rawValue].append(contentsOf: piece)
        plugin.parse(&streams[d.rawValue], direction: d, state: &state, context: ctx)
        let other = d.opposite
        if !finished[other.rawValue] && !streams[other.rawValue].isEmpty {
            plugin.parse(&streams[other.rawValue], direction: other, state: &state, context: ctx)
        }
    }
    func end(_ d: Direction, _ reason: StreamEnd, _ ctx: PluginContext) {
        guard !finished[d.rawValue] else { return }
        finished[d.rawValue] = true
        plugin.receivedFIN(direction: d, reason: reason, remaining: &streams[d.rawValue], state: &state, context: ctx)
        streams[d.rawValue].removeAll()
    }

    for (index, step) in steps.enumerated() {
        if case .gap = step {} else { time = time + .milliseconds(10) }
        let ctx = PluginContext(connection: httpConnection, timestamp: time, publisher: publisher, logger: logger)
        switch step {
        case .lossy(let d, let bytes, let lost):
            feed(bytes[..<lost.lowerBound], d, ctx)
            if !finished[d.rawValue] {
                _ = plugin.gapInStream(direction: d, byteCount: lost.count, stream: &streams[d.rawValue],
                                       state: &state, context: ctx)
            }
            feed(bytes[lost.upperBound...], d, ctx)
        case .gap(let d, let n):
            if !finished[d.rawValue] {
                _ = plugin.gapInStream(direction: d, byteCount: n, stream: &streams[d.rawValue], state: &state, context: ctx)
            }
        case .fin(let d):
            end(d, .fin, ctx)
        case .reset:
            end(.original, .reset, ctx)
            end(.reverse, .reset, ctx)
        default:
            let (d, bytes) = step.payload!
            var pieces: [ArraySlice<UInt8>] = []
            switch split {
            case .whole: pieces = [bytes[...]]
            case .bytewise: pieces = bytes.indices.map { bytes[$0...$0] }
            case .twoWay(let s, let at) where s == index && at <= bytes.count: pieces = [bytes[..<at], bytes[at...]]
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
                            context: PluginContext(connection: httpConnection, timestamp: time,
                                                   publisher: publisher, logger: logger))
    return publisher.events
}

func httpLines(_ events: [Event]) -> [String] { events.map { JSONWriter.compact($0.json) } }

/// Whole-message output must equal the byte-at-a-time output and every two-way split of every step.
func expectHTTPSplitInvariant(_ steps: [HTTPStep], config: [String: ConfigValue] = [:],
                              sourceLocation: SourceLocation = #_sourceLocation) {
    let reference = httpLines(runHTTP(steps, config: config))
    #expect(httpLines(runHTTP(steps, config: config, split: .bytewise)) == reference, "bytewise",
            sourceLocation: sourceLocation)
    for (index, step) in steps.enumerated() {
        if case .lossy = step { continue }
        guard let (_, bytes) = step.payload, bytes.count > 1 else { continue }
        for at in 1..<bytes.count {
            if httpLines(runHTTP(steps, config: config, split: .twoWay(step: index, at: at))) != reference {
                Issue.record("split of step \(index) at \(at) differs", sourceLocation: sourceLocation)
                return
            }
        }
    }
}

extension Event {
    func httpString(_ field: String) -> String? { self[field]?.stringValue }
    func httpInt(_ field: String) -> Int64? { self[field]?.intValue }
    var httpMethod: String? { httpString("http.request.method") }
    var httpCode: Int64? { httpInt("http.response.status_code") }
    var httpNotes: String? { httpString("error.message") }
    var hasLossNote: Bool { httpNotes?.contains("packet loss") ?? false }
}
