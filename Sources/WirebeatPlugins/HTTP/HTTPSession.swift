import WirebeatCore

/// Per-connection HTTP state: a parser per direction and the transactions in flight, oldest
/// first (responses pair with requests in order, so pipelining needs nothing more).
///
/// Both parsers are driven by bytes only, never by segment boundaries: the output does not
/// depend on how the stream was cut into packets.
public final class HTTPSession {
    enum Body {
        case length(Int)
        case chunkSize
        case chunkData(Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        case trailers
        /// Response delimited by the end of the connection.
        case untilClose
    }

    enum Phase {
        /// At a message boundary (or resynchronising): waiting for a start line.
        case start
        case headers
        case body(Body)
        /// Skipping the rest of an overlong line, then `then`.
        case discard(then: DiscardTarget)
        /// Tunnel, switched protocol or closed direction: bytes are ignored.
        case ignore

        /// The phases whose lines `completeLines` parses.
        var isStartOrHeaders: Bool {
            switch self {
            case .start, .headers: return true
            default: return false
            }
        }
    }

    enum DiscardTarget { case start, headers }

    final class Side {
        @exclusivity(unchecked) var phase = Phase.start
        /// The message being read and its transaction, not retained (a retain and a release
        /// each per message, and a release of the nil replaced): set by `begin`, cleared by
        /// `end`. Others hold them meanwhile. The transaction: the queue (nothing takes a
        /// transaction out of it while a side reads one of its messages, but `flushAll`,
        /// which has the sides hold theirs, `flushed`). The message: the transaction, as its
        /// `request` or final `response` (neither changes while a side reads it), or, an
        /// interim response, the side (`interim`).
        @exclusivity(unchecked) private(set) var messageRef: Unmanaged<HTTPMessage>?
        @exclusivity(unchecked) private(set) var transactionRef: Unmanaged<HTTPTransaction>?
        @exclusivity(unchecked) private var interim: HTTPMessage?
        @exclusivity(unchecked) private var flushed: HTTPTransaction?
        /// `interim` or `flushed` is set.
        @exclusivity(unchecked) private(set) var holds = false

        var message: HTTPMessage? { messageRef?.takeUnretainedValue() }
        var transaction: HTTPTransaction? { transactionRef?.takeUnretainedValue() }

        /// Reading `m` of `t` (replacing any message it read). An interim response is then
        /// handed to `holdInterim`.
        @inline(__always)  // (this and `end`: a few stores, per message)
        func begin(_ m: HTTPMessage, of t: HTTPTransaction) {
            if holds { _ = endHolding() }
            messageRef = Unmanaged.passUnretained(m)
            transactionRef = Unmanaged.passUnretained(t)
        }

        /// Holds the interim response `begin` started.
        func holdInterim(_ m: consuming HTTPMessage) {
            interim = m
            holds = true
        }

        /// Done with the message (`holds` false: nothing to release).
        @inline(__always)
        func end() {
            if holds { _ = endHolding(); return }
            messageRef = nil
            transactionRef = nil
        }

        /// Done with the message; what the side held, for the caller to keep alive as long
        /// as it needs the message.
        func endHolding() -> (interim: HTTPMessage?, flushed: HTTPTransaction?) {
            messageRef = nil
            transactionRef = nil
            holds = false
            return (interim.take(), flushed.take())
        }

        /// The transaction is taken out of the queue (`flushAll`): held here while it is read.
        func holdTransaction() {
            guard let t = transaction else { return }
            flushed = t
            holds = true
        }
        /// Packet time of the first byte of the line being read.
        @exclusivity(unchecked) var lineStart: Timestamp?
        /// The next line follows lost bytes and may be the tail of a line.
        @exclusivity(unchecked) var suspectLine = false
        /// Looking for a message start after lost bytes: messages may be skipped meanwhile.
        @exclusivity(unchecked) var resyncing = false
    }

    let config: HTTPConfig
    let client = Side()
    let server = Side()
    // `@exclusivity(unchecked)` here and below: see `HTTPMessage`.
    @exclusivity(unchecked) var transactions = TransactionQueue()
    /// Counts losses that may have cost whole messages (and so the pairing).
    @exclusivity(unchecked) var lossEpoch = 0
    /// Requests and responses pair correctly (no loss, or a clean pairing since the last one).
    @exclusivity(unchecked) var settled = true
    /// The messages and the transaction last published, for the next ones to reuse (an
    /// allocation and a deallocation fewer each, per transaction): see `makeMessage`.
    @exclusivity(unchecked) private var spareRequest: HTTPMessage?
    @exclusivity(unchecked) private var spareResponse: HTTPMessage?
    @exclusivity(unchecked) private var spareTransaction: HTTPTransaction?
    /// The JSON text of values the events of a connection repeat (see `event`).
    @exclusivity(unchecked) var requestTail = RepeatedTail()
    @exclusivity(unchecked) var responseTail = RepeatedTail()
    @exclusivity(unchecked) var domainJSON = RepeatedJSON()
    @exclusivity(unchecked) var hostURLJSON = HostURLJSON()
    @exclusivity(unchecked) var userAgentJSON = RepeatedJSON()

