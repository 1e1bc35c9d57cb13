import WirebeatCore
import WirebeatConformance

/// Ways to break the line plugin, one per harness mode that must catch it.
protocol LineFlaw { static var name: String { get } }
enum Correct: LineFlaw { static let name = "line" }
enum AssumesOneMessagePerSegment: LineFlaw { static let name = "line-one-message-per-segment" }
enum IgnoresGaps: LineFlaw { static let name = "line-ignores-gaps" }
enum NeverFlushesOnFIN: LineFlaw { static let name = "line-never-flushes" }
enum KeepsStatePastTimeout: LineFlaw { static let name = "line-keeps-state" }
enum Overproduces: LineFlaw { static let name = "line-overproduces" }

/// A request/response line protocol: each client line is a request, each server line the
/// reply to the oldest open request. Correct unless `Flaw` says otherwise.
final class LinePlugin<Flaw: LineFlaw>: TCPProtocolPlugin {
    static var name: String { Flaw.name }
    static var defaultPorts: [UInt16] { [7777] }
    let connectionTimeout = TimeSpan.seconds(5)

    struct Request {
        var line: String
        var time: Timestamp
        var bytes: Int
        /// Gaps seen before this request arrived.
        var epoch = 0
        /// First line after a gap (may be the tail of a line cut by the gap), or a stand-in for lost lines.
        var suspect = false
    }
    struct State {
        var pending: [Request] = []
        var gaps = 0
        /// A clean pairing happened since the last gap: replies line up with requests again.
        var settled = true
        var suspectNextLine = [false, false]
    }
    /// Only `KeepsStatePastTimeout` uses this: state that outlives its connection.
    var leaked: [Endpoint: [Request]] = [:]

    init(config: PluginConfig) throws {}

    func makeConnectionState(for connection: ConnectionInfo) -> State { State() }

    private func lines(_ stream: inout StreamBuffer, _ direction: Direction, _ state: inout State) -> [(String, Int)] {
        var out: [(String, Int)] = []
        if Flaw.self == AssumesOneMessagePerSegment.self {
            guard let all = stream.readBytes(stream.readableBytes), !all.isEmpty else { return [] }
            var text = String(decoding: all, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            return [(text, all.count)]
        }
        while true {
            let before = stream.readableBytes
            guard let line = stream.readLine() else { break }
            out.append((String(decoding: line, as: UTF8.self), before - stream.readableBytes))
        }
        return out
    }

    func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout State, context: PluginContext) {
        if Flaw.self == Overproduces.self, !stream.isEmpty {
            var e = Event.transaction(type: Self.name, connection: context.connection, start: context.timestamp, end: nil, status: .ok)
            e.set("line.chunk", stream.readableBytes)
            context.publish(e)
        }
        for (line, bytes) in lines(&stream, direction, &state) {
            let suspect = state.suspectNextLine[direction.rawValue]
            state.suspectNextLine[direction.rawValue] = false
            if direction == .original {
                let request = Request(line: line, time: context.timestamp, bytes: bytes, epoch: state.gaps, suspect: suspect)
                if Flaw.self == KeepsStatePastTimeout.self {
                    leaked[context.connection.client, default: []].append(request)
                } else {
                    state.pending.append(request)
                }
                continue
            }
            var request: Request?
            if Flaw.self == KeepsStatePastTimeout.self {
                if var queue = leaked[context.connection.client], !queue.isEmpty {
                    request = queue.removeFirst()
                    leaked[context.connection.client] = queue
                }
            } else if !state.pending.isEmpty {
                request = state.pending.removeFirst()
            }
            let lossy = !state.settled && (request == nil || request!.epoch < state.gaps || request!.suspect || suspect)
            if !state.settled && !lossy { state.settled = true }
            var e = Event.transaction(type: Self.name, connection: context.connection, start: request?.time ?? context.timestamp,
                                      end: context.timestamp, status: .ok, requestBytes: request?.bytes, responseBytes: bytes)
            e.set("line.request", request?.line)
            e.set("line.response", line)
            if request == nil { e.addNote("unmatched response") }
            if lossy { e.addNote("packet loss") }
            context.publish(e)
        }
    }

