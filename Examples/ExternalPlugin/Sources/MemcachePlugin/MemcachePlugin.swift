import WirebeatCore

/// memcached's text protocol: one event per request and its reply (`type: memcache`).
///
/// Requests are lines (`get a b`, `delete a`, `incr n 1`, …); the storage commands
/// (`set/add/replace/append/prepend/cas`) are followed by a data block of the announced size
/// plus CRLF, read progressively so a large value is never buffered. Replies are one line,
/// or `VALUE` blocks / `STAT` lines closed by `END`. Requests and replies pair in order
/// (FIFO); `noreply` requests and `quit` get no reply and are published once every earlier
/// request is.
///
/// Loss: a gap that falls inside a data block is exact (the length is known): only that
/// request or reply is marked `packet loss`. Any other gap loses an unknown number of
/// requests or replies, so from then on every event of the connection carries `packet loss`
/// (requests already waiting when the client side lost bytes still get their own replies,
/// which come first). A reply that matches no request, or does not fit its request (a
/// connection picked up mid-stream, e.g. after an idle timeout), marks the rest of the
/// connection `out of sync`. FIN, RST, timeout and end of input publish what is pending with
/// a note.
public final class MemcachePlugin: TCPProtocolPlugin {
    public static let name = "memcache"
    public static let defaultPorts: [UInt16] = [11211]
    public let connectionTimeout: TimeSpan

    /// memcached refuses longer command lines (2048 bytes); past this we stop looking for LF.
    static let maxLineLength = 8192
    /// Requests waiting for replies beyond this (a capture of one direction only) are
    /// published unanswered, oldest first, and the connection is out of sync.
    static let maxPendingRequests = 10_000

    public init(config: PluginConfig) throws {
        connectionTimeout = try config.duration("transaction_timeout", default: .seconds(10))
    }

    // MARK: State

    struct Request {
        var command: String
        var keys: [String] = []
        var bytes: Int?
        var flags: Int64?
        var exptime: Int64?
        var casUnique: String?
        var delta: String?
        var args: String?
        var noreply = false
        /// false for `noreply` and `quit`: nothing will answer it.
        var expectsResponse = true
        var start: Timestamp
        /// When the last byte of the request (its data block) arrived.
        var end: Timestamp?
        var wireBytes: Int
        /// Data block bytes (value + CRLF) still to come.
        var dataRemaining = 0
        var response: Response?
        var notes: [String] = []
        var lossy = false
        /// Parsed or paired after the connection lost track of the conversation.
        var outOfSync = false

        var isComplete: Bool { dataRemaining == 0 }
        var isAnswered: Bool { !expectsResponse || response != nil }
    }

    struct Response {
        var type: String
        var start: Timestamp
        var end: Timestamp
        var keys: [String] = []
        var valuesCount = 0
        var dataBytes = 0
        var statsCount = 0
        var number: String?
        var version: String?
        var message: String?
        var wireBytes = 0
        /// Inside `VALUE`/`STAT` lines, waiting for `END`.
        var multiLine = false
        var lossy = false
    }

    public struct ConnectionState {
        /// Requests in arrival order; the head is published first.
        var queue: [Request] = []
        /// The reply being read (it belongs to the first request still waiting for one).
        var current: Response?
        /// Bytes of the current `VALUE` data block (+ CRLF) still to come.
        var valueRemaining = 0
        /// Requests from now on, and replies that match none, carry `packet loss`.
        var lossy = false
        /// Every event from now on carries `out of sync`.
        var outOfSync = false
    }

    public func makeConnectionState(for connection: ConnectionInfo) -> ConnectionState { ConnectionState() }

    // MARK: Parsing