    static let standardMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]

    /// Some header is published or read by name as configured (see the end of `header`).
    let picksHeaders: Bool
    /// Headers are published (`http.*.headers`).
    let sendsHeaders: Bool

    init(config: HTTPConfig) {
        self.config = config
        picksHeaders = config.realIPHeader != nil || config.sendAllHeaders || !config.sendHeaders.isEmpty
        sendsHeaders = config.sendAllHeaders || !config.sendHeaders.isEmpty
    }

    // MARK: - Parsing

    func parse(_ s: inout StreamBuffer, _ direction: Direction, _ ctx: PluginContext) {
        if direction == .original { parse(&s, client, isClient: true, ctx) } else { parse(&s, server, isClient: false, ctx) }
    }

    private func parse(_ s: inout StreamBuffer, _ side: Side, isClient: Bool, _ ctx: PluginContext) {
        while true {
            switch side.phase {
            case .ignore:
                s.skip(s.readableBytes)
                return
            case .discard(let then):
                let message = side.message
                if let lf = s.offsetOfLineFeed() {
                    if let m = message { consume(m, s.readBytes(lf + 1)!, raw: false, ctx) } else { s.skip(lf + 1) }
                    side.lineStart = nil
                    side.phase = then == .headers && message != nil ? .headers : .start
                } else {
                    if let m = message { consume(m, s.readBytes(s.readableBytes)!, raw: false, ctx) } else { s.skip(s.readableBytes) }
                    return
                }
            case .body(.length(let remaining)):
                // Borrowed: `side` holds the message while its body is read.
                guard let m = side.messageRef else { side.phase = .start; continue }
                if remaining == 0 { finishMessage(side, isClient: isClient, ctx); continue }
                let n = min(remaining, s.readableBytes)
                guard n > 0 else { return }
                m.borrow { consumeBody($0, &s, n, ctx) }
                if n == remaining { finishMessage(side, isClient: isClient, ctx) } else { side.phase = .body(.length(remaining - n)); return }
            case .body(.chunkData(let remaining)):
                guard let m = side.message else { side.phase = .start; continue }
                let n = min(remaining, s.readableBytes)
                guard n > 0 else { return }
                consumeBody(m, &s, n, ctx)
                side.phase = n == remaining ? .body(.chunkEnd) : .body(.chunkData(remaining - n))
                if n < remaining { return }
            case .body(.untilClose):
                guard let m = side.message else { side.phase = .start; continue }
                guard !s.isEmpty else { return }
                consumeBody(m, &s, s.readableBytes, ctx)
                return
            case .start, .headers, .body(.chunkSize), .body(.chunkEnd), .body(.trailers):
                if s.isEmpty { return }
                if side.phase.isStartOrHeaders {
                    if completeLines(&s, side, isClient: isClient, ctx) { continue }
                    if s.isEmpty { return }
                    // What is left is the start of a line, or an overlong one (or a header
                    // line without a message).
                }
                if side.lineStart == nil { side.lineStart = ctx.timestamp }
                let limit = HTTPConfig.maxLineLength + 2
                guard let lf = s.offsetOfLineFeed(limit: limit) else {
                    if s.readableBytes >= limit { overlongLine(&s, side, isClient: isClient, ctx); continue }
                    return
                }
                let time = side.lineStart ?? ctx.timestamp
                side.lineStart = nil
                // In place in the stream buffer (no slice to retain and release), then skipped.
                s.withReadableBytes { line(UnsafeBufferPointer(rebasing: $0[...lf]), time: time, side, isClient: isClient, ctx) }
                s.skip(lf + 1)
            }
        }
    }