    func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer, state: inout State,
                     context: PluginContext) -> GapDecision {
        if Flaw.self == IgnoresGaps.self { return .keepState }
        // The bytes before the hole are half a line, and the first line after it may be too.
        stream.removeAll()
        state.gaps += 1
        state.settled = false
        state.suspectNextLine[direction.rawValue] = true
        if direction == .original {
            // Requests were lost: a stand-in takes the first reply that has no request left.
            state.pending.append(Request(line: "", time: context.timestamp, bytes: 0, epoch: state.gaps, suspect: true))
        } else {
            // Replies were lost: the open requests can never be paired with confidence.
            flush(&state, "no response", context, lossy: true)
        }
        return .keepState
    }

    private func flush(_ state: inout State, _ note: String, _ context: PluginContext, lossy: Bool = false) {
        if Flaw.self == NeverFlushesOnFIN.self { state.pending.removeAll(); return }
        for request in state.pending {
            var e = Event.transaction(type: Self.name, connection: context.connection, start: request.time, end: nil,
                                      status: .error, requestBytes: request.bytes)
            e.set("line.request", request.line)
            e.addNote(note)
            if lossy || !state.settled { e.addNote("packet loss") }
            context.publish(e)
        }
        state.pending.removeAll()
    }

    func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer, state: inout State,
                     context: PluginContext) {
        if direction == .reverse { flush(&state, "no response before the server closed", context) }
    }

    func connectionClosed(reason: CloseReason, state: inout State, context: PluginContext) {
        if Flaw.self == KeepsStatePastTimeout.self { return }
        flush(&state, "no response (\(reason.rawValue))", context)
    }
}

/// A conversation of the line protocol as a real TCP stack would send it: handshake,
/// requests and replies with ACKs, two pipelined requests, FIN from both sides.
enum LineCapture {
    static let client = Endpoint(ip: IPAddress("10.1.0.1")!, port: 41000)
    static let server = Endpoint(ip: IPAddress("10.1.0.2")!, port: 7777)

    static func make() -> PacketCapture {
        var packets: [CapturedPacket] = []
        var time: Int64 = 1_700_000_000_000_000_000
        var clientSeq: UInt32 = 100, serverSeq: UInt32 = 9000
        func send(_ fromClient: Bool, _ text: String, _ flags: TCPFlags = [.ack, .psh]) {
            time += 10_000_000
            let bytes = Array(text.utf8)
            packets.append(CapturedPacket(
                timestamp: Timestamp(nanoseconds: time), transport: .tcp,
                source: fromClient ? client : server, destination: fromClient ? server : client, vlans: [],
                sequence: fromClient ? clientSeq : serverSeq, acknowledgment: fromClient ? serverSeq : clientSeq,
                flags: flags, payload: bytes, wireLength: bytes.count))
            let advance = UInt32(bytes.count) + (flags.contains(.syn) || flags.contains(.fin) ? 1 : 0)
            if fromClient { clientSeq &+= advance } else { serverSeq &+= advance }
        }
        send(true, "", [.syn])
        packets[packets.count - 1].acknowledgment = 0
        send(false, "", [.syn, .ack])
        send(true, "", [.ack])
        send(true, "HELLO there\r\n")
        send(false, "+OK hello\r\n")
        send(true, "GET apples\r\n")
        send(false, "+OK 3 apples\r\n")
        send(true, "GET pears\r\nGET plums\r\n")  // pipelined
        send(false, "+OK 5 pears\r\n")
        send(false, "+OK 0 plums\r\n")
        send(true, "QUIT\r\n")
        send(false, "+OK bye\r\n")
        send(true, "", [.fin, .ack])
        send(false, "", [.fin, .ack])
        send(true, "", [.ack])
        return PacketCapture(packets: packets)
    }
}
