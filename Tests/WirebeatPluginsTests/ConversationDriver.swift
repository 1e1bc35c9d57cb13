import Testing
import WirebeatCore

/// A test harness for one TCP plugin and one connection, without packets: scripted steps are
/// fed the way the core's TCP layer feeds them, so plugin tests can cut messages anywhere.

final class CollectingPublisher: EventPublisher {
    var events: [Event] = []
    func publish(_ event: Event) { events.append(event) }
}

/// One step of a scripted TCP conversation, as the TCP layer would deliver it.
enum Step {
    case client(String)
    case server(String)
    case clientBytes([UInt8])
    case serverBytes([UInt8])
    /// `byteCount` bytes lost at this point of the direction.
    case gap(Direction, Int)
    /// A payload whose bytes in `lost` never arrive: the core reports them as a gap.
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

/// How each step's payload is cut into the segments fed to `parse`.
enum Split {
    case whole
    case bytewise
    /// Step `step` cut in two at `at`; the others whole.
    case twoWay(step: Int, at: Int)
    /// Every payload cut into random pieces.
    case random(seed: UInt64)
}

/// The core's seeded generator (SplitMix64).
typealias SplitMix64 = SeededRandom

/// Feeds a conversation to `plugin` the way the TCP layer does: each piece is appended and
/// parsed, then the other direction is parsed again if it holds bytes (a side may wait for its
/// peer); bytes after a direction's FIN are ignored; FINs, resets, gaps and the final close as
/// scripted. Each step is 10 ms after the previous one (a gap takes no time).
func runConversation<P: TCPProtocolPlugin>(_ plugin: P, _ steps: [Step], connection: ConnectionInfo,
                                           split: Split = .whole, close: CloseReason = .closed) -> [Event] {
    let publisher = CollectingPublisher()
    let logger = LoggingSetup().logger(for: P.name)
    var state = plugin.makeConnectionState(for: connection)
    var streams = [StreamBuffer(), StreamBuffer()]
    var finished = [false, false]
    var rng = SplitMix64(seed: { if case .random(let s) = split { return s }; return 0 }())
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
    func gap(_ d: Direction, _ n: Int, _ ctx: PluginContext) {
        guard !finished[d.rawValue] else { return }
        _ = plugin.gapInStream(direction: d, byteCount: n, stream: &streams[d.rawValue], state: &state, context: ctx)
    }
    func end(_ d: Direction, _ reason: StreamEnd, _ ctx: PluginContext) {
        guard !finished[d.rawValue] else { return }
        finished[d.rawValue] = true
        plugin.receivedFIN(direction: d, reason: reason, remaining: &streams[d.rawValue], state: &state, context: ctx)
        streams[d.rawValue].removeAll()
    }

    for (index, step) in steps.enumerated() {
        if case .gap = step {} else { time = time + .milliseconds(10) }
        let ctx = PluginContext(connection: connection, timestamp: time, publisher: publisher, logger: logger)
        switch step {
        case .lossy(let d, let bytes, let lost):
            feed(bytes[..<lost.lowerBound], d, ctx)
            gap(d, lost.count, ctx)
            feed(bytes[lost.upperBound...], d, ctx)
        case .gap(let d, let n):
            gap(d, n, ctx)
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
                            context: PluginContext(connection: connection, timestamp: time,
                                                   publisher: publisher, logger: logger))
    return publisher.events
}

func jsonLines(_ events: [Event]) -> [String] { events.map { JSONWriter.compact($0.json) } }

/// The whole-message output must equal the byte-at-a-time output and that of every two-way
/// split of every step (SwiftNIO's ByteToMessageDecoderVerifier, for a whole conversation).
func expectSplitInvariant(_ steps: [Step], run: ([Step], Split) -> [Event],
                          sourceLocation: SourceLocation = #_sourceLocation) {
    let reference = jsonLines(run(steps, .whole))
    #expect(jsonLines(run(steps, .bytewise)) == reference, "bytewise", sourceLocation: sourceLocation)
    for (index, step) in steps.enumerated() {
        if case .lossy = step { continue }
        guard let (_, bytes) = step.payload, bytes.count > 1 else { continue }
        for at in 1..<bytes.count where jsonLines(run(steps, .twoWay(step: index, at: at))) != reference {
            Issue.record("split of step \(index) at \(at) differs", sourceLocation: sourceLocation)
            return
        }
    }
}