    /// The complete start and header lines at the front of `s`, most of the lines by far,
    /// parsed in place in one access to the buffer: a message's start line and its headers
    /// (and the next ones, pipelined) without a slice of the buffer to retain and release or
    /// a search through `StreamBuffer` per message. True when the phase moved on (to a body,
    /// which `parse` then reads); false when what is left is no complete line (or a header
    /// line without a message), for `parse` to handle.
    private func completeLines(_ s: inout StreamBuffer, _ side: Side, isClient: Bool, _ ctx: PluginContext) -> Bool {
        let limit = HTTPConfig.maxLineLength + 2  // as `parse` searches
        var consumed = 0
        s.withReadableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while consumed < buffer.count {
                switch side.phase {
                case .start:
                    let start = base + consumed
                    guard let lf = memchr(start, Int32(Byte.lf), min(buffer.count - consumed, limit)) else { return }
                    let raw = UnsafeBufferPointer(start: start, count: start.distance(to: lf.assumingMemoryBound(to: UInt8.self)) + 1)
                    consumed += raw.count
                    let time = side.lineStart ?? ctx.timestamp
                    side.lineStart = nil
                    line(raw, time: time, side, isClient: isClient, ctx)
                case .headers:
                    // Borrowed, not retained (a retain and a release per message): the session
                    // holds the message even after the blank line ends it, through its
                    // transaction or, an interim response, as `spareResponse` (see
                    // `finishMessage`), and reuses it only from a later start line.
                    guard let m = side.messageRef else { return }
                    let before = consumed
                    let ended = m.borrow { headerLines(buffer, &consumed, $0, side, isClient: isClient, ctx) }
                    // A line read: one left partial earlier is done (its time is no start's).
                    if consumed > before { side.lineStart = nil }
                    if !ended { return }
                default:
                    return
                }
            }
        }
        if consumed > 0 {
            s.skip(consumed)
            side.lineStart = nil
        }
        // (A body may start, and a message of no body end, at the end of the bytes.)
        return !side.phase.isStartOrHeaders
    }

    /// Header lines of `m` in `buffer` from `consumed` on, parsed in place as raw bytes (no
    /// slice per line); `consumed` moves past the complete ones. True when the blank line
    /// ending them was parsed (the phase changed).
    private func headerLines(_ buffer: UnsafeBufferPointer<UInt8>, _ consumed: inout Int, _ m: HTTPMessage, _ side: Side,
                             isClient: Bool, _ ctx: PluginContext) -> Bool {
        let limit = HTTPConfig.maxLineLength + 2  // as `parse` searches
        // The usual settings: only the headers the parser acts on matter, and any other line
        // (another field, a fold, no field at all) changes nothing but the byte count.
        let usual = !m.keepsRaw && !picksHeaders
        let base = buffer.baseAddress!
        // The lines' bytes are counted in `m` once, before the blank line and at the end
        // (`count` per line did the same, more often: all happens at one packet's time).
        var uncounted = 0
        defer { if uncounted > 0 { count(m, uncounted, ctx) } }
        while consumed < buffer.count {
            let start = base + consumed
            guard let lf = memchr(start, Int32(Byte.lf), min(buffer.count - consumed, limit)) else { return false }
            let end = lf.assumingMemoryBound(to: UInt8.self)
            let length = start.distance(to: end) &+ 1
            let raw = UnsafeBufferPointer(start: start, count: length)
            consumed &+= length
            // (`withoutLineEnd`, knowing the LF: only the CR before it to test.)
            let text = UnsafeBufferPointer(start: start, count: length > 1 && end[-1] == Byte.cr ? length &- 2 : length &- 1)
            if text.isEmpty {
                if uncounted > 0 { count(m, uncounted, ctx) }
                uncounted = 0
                consume(m, raw, raw: true, ctx)
                m.headersComplete = true
                if isClient { requestHeadersDone(m, side, ctx) } else { responseHeadersDone(m, side, ctx) }
                return true
            }
            if !usual {
                header(text, raw: raw, m)
            } else if let (known, nameLength) = HTTPSyntax.KnownHeader.atStart(of: text) {
                field(text, nameLength: nameLength, known: known, raw: raw, m)
            }
            uncounted &+= length
        }
        return false
    }

    /// A line longer than `maxLineLength`: never buffered, skipped up to its LF.
    private func overlongLine(_ s: inout StreamBuffer, _ side: Side, isClient: Bool, _ ctx: PluginContext) {
        ctx.logger.debug("http: \(isClient ? "client" : "server") line longer than \(HTTPConfig.maxLineLength) bytes, skipping it")
        switch side.phase {
        case .headers:
            side.message?.notes.add(HTTPNote.lineTooLong)
            side.phase = .discard(then: .headers)
        case .body:
            // A chunk-size or trailer line this long: the framing is lost.
            if let m = side.message { m.notes.add(HTTPNote.badChunk) }
            finishMessage(side, isClient: isClient, ctx)
            messagesLost(side, isClient: isClient, ctx)
            side.phase = .discard(then: .start)
        default:
            side.phase = .discard(then: .start)
        }
        if let m = side.message, case .discard = side.phase { consume(m, s.readBytes(s.readableBytes)!, raw: false, ctx) } else { s.skip(s.readableBytes) }
    }

    /// One line (`raw`, with its line end) in place in the stream buffer: valid during the
    /// call only, what is kept is copied.
    private func line(_ raw: UnsafeBufferPointer<UInt8>, time: Timestamp, _ side: Side, isClient: Bool, _ ctx: PluginContext) {
        let text = HTTPSyntax.withoutLineEnd(raw)
        switch side.phase {
        case .start:
            let suspect = side.suspectLine
            side.suspectLine = false
            if text.isEmpty { return }  // blank lines between messages are allowed (RFC 9112 2.2)
            if isClient {
                if let r = HTTPSyntax.requestLine(text),
                   !suspect || HTTPSession.standardMethods.contains(UnsafeBufferPointer(rebasing: text[r.method]).text) {
                    startRequest(r, raw: raw, from: 0, time: time, side, ctx)
                } else if let (offset, r) = HTTPSyntax.embeddedRequestLine(Array(text)[...], methods: HTTPSession.standardMethods) {
                    // The tail of a body without a final LF, then a request. (The copy of the
                    // line is indexed from 0, as `raw`: the ranges of `r` are offsets in both.)
                    ctx.logger.debug("http: request line found after \(offset) bytes of something else")
                    startRequest(r, raw: raw, from: offset, time: time, side, ctx)
                } else {
                    ctx.logger.debug("http: skipping client line of \(raw.count) bytes: no request line")
                }
            } else {
                if let r = HTTPSyntax.statusLine(text) {
                    startResponse(r, raw: raw, from: 0, time: time, side, ctx)
                } else if let (offset, r) = HTTPSyntax.embeddedStatusLine(Array(text)[...]) {
                    ctx.logger.debug("http: status line found after \(offset) bytes of something else")
                    startResponse(r, raw: raw, from: offset, time: time, side, ctx)
                } else {
                    ctx.logger.debug("http: skipping server line of \(raw.count) bytes: no status line")
                }
            }
        case .headers:
            guard let m = side.message else { side.phase = .start; return }
            if text.isEmpty {
                consume(m, raw, raw: true, ctx)
                m.headersComplete = true
                if isClient { requestHeadersDone(m, side, ctx) } else { responseHeadersDone(m, side, ctx) }
            } else {
                // (Header lines are parsed by `headerLines`; this one is there for completeness.)
                header(text, raw: raw, m)
                consume(m, raw, raw: false, ctx)
            }
        case .body(.chunkSize):
            guard let m = side.message else { side.phase = .start; return }
            consume(m, raw, raw: true, ctx)
            guard let size = HTTPSyntax.chunkSize(text) else { badChunk(side, isClient: isClient, ctx); return }
            side.phase = size == 0 ? .body(.trailers) : .body(.chunkData(size))
        case .body(.chunkEnd):
            guard let m = side.message else { side.phase = .start; return }
            consume(m, raw, raw: true, ctx)
            if !text.isEmpty { badChunk(side, isClient: isClient, ctx); return }
            side.phase = .body(.chunkSize)
        case .body(.trailers):
            guard let m = side.message else { side.phase = .start; return }
            consume(m, raw, raw: true, ctx)
            if text.isEmpty { finishMessage(side, isClient: isClient, ctx) }
        default:
            break
        }
    }

    private func badChunk(_ side: Side, isClient: Bool, _ ctx: PluginContext) {
        side.message?.notes.add(HTTPNote.badChunk)
        finishMessage(side, isClient: isClient, ctx)
    }

    // MARK: - Messages

    /// The request whose line is `raw` from `offset` on (`r`'s ranges are offsets in `raw`).
    private func startRequest(_ r: HTTPSyntax.RequestLine, raw: UnsafeBufferPointer<UInt8>, from offset: Int,
                              time: Timestamp, _ side: Side, _ ctx: PluginContext) {
        let t = makeTransaction()
        let m = makeMessage(isRequest: true, start: time)
        // Method and target kept with one copy, the space between them too.
        let both = r.method.lowerBound..<r.target.upperBound
        let shift = m.keep(UnsafeBufferPointer(rebasing: raw[both])).lowerBound - both.lowerBound
        m.method = (r.method.lowerBound + shift)..<(r.method.upperBound + shift)
        m.target = (r.target.lowerBound + shift)..<(r.target.upperBound + shift)
        m.minorVersion = r.minorVersion
        consume(m, UnsafeBufferPointer(rebasing: raw[offset...]), raw: true, ctx)
        side.resyncing = false
        // Sent when every earlier request had its answer: nothing lost can pair with its response.
        m.afterAnswers = !transactions.contains { !$0.hasFinalResponse && !$0.responseLost }
        side.phase = .headers
        side.begin(m, of: t)
        // The last uses of `m` and `t` moved, not retained and released.
        t.request = consume m
        transactions.append(consume t)
        if transactions.count > HTTPConfig.maxPending, let first = transactions.first,
           first.toOpaque() != server.transactionRef?.toOpaque() {
            // A server that never answers: do not grow without bound.
            let oldest = transactions.removeFirst()
            oldest.notes.add(HTTPNote.tooManyPending)
            if let q = oldest.request, !q.complete { q.complete = true }
            publish(oldest, ctx)
        }
    }

    /// The response whose line is `raw` from `offset` on (`r`'s ranges are offsets in `raw`).
    private func startResponse(_ r: HTTPSyntax.StatusLine, raw: UnsafeBufferPointer<UInt8>, from offset: Int,
                               time: Timestamp, _ side: Side, _ ctx: PluginContext) {
        let m = makeMessage(isRequest: false, start: time)
        m.minorVersion = r.minorVersion
        m.statusCode = r.code
        let sent = UnsafeBufferPointer(rebasing: raw[r.phrase])
        m.phrase = HTTPSyntax.plainReasonPhrase(sent).map(m.keep) ?? m.keep(HTTPSyntax.reasonPhrase(Array(sent)[...]))
        consume(m, UnsafeBufferPointer(rebasing: raw[offset...]), raw: true, ctx)
        side.resyncing = false
        // The transaction waiting for it, or a new one, borrowed from the queue, which holds it.
        let t: Unmanaged<HTTPTransaction>
        if let waiting = transactions.first(where: { !$0.hasFinalResponse && !$0.responseLost }) {
            t = waiting
        } else {
            let made = makeTransaction()
            t = Unmanaged.passUnretained(made)
            transactions.append(consume made)
        }
        let interim = m.isInterim
        t.borrow { paired(m, $0, side) }
        // The last use of `m` moved into its place (the transaction's, or the side's for an
        // interim response), not retained and released.
        if interim { side.holdInterim(consume m) } else { t.takeUnretainedValue().response = consume m }
    }

    /// Response `m` on `side` belongs to `t` (the caller stores it).
    @inline(__always)  // (once per response)
    private func paired(_ m: HTTPMessage, _ t: HTTPTransaction, _ side: Side) {
        if !m.isInterim {
            if !settled {
                // A request sent after the loss, when nothing else awaited an answer, and a
                // response begun after the loss: the pairing is back in step.
                let clean = !t.standIn && t.request.map { $0.epoch == lossEpoch && $0.afterAnswers } == true
                    && m.epoch == lossEpoch
                if clean { settled = true } else { t.pairingLossy = true }
            }
        }
        side.phase = .headers
        // Without its request (lost, or never seen) the response's framing is a guess (it
        // may answer a HEAD): what follows is trusted again from the next clean start line.
        if t.request == nil { side.resyncing = true }
        side.begin(m, of: t)
    }

    /// A new message: the spare one of its kind when nothing else holds it any more. (The
    /// uniqueness checks make any reference still kept, by a side, a transaction or a caller
    /// up the stack, safe: such an object is simply not reused.)
    @inline(__always)  // (this and `makeTransaction`: per message, mostly a reuse)
    private func makeMessage(isRequest: Bool, start: Timestamp) -> HTTPMessage {
        let keepRaw = isRequest ? config.sendRequest : config.sendResponse
        // (`take`: the reference moved out, not retained and released.)
        if isRequest, isKnownUniquelyReferenced(&spareRequest), let m = spareRequest.take() {
            m.reset(isRequest: true, start: start, epoch: lossEpoch, keepRaw: keepRaw)
            return m
        }
        if !isRequest, isKnownUniquelyReferenced(&spareResponse), let m = spareResponse.take() {
            m.reset(isRequest: false, start: start, epoch: lossEpoch, keepRaw: keepRaw)
            return m
        }
        return HTTPMessage(isRequest: isRequest, start: start, epoch: lossEpoch, keepRaw: keepRaw)
    }

    /// A new transaction: the spare one when nothing else holds it (see `makeMessage`). Its
    /// messages become the spare ones (taken by the messages of this transaction: a request
    /// asks for its transaction first).
    @inline(__always)
    private func makeTransaction() -> HTTPTransaction {
        unpackSpareTransaction()
        if isKnownUniquelyReferenced(&spareTransaction), let t = spareTransaction.take() {
            t.reset()
            return t
        }
        return HTTPTransaction(request: nil)
    }

    /// The messages of the spare transaction, once nothing else holds it, become the spare
    /// messages.
    @inline(__always)
    private func unpackSpareTransaction() {
        guard isKnownUniquelyReferenced(&spareTransaction), let t = spareTransaction.unretained else { return }
        // Borrowed: `spareTransaction` holds it. The messages moved, not retained and released.
        // Swapped: the old spare ones (usually none) are left in `t`, for `reset` to drop.
        t.borrow { t in
            if t.request != nil { swap(&spareRequest, &t.request) }
            if t.response != nil { swap(&spareResponse, &t.response) }
        }
    }

    /// One header line: `text` without its line end, `raw` with it, both in place in the
    /// stream buffer (valid during the call only: what is kept is copied).
    private func header(_ text: UnsafeBufferPointer<UInt8>, raw: UnsafeBufferPointer<UInt8>, _ m: HTTPMessage) {
        if let first = text.first, Byte.isSpace(first) {
            // obs-fold: continues the previous field's value.
            if !m.headers.isEmpty, !HTTPSyntax.isCredentialHeader(m.headers[m.headers.count - 1].name) {
                m.headers[m.headers.count - 1].value += " " + HTTPSyntax.trimmed(text).text
            }
            appendRaw(m, raw)
            return
        }
        let nameLength = HTTPSyntax.fieldNameLength(text)
        guard nameLength > 0 else {  // no header field
            appendRaw(m, raw)
            return
        }
        // Names are matched on their bytes, in any case: no lower-cased String per header.
        let known = HTTPSyntax.KnownHeader(name: UnsafeBufferPointer(rebasing: text[..<nameLength]))
        field(text, nameLength: nameLength, known: known, raw: raw, m)
    }

    /// A header field: `text` as in `header`, its name `nameLength` bytes, `known` if the
    /// parser acts on it. (With the usual settings, `headerLines` calls this for the known
    /// fields only: the others change nothing.)
    private func field(_ text: UnsafeBufferPointer<UInt8>, nameLength: Int, known: HTTPSyntax.KnownHeader?,
                       raw: UnsafeBufferPointer<UInt8>, _ m: HTTPMessage) {
        let nameBytes = UnsafeBufferPointer(rebasing: text[..<nameLength])
        let valueBytes = HTTPSyntax.trimmed(UnsafeBufferPointer(rebasing: text[(nameLength + 1)...]))
        let credential = known == .authorization || known == .proxyAuthorization
        if m.keepsRaw {
            if credential {
                let redacted = HTTPSyntax.redactedCredentials(valueBytes)
                appendRaw(m, (Array(nameBytes) + Array(": ".utf8) + redacted + [Byte.cr, Byte.lf])[...])
            } else {
                appendRaw(m, raw)
            }
        }
        let value = UnsafeBufferPointer(rebasing: valueBytes.prefix(8192))  // what is kept of a value
        switch known {
        case .contentLength?:
            if let n = HTTPSyntax.contentLength(valueBytes), m.contentLength == nil || m.contentLength == n {
                m.contentLength = n
            } else {
                m.contentLength = -1
            }
        case .transferEncoding?:
            // The last coding decides; no coding at all changes nothing.
            var lastIsChunked: Bool?
            HTTPSyntax.forEachToken(value) { lastIsChunked = HTTPSyntax.equalsIgnoringCase($0, "chunked") }
            if let chunked = lastIsChunked {
                m.chunked = chunked
                m.otherTransferEncoding = !chunked
            }
        case .connection?:
            // The usual value names neither token: no need to split it.
            if HTTPSyntax.equalsIgnoringCase(value, "keep-alive") { break }
            HTTPSyntax.forEachToken(value) { token in
                if HTTPSyntax.equalsIgnoringCase(token, "close") { m.connectionClose = true }
                if HTTPSyntax.equalsIgnoringCase(token, "upgrade") { m.upgrade = true }
            }
        case .host?: if m.host == nil { m.host = m.keep(value) }
        case .userAgent?: if m.userAgent == nil { m.userAgent = m.keep(value) }
        case .contentType?: if m.contentType == nil { m.contentType = m.keep(value) }
        case .authorization?: if m.user == nil { m.user = HTTPSyntax.basicAuthUser(valueBytes.text) }
        case .proxyAuthorization?, nil: break
        }
        // Headers picked by the configuration are compared by name as Strings, as configured:
        // only when such settings exist.
        guard picksHeaders else { return }
        let name = nameBytes.text.lowercased()
        if let real = config.realIPHeader, name == real, m.forwardedFor == nil {
            let first = value.text.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if !first.isEmpty { m.forwardedFor = first }
        }
        if (config.sendAllHeaders || config.sendHeaders.contains(name)) && m.headers.count < 256 {
            let kept = credential ? HTTPSyntax.redactedCredentials(valueBytes)[...].text : value.text
            m.headers.append((name, kept))
        }
    }

    @inline(__always)  // (this and `responseHeadersDone`: once per message)
    private func requestHeadersDone(_ m: HTTPMessage, _ side: Side, _ ctx: PluginContext) {
        if m.chunked {
            side.phase = .body(.chunkSize)
        } else if let n = m.contentLength {
            if n < 0 {
                m.notes.add(HTTPNote.badContentLength)
                finishMessage(side, isClient: true, ctx)
            } else {
                side.phase = .body(.length(n))
            }
        } else {
            finishMessage(side, isClient: true, ctx)
        }
    }

    @inline(__always)
    private func responseHeadersDone(_ m: HTTPMessage, _ side: Side, _ ctx: PluginContext) {
        // The request borrowed, not retained: the side's transaction holds it.
        let request = side.transactionRef.flatMap { $0.borrow { $0.request.unretained } }
        let code = m.statusCode
        if m.isInterim || code == 101 || (request?.borrow { $0.methodIs("connect") } == true && code >= 200 && code < 300)
            || request?.borrow({ $0.methodIs("head") }) == true || code == 204 || code == 304 {
            finishMessage(side, isClient: false, ctx)
        } else if m.chunked {
            side.phase = .body(.chunkSize)
        } else if m.otherTransferEncoding {
            side.phase = .body(.untilClose)
        } else if let n = m.contentLength, n >= 0 {
            side.phase = .body(.length(n))
        } else {
            if m.contentLength != nil { m.notes.add(HTTPNote.badContentLength) }
            side.phase = .body(.untilClose)
        }
    }

    /// Bytes of message framing (start line, headers, chunk lines): counted, and stored if `raw`.
    private func consume(_ m: HTTPMessage, _ bytes: ArraySlice<UInt8>, raw: Bool, _ ctx: PluginContext) {
        bytes.withUnsafeBufferPointer { consume(m, $0, raw: raw, ctx) }
    }

    private func consume(_ m: HTTPMessage, _ bytes: UnsafeBufferPointer<UInt8>, raw: Bool, _ ctx: PluginContext) {
        if raw { appendRaw(m, bytes) }
        count(m, bytes.count, ctx)
    }

    @inline(__always)  // (a few instructions, per line or piece of body)
    private func count(_ m: HTTPMessage, _ n: Int, _ ctx: PluginContext) {
        m.bytes += n
        m.end = ctx.timestamp
        if m.bytes > config.maxMessageSize { m.notes.add(HTTPNote.tooLarge) }
    }

    /// `n` bytes of body from `s`: counted, and stored if the message keeps its raw text
    /// (otherwise skipped, without a slice of them).
    private func consumeBody(_ m: HTTPMessage, _ s: inout StreamBuffer, _ n: Int, _ ctx: PluginContext) {
        m.bodyBytes += n
        if m.keepsRaw { consume(m, s.readBytes(n)!, raw: true, ctx) } else { s.skip(n); count(m, n, ctx) }
    }

    private func appendRaw(_ m: HTTPMessage, _ bytes: ArraySlice<UInt8>) {
        guard m.keepsRaw else { return }
        bytes.withUnsafeBufferPointer { appendRaw(m, $0) }
    }

    private func appendRaw(_ m: HTTPMessage, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard m.keepsRaw else { return }
        let room = config.maxMessageSize - m.raw!.count
        if room > 0 { m.raw!.append(contentsOf: UnsafeBufferPointer(rebasing: bytes.prefix(room))) }
    }

    /// The message on `side` is complete (or given up on with a note).
    private func finishMessage(_ side: Side, isClient: Bool, _ ctx: PluginContext) {
        guard let m = side.messageRef else { side.phase = .start; return }
        let t = side.transactionRef
        // Both borrowed (see `Side`): the transaction is still in the queue, the message its
        // own, until `publishReady`. What the side alone held is kept alive till then.
        if side.holds {
            let held = side.endHolding()
            withExtendedLifetime(held) { m.borrow { finished($0, t, isClient: isClient, side, ctx) } }
            // An interim response (held by nothing else: a server message always has its
            // transaction): kept as the spare response, it stays alive for the caller that
            // borrowed it (`completeLines`), and the next response reuses it.
            if let interim = held.interim { spareResponse = interim }
        } else {
            side.end()
            m.borrow { finished($0, t, isClient: isClient, side, ctx) }
        }
        publishReady(ctx)
    }

    /// `finishMessage` of `m` (of `t`), once the side is done with it: all but publishing.
    @inline(__always)  // (per message, into `finishMessage`)
    private func finished(_ m: HTTPMessage, _ t: Unmanaged<HTTPTransaction>?, isClient: Bool, _ side: Side,
                          _ ctx: PluginContext) {
        m.complete = true
        if isClient {
            if case .ignore = side.phase {} else { side.phase = .start }
        } else if let t {
            t.borrow { t in
                if m.isInterim {
                    t.interimCodes.append(m.statusCode)
                    t.interimBytes += m.bytes
                    if t.response == nil, t.interimCodes.count > 64 { t.interimCodes.removeFirst() }
                }
                side.phase = .start
                if !m.isInterim, m.headersComplete {
                    let tunnel = m.statusCode == 101
                        || (m.statusCode >= 200 && m.statusCode < 300 && t.request.unretained?.borrow { $0.methodIs("connect") } == true)
                    if tunnel {
                        let method = t.request.map { UnsafeBufferPointer(rebasing: $0.kept[$0.method]).text.uppercased() } ?? ""
                        ctx.logger.debug("http: \(m.statusCode) to \(method.isEmpty ? "?" : method): not parsing this connection further")
                        // What the client sent after the request is tunnel content, not requests:
                        // the transactions parsed from it are dropped (the client does not wait
                        // for the answer, and neither does the parser, so the output never depends
                        // on how the two directions interleave within a segment).
                        client.phase = .ignore
                        server.phase = .ignore
                        client.end()
                        if let i = transactions.firstIndex(where: { $0 === t }) {
                            transactions.removeAll(after: i + 1)
                        }
                    }
                }
            }
        }
    }

    // MARK: - Publishing

    /// Publishes complete transactions from the front of the queue, in order.
    private func publishReady(_ ctx: PluginContext) {
        while let first = transactions.first, first.borrow({ $0.requestDone && ($0.responseDone || $0.responseLost) }) {
            let t = transactions.removeFirst()
            if t.standIn && t.response == nil { continue }
            publish(t, ctx)
            // Still referenced up the stack: taken apart for reuse only later (`makeMessage`).
            spareTransaction = t
        }
    }

    @inline(__always)  // (per event)
    private func publish(_ t: HTTPTransaction, _ ctx: PluginContext) {
        // No response: it may have been lost, or skipped while the server side resynchronised.
        if t.response == nil, let q = t.request, server.resyncing || (!settled && q.epoch < lossEpoch) {
            t.notes.add(HTTPNote.packetLoss)
        }
        ctx.publish(event(t, ctx))
    }

    // MARK: - Loss

    func gap(_ direction: Direction, byteCount n: Int, stream s: inout StreamBuffer, _ ctx: PluginContext) {
        let isClient = direction == .original
        ctx.logger.debug("http: \(n) bytes lost (\(direction))")
        s.skip(s.readableBytes)
        if isClient { gap(client, isClient: true, n, ctx) } else { gap(server, isClient: false, n, ctx) }
    }

    private func gap(_ side: Side, isClient: Bool, _ n: Int, _ ctx: PluginContext) {
        side.lineStart = nil
        switch side.phase {
        case .ignore:
            return
        case .body(.length(let remaining)):
            guard let m = side.message else { messagesLost(side, isClient: isClient, ctx); return }
            m.notes.add(HTTPNote.packetLoss)
            let inBody = min(n, remaining)
            m.bodyBytes += inBody
            m.bytes += inBody
            if n < remaining {
                side.phase = .body(.length(remaining - n))
            } else {
                finishMessage(side, isClient: isClient, ctx)
                if n > remaining { messagesLost(side, isClient: isClient, ctx) }
            }
        case .body(.chunkData(let remaining)) where n < remaining:
            guard let m = side.message else { messagesLost(side, isClient: isClient, ctx); return }
            m.notes.add(HTTPNote.packetLoss)
            m.bodyBytes += n
            m.bytes += n
            side.phase = .body(.chunkData(remaining - n))
        case .body(.untilClose):
            guard let m = side.message else { messagesLost(side, isClient: isClient, ctx); return }
            m.notes.add(HTTPNote.packetLoss)
            m.bodyBytes += n
            m.bytes += n
        case .body:
            // The chunked framing is lost: the message ends here, marked.
            if let m = side.message {
                m.notes.add(HTTPNote.packetLoss)
                finishMessage(side, isClient: isClient, ctx)
            }
            messagesLost(side, isClient: isClient, ctx)
        case .headers, .discard:
            messagesLost(side, isClient: isClient, ctx)
        case .start:
            messagesLost(side, isClient: isClient, ctx)
        }
    }

    /// Whole messages (or their start) may be in the lost bytes: drop the partial message on
    /// this side, account for what the loss does to the pairing, and resynchronise.
    private func messagesLost(_ side: Side, isClient: Bool, _ ctx: PluginContext) {
        lossEpoch += 1
        settled = false
        let partial = side.transaction
        side.end()
        side.phase = .start
        side.suspectLine = true
        side.resyncing = true
        if isClient {
            // A request was lost: a stand-in takes the response meant for it.
            if let t = partial, transactions.contains(where: { $0 === t }) {
                t.request = nil
                t.standIn = true
            } else {
                let t = HTTPTransaction(request: nil)
                t.standIn = true
                transactions.append(t)
            }
        } else {
            // The response to the oldest unanswered request was lost (or its start was).
            if let t = partial, t.response != nil, !(t.response!.complete) { t.response = nil }
            if let t = transactions.first(where: { !$0.hasFinalResponse && !$0.responseLost }) {
                t.borrow { t in
                    t.responseLost = true
                    t.notes.add(HTTPNote.packetLoss)
                }
            }
            publishReady(ctx)
        }
    }

    // MARK: - End of stream

    func streamEnded(_ direction: Direction, reason: StreamEnd, remaining s: inout StreamBuffer, _ ctx: PluginContext) {
        if !s.isEmpty { ctx.logger.debug("http: \(s.readableBytes) unparsed bytes at the end of the \(direction) stream") }
        s.skip(s.readableBytes)
        if direction == .original {
            if let m = client.message {
                m.notes.add(HTTPNote.incompleteRequest)
                m.complete = true
                client.end()
            }
            client.phase = .ignore
            publishReady(ctx)
            return
        }
        endResponse(closedCleanly: reason == .fin, note: reason == .fin ? HTTPNote.incompleteResponse : HTTPNote.resetBeforeEnd, ctx)
        server.phase = .ignore
        flushAll(ctx)
    }

    func close(_ reason: CloseReason, _ ctx: PluginContext) {
        if let m = client.message {
            m.notes.add(HTTPNote.incompleteRequest)
            m.complete = true
            client.end()
        }
        let note: String
        switch reason {
        case .closed: note = HTTPNote.incompleteResponse
        case .timeout: note = HTTPNote.timeoutBeforeEnd
        case .endOfInput: note = HTTPNote.incompleteResponse
        }
        endResponse(closedCleanly: reason == .closed, note: note, ctx)
        client.phase = .ignore
        server.phase = .ignore
        flushAll(ctx)
    }

    /// The server's stream ended: a close-delimited body is complete (when the end is a FIN);
    /// any other partial response is published with `note`.
    private func endResponse(closedCleanly: Bool, note: String, _ ctx: PluginContext) {
        guard let m = server.message else { return }
        if case .body(.untilClose) = server.phase, closedCleanly {
        } else {
            m.notes.add(note)
        }
        if !m.isInterim || m.headersComplete {
            m.headersComplete = true
        }
        let t = server.transaction
        m.complete = true
        server.end()
        if m.isInterim, let t {
            t.interimCodes.append(m.statusCode)
            t.interimBytes += m.bytes
        }
    }

    /// Publishes every transaction, complete or not, in order.
    private func flushAll(_ ctx: PluginContext) {
        // A side reading a message of one (the client, the server's stream having ended) holds
        // it from now on (see `Side`).
        client.holdTransaction()
        server.holdTransaction()
        // (Publishing changes nothing in the queue: each is taken out in turn.)
        while !transactions.isEmpty {
            let t = transactions.removeFirst()
            if t.standIn && t.response == nil { continue }
            if let q = t.request, !q.complete {
                q.notes.add(HTTPNote.incompleteRequest)
                q.complete = true
            }
            publish(t, ctx)
        }
    }
}

import Foundation  // trimmingCharacters