    public func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout ConnectionState,
                      context: PluginContext) {
        if direction == .original {
            parseRequests(&stream, &state, context)
        } else {
            parseResponses(&stream, &state, context)
        }
        drain(&state, context)
    }

    /// Reads one line, or nil. A line longer than memcached accepts is discarded (the
    /// connection is then out of sync) so a stream without LF is not rescanned forever.
    private func line(_ stream: inout StreamBuffer, _ state: inout ConnectionState) -> (text: String, bytes: Int)? {
        guard let lf = stream.offsetOfLineFeed(limit: Self.maxLineLength) else {
            if stream.readableBytes >= Self.maxLineLength {
                stream.skip(stream.readableBytes)
                state.outOfSync = true
            }
            return nil
        }
        let line = stream.readLine()!
        return (String(decoding: line, as: UTF8.self), lf + 1)
    }

    private func parseRequests(_ stream: inout StreamBuffer, _ state: inout ConnectionState, _ context: PluginContext) {
        while true {
            if let last = state.queue.indices.last, state.queue[last].dataRemaining > 0 {
                let n = min(stream.readableBytes, state.queue[last].dataRemaining)
                guard n > 0 else { return }
                stream.skip(n)
                state.queue[last].dataRemaining -= n
                state.queue[last].wireBytes += n
                if state.queue[last].dataRemaining == 0 { state.queue[last].end = context.timestamp }
                continue
            }
            guard let (text, bytes) = line(&stream, &state) else { return }
            var request = Self.request(text, bytes: bytes, at: context.timestamp)
            request.lossy = state.lossy
            request.outOfSync = state.outOfSync
            if request.dataRemaining == 0 { request.end = context.timestamp }
            state.queue.append(request)
            if state.queue.count > Self.maxPendingRequests {
                state.outOfSync = true
                let head = state.queue.removeFirst()
                publish(head, state, context, extraNotes: head.isAnswered ? [] : ["no response (too many pending requests)"])
            }
        }
    }

    /// A request from its command line (memcached splits on spaces; commands are case-sensitive).
    static func request(_ line: String, bytes: Int, at time: Timestamp) -> Request {
        let t = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var r = Request(command: t.first ?? "", start: time, wireBytes: bytes)
        let noreplyCapable: Set<String> = ["set", "add", "replace", "append", "prepend", "cas", "delete", "incr",
                                           "decr", "touch", "flush_all", "verbosity"]
        if noreplyCapable.contains(r.command), t.count > 1, t.last == "noreply" {
            r.noreply = true
            r.expectsResponse = false
        }
        let words = r.noreply ? Array(t.dropLast()) : t
        switch r.command {
        case "get", "gets":
            r.keys = Array(words.dropFirst())
        case "gat", "gats":
            r.exptime = words.count > 1 ? Int64(words[1]) : nil
            r.keys = Array(words.dropFirst(2))
        case "set", "add", "replace", "append", "prepend", "cas":
            if words.count > 1 { r.keys = [words[1]] }
            if words.count > 2 { r.flags = Int64(words[2]) }
            if words.count > 3 { r.exptime = Int64(words[3]) }
            if r.command == "cas", words.count > 5 { r.casUnique = words[5] }
            // memcached answers a bad length with CLIENT_ERROR and reads no data block.
            let enough = words.count >= (r.command == "cas" ? 6 : 5)
            if enough, let size = Int(words[4]), size >= 0, size <= Int(Int32.max) {
                r.bytes = size
                r.dataRemaining = size + 2
            }
        case "delete":
            if words.count > 1 { r.keys = [words[1]] }
        case "incr", "decr":
            if words.count > 1 { r.keys = [words[1]] }
            if words.count > 2 { r.delta = words[2] }
        case "touch":
            if words.count > 1 { r.keys = [words[1]] }
            if words.count > 2 { r.exptime = Int64(words[2]) }
        case "quit":
            r.expectsResponse = false
        case "":
            break
        default:
            if words.count > 1 { r.args = words.dropFirst().joined(separator: " ") }
        }
        return r
    }

    private func parseResponses(_ stream: inout StreamBuffer, _ state: inout ConnectionState, _ context: PluginContext) {
        while true {
            if state.valueRemaining > 0 {
                let n = min(stream.readableBytes, state.valueRemaining)
                guard n > 0 else { return }
                stream.skip(n)
                state.valueRemaining -= n
                state.current?.wireBytes += n
                continue
            }
            guard let (text, bytes) = line(&stream, &state) else { return }
            let now = context.timestamp
            let t = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            let word = String(t.first ?? "")
            let rest = t.count > 1 ? String(t[1]) : ""
            if var r = state.current, r.multiLine {
                r.wireBytes += bytes
                r.end = now
                switch word {
                case "END":
                    r.multiLine = false
                case "VALUE":
                    state.valueRemaining = Self.value(rest, into: &r)
                case "STAT":
                    r.statsCount += 1
                case "ERROR", "CLIENT_ERROR", "SERVER_ERROR":
                    r.type = word
                    r.message = rest.isEmpty ? nil : rest
                    r.multiLine = false
                default:
                    break
                }
                state.current = r
                if !r.multiLine { finishResponse(&state, context) }
                continue
            }
            var r = Response(type: word, start: now, end: now, wireBytes: bytes)
            switch word {
            case "VALUE":
                r.multiLine = true
                state.valueRemaining = Self.value(rest, into: &r)
            case "STAT":
                r.multiLine = true
                r.statsCount = 1
            case "ITEM":
                r.multiLine = true
            case "VERSION":
                r.version = rest
            case "CLIENT_ERROR", "SERVER_ERROR":
                r.message = rest.isEmpty ? nil : rest
            case "END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "RESET", "ERROR":
                break
            default:
                if !word.isEmpty, rest.isEmpty, word.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    r.type = "NUMBER"
                    r.number = word
                } else if awaiting(state)?.command == "stats" {
                    // Other stats listings (`stats detail dump`) are lines up to END too.
                    r.multiLine = true
                } else {
                    r.type = "UNKNOWN"
                }
            }
            state.current = r
            if !r.multiLine { finishResponse(&state, context) }
        }
    }

    /// Adds a `VALUE <key> <flags> <bytes> [<cas>]` line; returns the data block size + CRLF.
    private static func value(_ rest: String, into r: inout Response) -> Int {
        let t = rest.split(separator: " ")
        r.valuesCount += 1
        if let key = t.first { r.keys.append(String(key)) }
        guard t.count >= 3, let size = Int(t[2]), size >= 0, size <= Int(Int32.max) else { return 0 }
        r.dataBytes += size
        return size + 2
    }

    private func awaiting(_ state: ConnectionState) -> Request? {
        state.queue.first { $0.expectsResponse && $0.response == nil }
    }

    /// The current reply is complete: it answers the first request still waiting, if any.
    private func finishResponse(_ state: inout ConnectionState, _ context: PluginContext) {
        guard let r = state.current else { return }
        state.current = nil
        guard let i = state.queue.firstIndex(where: { $0.expectsResponse && $0.response == nil }) else {
            publishUnmatched(r, &state, context)
            return
        }
        state.queue[i].response = r
        if !Self.fits(r.type, state.queue[i].command) {
            state.queue[i].notes.append("unexpected response")
            state.outOfSync = true
        }
        if state.outOfSync { state.queue[i].outOfSync = true }
        drain(&state, context)
    }

    /// Whether a reply of this type can answer this command.
    static func fits(_ type: String, _ command: String) -> Bool {
        if ["ERROR", "CLIENT_ERROR", "SERVER_ERROR"].contains(type) { return true }
        switch command {
        case "get", "gets", "gat", "gats": return type == "VALUE" || type == "END"
        case "set", "add", "replace", "append", "prepend", "cas":
            return ["STORED", "NOT_STORED", "EXISTS", "NOT_FOUND"].contains(type)
        case "delete": return type == "DELETED" || type == "NOT_FOUND"
        case "incr", "decr": return type == "NUMBER" || type == "NOT_FOUND"
        case "touch": return type == "TOUCHED" || type == "NOT_FOUND"
        case "flush_all", "verbosity": return type == "OK"
        case "version": return type == "VERSION"
        case "stats", "cache_memlimit", "slabs", "lru", "lru_crawler", "watch", "shutdown", "misbehave", "debugtime":
            return true
        default: return false  // memcached answers an unknown command with ERROR
        }
    }

    /// Publishes from the head every request that is complete and answered (or needs no answer).
    private func drain(_ state: inout ConnectionState, _ context: PluginContext) {
        while let head = state.queue.first, head.isComplete, head.isAnswered {
            state.queue.removeFirst()
            publish(head, state, context)
        }
    }

    // MARK: Events

    private func publish(_ request: Request, _ state: ConnectionState, _ context: PluginContext,
                         extraNotes: [String] = []) {
        let response = request.response
        let notes = request.notes + extraNotes
        let failed = !notes.isEmpty
            || (response.map { ["ERROR", "CLIENT_ERROR", "SERVER_ERROR"].contains($0.type) } ?? request.expectsResponse)
        var e = Event.transaction(type: Self.name, connection: context.connection, start: request.start,
                                  end: response?.end ?? (request.expectsResponse ? nil : request.end),
                                  status: failed ? .error : .ok,
                                  requestBytes: request.wireBytes, responseBytes: response?.wireBytes)
        e.set("memcache.request.command", request.command)
        if !request.keys.isEmpty { e.set("memcache.request.keys", request.keys) }
        e.set("memcache.request.bytes", request.bytes)
        e.set("memcache.request.flags", request.flags)
        e.set("memcache.request.exptime", request.exptime)
        e.set("memcache.request.cas_unique", request.casUnique)
        e.set("memcache.request.delta", request.delta)
        e.set("memcache.request.args", request.args)
        if request.noreply { e.set("memcache.request.noreply", true) }
        if let response { setResponse(response, &e) }
        for note in notes { e.addNote(note) }
        if request.lossy || response?.lossy == true || state.lossy && !request.isAnswered { e.addNote("packet loss") }
        if request.outOfSync { e.addNote("out of sync") }
        context.publish(e)
    }

    private func setResponse(_ r: Response, _ e: inout Event) {
        e.set("memcache.response.type", r.type)
        if r.type == "VALUE" || !r.keys.isEmpty {
            e.set("memcache.response.values_count", r.valuesCount)
            e.set("memcache.response.keys", r.keys)
            e.set("memcache.response.bytes", r.dataBytes)
        }
        if r.statsCount > 0 { e.set("memcache.response.stats_count", r.statsCount) }
        e.set("memcache.response.value", r.number)
        e.set("memcache.response.version", r.version)
        e.set("memcache.response.error_message", r.message)
    }

    /// A reply with no request waiting: we lost track of the conversation.
    private func publishUnmatched(_ r: Response, _ state: inout ConnectionState, _ context: PluginContext,
                                  note: String = "unmatched response") {
        state.outOfSync = true
        var e = Event.transaction(type: Self.name, connection: context.connection, start: r.start, end: r.end,
                                  status: .error, responseBytes: r.wireBytes)
        setResponse(r, &e)
        e.addNote(note)
        if r.lossy || state.lossy { e.addNote("packet loss") }
        e.addNote("out of sync")
        context.publish(e)
    }

    /// Publishes everything pending, in order: requests still waiting get `note`.
    private func flushAll(_ state: inout ConnectionState, _ context: PluginContext, note: String) {
        if state.current != nil { cutResponse(&state, context) }
        let pending = state.queue
        state.queue.removeAll()
        for request in pending {
            var extra: [String] = []
            if !request.isComplete { extra.append("incomplete request") }
            if !request.isAnswered { extra.append(note) }
            publish(request, state, context, extraNotes: extra)
        }
    }

    /// The reply being read will never be finished: it goes, marked, to the request it answers.
    private func cutResponse(_ state: inout ConnectionState, _ context: PluginContext) {
        guard var r = state.current else { return }
        state.current = nil
        state.valueRemaining = 0
        r.multiLine = false
        guard let i = state.queue.firstIndex(where: { $0.expectsResponse && $0.response == nil }) else {
            publishUnmatched(r, &state, context, note: "incomplete response")
            return
        }
        state.queue[i].response = r
        state.queue[i].notes.append("incomplete response")
        if state.outOfSync { state.queue[i].outOfSync = true }
    }

    // MARK: Edges

    public func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) -> GapDecision {
        if direction == .original {
            if let last = state.queue.indices.last, state.queue[last].dataRemaining > 0 {
                // Inside a data block: the request and its boundary are known.
                let inBlock = min(byteCount, state.queue[last].dataRemaining)
                state.queue[last].dataRemaining -= inBlock
                state.queue[last].wireBytes += inBlock
                state.queue[last].lossy = true
                if state.queue[last].dataRemaining == 0 { state.queue[last].end = context.timestamp }
                if inBlock == byteCount { drain(&state, context); return .keepState }
            }
            // Whole requests (or part of a line) are gone. Requests already waiting keep their
            // replies, which come before any reply to the lost ones; nothing after is certain.
            stream.removeAll()
            state.lossy = true
        } else {
            if state.valueRemaining > 0, byteCount <= state.valueRemaining {
                state.valueRemaining -= byteCount
                state.current?.wireBytes += byteCount
                state.current?.lossy = true
                return .keepState
            }
            // Replies are gone: which requests they answered is unknown.
            stream.removeAll()
            if state.current != nil {
                state.current?.lossy = true
                cutResponse(&state, context)
            }
            state.lossy = true
            let pending = state.queue
            state.queue.removeAll()
            for request in pending {
                if request.isComplete {
                    publish(request, state, context, extraNotes: request.isAnswered ? [] : ["no response"])
                } else {
                    var r = request
                    r.lossy = true
                    state.queue.append(r)
                }
            }
        }
        drain(&state, context)
        return .keepState
    }

    public func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) {
        if direction == .original {
            // The client sent all it will: a data block cut short stays incomplete.
            if let last = state.queue.indices.last, state.queue[last].dataRemaining > 0 {
                state.queue[last].notes.append("incomplete request")
                state.queue[last].dataRemaining = 0
                state.queue[last].expectsResponse = false
                state.queue[last].end = context.timestamp
            }
            if !stream.isEmpty {
                let text = String(decoding: stream.readable, as: UTF8.self)
                var r = Self.request(text, bytes: stream.readableBytes, at: context.timestamp)
                r.dataRemaining = 0
                r.expectsResponse = false
                r.notes.append("incomplete request")
                r.lossy = state.lossy
                r.outOfSync = state.outOfSync
                state.queue.append(r)
                stream.skip(stream.readableBytes)
            }
            drain(&state, context)
        } else {
            // The server will say nothing more.
            if state.current != nil || !stream.isEmpty {
                if state.current == nil {
                    state.current = Response(type: "UNKNOWN", start: context.timestamp, end: context.timestamp)
                }
                state.current?.wireBytes += stream.readableBytes
                stream.skip(stream.readableBytes)
                cutResponse(&state, context)
            }
            let note = reason == .reset ? "no response (connection reset)" : "no response (server closed)"
            flushAll(&state, context, note: note)
        }
    }

    public func connectionClosed(reason: CloseReason, state: inout ConnectionState, context: PluginContext) {
        let note: String
        switch reason {
        case .closed: note = "no response (connection closed)"
        case .timeout: note = "no response (timeout)"
        case .endOfInput: note = "no response (end of capture)"
        }
        flushAll(&state, context, note: note)
    }
}
