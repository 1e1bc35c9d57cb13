import WirebeatCore
#if canImport(Glibc)
import Glibc  // memchr
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-connection SMTP state: a parser per direction, the commands waiting for their replies
/// (FIFO, so pipelined commands pair with replies in order) and the mail transactions in flight.
///
/// Both parsers are driven by bytes only (never by segment boundaries), so the output does not
/// depend on how the stream was split into packets.
public final class SMTPSession {
    enum ClientMode {
        /// Untrusted position (start of capture, after loss): wait for a plausible command line.
        case resync
        case command
        /// Paused until the reply to the last command (DATA, AUTH, STARTTLS): what the client
        /// sends next depends on it. Its bytes wait in `clientStash` meanwhile.
        case waiting
        /// The next line is a response in an AUTH exchange (after a 334).
        case authLine
        case data(atLineStart: Bool)
        case chunk(remaining: Int)
        /// The reply to DATA was lost: the next line tells whether message data follows.
        case dataOrCommand
        /// Skipping to the end of an overlong or damaged line, then `afterDiscard`.
        case discard
        /// TLS started, or the connection is closed.
        case ignore
    }

    enum ServerMode { case lines, discard, ignore }

    let config: SMTPConfig
    // `@exclusivity(unchecked)`: per-connection state touched on the pipeline's one thread,
    // never through overlapping inout accesses; the run-time check of every access was a
    // tenth of the instructions.
    @exclusivity(unchecked) var clientMode = ClientMode.resync
    @exclusivity(unchecked) var afterDiscard = ClientMode.resync
    /// A 220 answered a STARTTLS we did not see (or whose reply was lost): if the client's
    /// next bytes are a TLS record, TLS started.
    @exclusivity(unchecked) var tlsCheck = false
    /// Command whose line is being discarded (its bytes are still counted).
    @exclusivity(unchecked) var discardItem: PendingCommand?
    /// The line being discarded was damaged by a gap: its reply (if any) is one more the
    /// commands we see do not account for.
    @exclusivity(unchecked) var discardAfterLoss = false
    /// Client command bytes were lost since the last transaction boundary: a transaction
    /// starting without a MAIL we saw may have lost it.
    @exclusivity(unchecked) var mailMayBeLost = false
    /// Client command bytes were lost before any HELO/EHLO was seen: `smtp.helo` is unknown.
    @exclusivity(unchecked) var heloMayBeLost = false
    @exclusivity(unchecked) var serverMode = ServerMode.lines
    @exclusivity(unchecked) var pending: [PendingCommand] = []
    /// Reply whose first lines have arrived.
    @exclusivity(unchecked) var reply: Reply?
    /// The last complete reply's phrase buffer, reused by the next reply.
    @exclusivity(unchecked) var sparePhrasesBuffer: [UInt8] = []
    @exclusivity(unchecked) var replyCache = ReplyCache()
    @exclusivity(unchecked) var recentArguments = RecentArguments()
    /// What publishing the header fields keeps from mail to mail.
    @exclusivity(unchecked) var headerState = MessageHeaders.State()
    /// Transaction that new RCPT/DATA/BDAT commands belong to.
    @exclusivity(unchecked) var current: MailTransaction?
    /// Transaction receiving message data (DATA content or BDAT chunks).
    @exclusivity(unchecked) var dataTransaction: MailTransaction?
    /// Transaction of a DATA whose reply was lost, for `.dataOrCommand`.
    @exclusivity(unchecked) var lostDataTransaction: MailTransaction?
    /// Unfinished transactions, oldest first.
    @exclusivity(unchecked) var transactions: [MailTransaction] = []
    /// The HELO/EHLO name as JSON text (`smtp.helo`), encoded once for all the transactions.
    @exclusivity(unchecked) var helo: [UInt8]?
    /// The first server reply may still be the greeting.
    @exclusivity(unchecked) var greetingPossible = true
    /// Client commands were lost: replies may pair with the wrong commands until the queue
    /// drains, so commands queued meanwhile carry "packet loss".
    @exclusivity(unchecked) var clientLoss = false
    /// Client bytes were lost while waiting for the reply to a blocking command.
    @exclusivity(unchecked) var lostWhileWaiting = false
    /// Server bytes were lost: the next reply paired with a command may be a damaged one's tail.
    @exclusivity(unchecked) var serverLoss = false
    /// Client bytes not parsed yet: a partial line, or bytes sent while waiting for a reply.
    /// They are parsed as soon as that reply is, before the server's next reply, so the
    /// pairing does not depend on how the core interleaves the two directions' segments.
    @exclusivity(unchecked) var clientStash = StreamBuffer()

    /// Completed commands and finished transactions kept for reuse (see `recycle`).
    @exclusivity(unchecked) var spareCommands: [PendingCommand] = []
    @exclusivity(unchecked) var spareTransactions: [MailTransaction] = []
    static let maxSpares = 4

    static let maxPending = 1024
    var maxStash: Int { max(65_536, 4 * config.maxLineLength) }

    /// No SYN was seen: HELO/EHLO may have gone by before the capture (or before state expired).
    let startedMidStream: Bool

    init(config: SMTPConfig, startedMidStream: Bool = false) {
        self.config = config
        self.startedMidStream = startedMidStream
    }

    /// A transaction of a session picked up mid-stream may lack its HELO: say so.
    private func noteMissingHelo(_ t: MailTransaction) {
        if helo == nil && startedMidStream { t.notes.add(Note.heloNotSeen) }
    }

    // MARK: - Client → server

    var isWaiting: Bool { if case .waiting = clientMode { return true } else { return false } }

    /// Client bytes are parsed as they arrive; whatever cannot be parsed yet (a partial line,
    /// bytes sent while waiting for a reply) moves to `clientStash`, where a server reply that
    /// changes the client's mode finds it at once. So no byte is parsed later than the reply
    /// that decides its meaning, whichever way the core interleaves the two directions.
    func parseClient(_ s: inout StreamBuffer, _ ctx: PluginContext) {
        if tlsCheck, let first = s.byte(at: 0) {
            tlsCheck = false
            if first == 0x16 {  // a TLS handshake record
                ctx.logger.debug("smtp: TLS after a STARTTLS we did not see answered, no more parsing")
                clientMode = .ignore
                serverMode = .ignore
                clientStash.removeAll()
                flushPending(note: Note.packetLoss, ctx)
            }
        }
        if clientStash.isEmpty { parseClientBytes(&s, ctx) }
        // Past the stash's limit (a client sending a whole message without waiting for 354),
        // bytes stay in the core's buffer.
        stash(&s)
        drainStash(ctx)
    }

    private func endDiscard() {
        discardItem = nil
        clientMode = afterDiscard
        if discardAfterLoss {
            discardAfterLoss = false
            clientLoss = true
            current?.notes.add(Note.packetLoss)
        }
    }

    /// Moves client bytes into the stash (bounded while waiting: a client that sends a whole
    /// message without waiting for 354 leaves the excess to the core's buffer).
    private func stash(_ s: inout StreamBuffer, unbounded: Bool = false) {
        guard !s.isEmpty else { return }  // (usually all parsed: no room to work out)
        let room = isWaiting && !unbounded ? max(0, maxStash - clientStash.readableBytes) : s.readableBytes
        let n = min(room, s.readableBytes)
        guard n > 0 else { return }
        clientStash.append(contentsOf: s.readable.prefix(n))
        s.skip(n)
    }

    /// Parses stashed client bytes, unless still waiting for a reply.
    private func drainStash(_ ctx: PluginContext) {
        guard !clientStash.isEmpty, !isWaiting else { return }
        parseClientBytes(&clientStash, ctx)
        if clientStash.isEmpty { clientStash.removeAll() }
    }

    private func parseClientBytes(_ s: inout StreamBuffer, _ ctx: PluginContext) {
        while true {
            switch clientMode {
            case .ignore:
                s.skip(s.readableBytes)
                return
            case .waiting:
                return
            case .data(let atLineStart):
                if !consumeMessageData(&s, atLineStart: atLineStart, ctx) { return }
            case .chunk(let remaining):
                let n = min(remaining, s.readableBytes)
                guard n > 0 else { return }
                let bytes = s.readBytes(n)!
                if let t = dataTransaction { bytes.withUnsafeBufferPointer { t.addData($0) } }
                if n == remaining {
                    dataTransaction = nil
                    clientMode = .command
                } else {
                    clientMode = .chunk(remaining: remaining - n)
                }
            case .discard:
                if let lf = s.offsetOfLineFeed() {
                    discardItem?.addClientBytes(lf + 1)
                    s.skip(lf + 1)
                    endDiscard()
                } else {
                    discardItem?.addClientBytes(s.readableBytes)
                    s.skip(s.readableBytes)
                    return
                }
            case .resync, .command, .authLine, .dataOrCommand:
                // (All parsed, the usual case after a line: no search needed to know it.)
                if s.isEmpty { return }
                let limit = config.maxLineLength + 2
                guard let lf = s.offsetOfLineFeed(limit: limit) else {
                    if s.readableBytes >= limit {
                        overlongClientLine(&s, ctx)
                        continue
                    }
                    return
                }
                let raw = s.readable.prefix(lf + 1)
                if case .dataOrCommand = clientMode {
                    let (verb, _, rest) = SMTPSyntax.splitCommand(raw.withoutLineEnd)
                    if !SMTPSyntax.isPlausibleCommand(verb: verb, rest: rest) {
                        startLostData(ctx)
                        continue
                    }
                }
                s.skip(lf + 1)
                clientLine(raw, ctx)
            }
        }
    }

    private func clientLine(_ raw: ArraySlice<UInt8>, _ ctx: PluginContext) {
        let line = raw.withoutLineEnd
        if case .authLine = clientMode {
            authResponse(line, byteCount: raw.count)
            return
        }
        let (verb, word, rest) = SMTPSyntax.splitCommand(line)
        switch clientMode {
        case .resync, .dataOrCommand:
            guard SMTPSyntax.isPlausibleCommand(verb: verb, rest: rest) else {
                ctx.logger.debug("smtp: resync: skipping client line of \(raw.count) bytes")
                return
            }
            clientMode = .command
        default:
            break
        }
        command(verb: verb, word: word, rest: rest, raw: raw, ctx)
    }

    private func command(verb: Verb, word: ArraySlice<UInt8>, rest: ArraySlice<UInt8>, raw: ArraySlice<UInt8>,
                         _ ctx: PluginContext) {
        let item = newCommand(verb: verb, word: word, start: ctx.timestamp)
        // (A MAIL's or RCPT's, with its path: see `mailArguments`.)
        if !rest.isEmpty && verb != .mail && verb != .rcpt { SMTPJSON.encode(rest, as: &item.param.bytes) }
        if config.sendRequest { item.request = Array(raw) }
        switch verb {
        case .helo, .ehlo:
            if let name = rest.words.first { helo = SMTPJSON.string(name) }
            heloMayBeLost = false
            item.abortTarget = takeCurrent()
        case .rset, .quit:
            item.abortTarget = takeCurrent()
        case .starttls:
            item.abortTarget = takeCurrent()
            item.blocksClient = true
        case .mail:
            let t = newTransaction(start: ctx.timestamp, implicit: false)
            if heloMayBeLost { t.notes.add(Note.packetLoss) }
            noteMissingHelo(t)
            mailArguments(rest, item, t)
            if let c = current, !c.finished, !c.dataStarted { t.previous = c }
            mailMayBeLost = false
            begin(t)
            item.transaction = t
        case .rcpt:
            let t = current ?? beginImplicit(ctx.timestamp)
            rcptArguments(rest, item, t)
            item.transaction = t
        case .data:
            item.transaction = current
            item.blocksClient = true
        case .bdat:
            guard let (size, last) = SMTPSyntax.bdatArguments(rest) else {
                // The chunk length is unknown, so are the bytes that follow.
                item.transaction = current
                clientMode = .resync
                break
            }
            let t = current ?? beginImplicit(ctx.timestamp)
            t.dataStarted = true
            item.transaction = t
            item.isChunk = true
            item.bdatLast = last
            if last {
                t.dataComplete = true
                current = nil
            }
            if size > 0 {
                dataTransaction = t
                clientMode = .chunk(remaining: size)
            }
        case .auth:
            let words = rest.words
            let mechanism = words.first?.upperText ?? ""
            var exchange = AuthExchange(mechanism: mechanism)
            if words.count > 1 { exchange.clientResponse(words[1]) }
            item.auth = exchange
            if !mechanism.isEmpty { item.param.bytes = SMTPJSON.quoted(mechanism) }
            if config.sendRequest {
                var redacted = Array("AUTH".utf8)
                if !mechanism.isEmpty { redacted += [Byte.space] + Array(mechanism.utf8) }
                if words.count > 1 { redacted += [Byte.space] + AuthExchange.redacted }
                item.request = redacted + [Byte.cr, Byte.lf]
            }
            item.transaction = current
            item.blocksClient = true
        default:
            item.transaction = current
        }
        if item.blocksClient { clientMode = .waiting }
        enqueue(item, clientBytes: raw.count, ctx)
    }

    /// `smtp.request.param` and `smtp.mail_from` of a MAIL command, copied from a recent
    /// MAIL's when the arguments are the same (as they usually are, mail after mail).
    private func mailArguments(_ rest: ArraySlice<UInt8>, _ item: PendingCommand, _ t: MailTransaction) {
        if let i = recentArguments.find(.mail, rest) {
            item.param.share(recentArguments.param(i))
            t.mailFrom.share(recentArguments.path(i))
            return
        }
        if !rest.isEmpty { SMTPJSON.encode(rest, as: &item.param.bytes) }
        if let from = SMTPSyntax.mailPath(rest, keyword: SMTPSyntax.from) { SMTPJSON.encode(from, as: &t.mailFrom.bytes) }
        recentArguments.store(.mail, rest, param: item.param.bytes, path: t.mailFrom.bytes[...])
    }

    /// The same for a RCPT: `smtp.request.param` and the address added to `smtp.rcpt_to`.
    private func rcptArguments(_ rest: ArraySlice<UInt8>, _ item: PendingCommand, _ t: MailTransaction) {
        if let i = recentArguments.find(.rcpt, rest) {
            item.param.share(recentArguments.param(i))
            let path = recentArguments.path(i)
            if !path.isEmpty { item.recipient = t.addRecipient(json: path, listed: recentArguments.listed(i)) }
            return
        }
        if !rest.isEmpty { SMTPJSON.encode(rest, as: &item.param.bytes) }
        var path: ArraySlice<UInt8> = []
        if let to = SMTPSyntax.mailPath(rest, keyword: SMTPSyntax.to) {
            let range = t.addRecipient(to)
            item.recipient = range
            path = t.rcptTo.bytes[range]
        }
        recentArguments.store(.rcpt, rest, param: item.param.bytes, path: path)
    }

    private func enqueue(_ item: PendingCommand, clientBytes: Int, _ ctx: PluginContext) {
        if clientLoss { item.notes.add(Note.packetLoss) }
        item.addClientBytes(clientBytes)
        pending.append(item)
        if pending.count > SMTPSession.maxPending {
            // A peer that never answers: do not grow without bound.
            var oldest = removeFirstPending()
            oldest.notes.add(Note.noResponse)
            complete(oldest, reply: nil, ctx)
            recycle(&oldest)
        }
    }

    /// The oldest command waiting. (Usually the only one: `removeLast()` then, as Array's
    /// `removeFirst()` goes through a generic subrange replacement, several hundred instructions.)
    @discardableResult
    private func removeFirstPending() -> PendingCommand {
        pending.count == 1 ? pending.removeLast() : pending.removeFirst()
    }

    private func authResponse(_ line: ArraySlice<UInt8>, byteCount: Int) {
        guard let item = pending.last, item.auth != nil else {
            clientMode = .resync
            return
        }
        item.auth?.clientResponse(line)
        item.addClientBytes(byteCount)
        item.request?.append(contentsOf: AuthExchange.redacted + [Byte.cr, Byte.lf])
        clientMode = .waiting
    }

    /// A line longer than `max_line_length`: dropped up to its LF, never buffered.
    private func overlongClientLine(_ s: inout StreamBuffer, _ ctx: PluginContext) {
        ctx.logger.debug("smtp: client line longer than \(config.maxLineLength) bytes, discarding")
        switch clientMode {
        case .command:
            // The server answers it ("500 line too long"): a placeholder keeps the pairing in step.
            let (verb, word, _) = SMTPSyntax.splitCommand(s.readable.prefix(64))
            let item = newCommand(verb: verb, word: word, start: ctx.timestamp)
            item.notes.add(Note.lineTooLong)
            item.isPlaceholder = true
            item.transaction = current
            enqueue(item, clientBytes: 0, ctx)
            discardItem = item
            afterDiscard = .command
        case .authLine:
            // Long GSSAPI tokens: the line is consumed, not decoded.
            if let item = pending.last, item.auth != nil {
                discardItem = item
                item.request?.append(contentsOf: AuthExchange.redacted + [Byte.cr, Byte.lf])
            }
            afterDiscard = .waiting
        case .dataOrCommand:
            startLostData(ctx)
            return
        default:
            afterDiscard = .resync
        }
        // No LF in the first `limit` bytes: drop those; `.discard` goes on to the LF.
        let limit = config.maxLineLength + 2
        discardItem?.addClientBytes(limit)
        s.skip(limit)
        clientMode = .discard
    }

    /// DATA content: consumed line by line as it arrives (the body is never buffered), dots
    /// unstuffed, header section collected. Only a possible start of the terminator (`.` or
    /// `.\r` at a line start) is left in the buffer. Returns false when more bytes are needed.
    private func consumeMessageData(_ s: inout StreamBuffer, atLineStart: Bool, _ ctx: PluginContext) -> Bool {
        guard let t = dataTransaction else {
            clientMode = .resync
            return true
        }
        // One pass over the buffer's bytes, no slice per line: only a line that starts with
        // a dot matters, so the scan looks for a LF followed by a dot, 64 bytes at a time
        // (`nextDotLine`; a memchr per line cost ~60 instructions a line, ~1.8 k a message of
        // 30 lines). The data goes to `t` in runs, cut only where a line starts with a dot.
        var lineStart = atLineStart
        var terminatorFound = false
        let used: Int = s.withReadableBytes { buf in
            let n = buf.count
            var i = 0
            var run = 0  // where the data not yet given to `t` starts
            func addRun(to end: Int) {
                if end > run { t.addData(UnsafeBufferPointer(rebasing: buf[run..<end])) }
            }
            while true {
                if lineStart {
                    guard i < n else { break }
                    if buf[i] == Byte.dot {
                        guard i + 1 < n else { break }
                        var terminator = 0
                        if buf[i + 1] == Byte.lf {
                            terminator = 2
                        } else if buf[i + 1] == Byte.cr {
                            guard i + 2 < n else { break }
                            if buf[i + 2] == Byte.lf { terminator = 3 }
                        }
                        addRun(to: i)
                        if terminator > 0 {
                            t.clientBytes += terminator
                            terminatorFound = true
                            return i + terminator
                        }
                        // Dot-stuffing: the leading dot is transparency, not message content.
                        i += 1
                        run = i
                        t.clientBytes += 1
                    }
                    lineStart = false
                }
                guard let lf = SMTPSession.nextDotLine(buf, from: i) else {
                    // No line after `i` starts with a dot; the next bytes start one if the
                    // last byte is a LF.
                    if i < n { lineStart = buf[n - 1] == Byte.lf }
                    i = n
                    break
                }
                i = lf + 1
                lineStart = true
            }
            addRun(to: i)
            return i
        }
        s.skip(used)
        if terminatorFound {
            endOfData(t, ctx)
            return true
        }
        clientMode = .data(atLineStart: lineStart)
        return false
    }

    /// The first LF at or after `from` that a dot follows, else the last byte if it is a LF
    /// (what follows it is not there yet), else nil.
    static func nextDotLine(_ buf: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        let n = buf.count
        guard from < n, let base = buf.baseAddress else { return nil }
        let raw = UnsafeRawPointer(base)
        // Each byte and the one after it compared 16 at a time (SSE2), four such blocks per
        // test of the result: ~0.4 instructions a byte. A block with a hit is looked at
        // byte by byte below.
        let lf = SIMD16<UInt8>(repeating: Byte.lf), dot = SIMD16<UInt8>(repeating: Byte.dot)
        @inline(__always) func hits(_ at: Int) -> SIMDMask<SIMD16<Int8>> {
            (raw.loadUnaligned(fromByteOffset: at, as: SIMD16<UInt8>.self) .== lf)
                .& (raw.loadUnaligned(fromByteOffset: at + 1, as: SIMD16<UInt8>.self) .== dot)
        }
        @inline(__always) func any(_ m: SIMDMask<SIMD16<Int8>>) -> Bool {
            let words = unsafeBitCast(m, to: SIMD2<UInt64>.self)
            return words[0] | words[1] != 0
        }
        var i = from
        while i + 65 <= n && !any(hits(i) .| hits(i + 16) .| hits(i + 32) .| hits(i + 48)) { i += 64 }
        while i + 17 <= n && !any(hits(i)) { i += 16 }
        while i + 1 < n {
            if base[i] == Byte.lf && base[i + 1] == Byte.dot { return i }
            i += 1
        }
        return base[n - 1] == Byte.lf ? n - 1 : nil
    }

    private func endOfData(_ t: MailTransaction, _ ctx: PluginContext) {
        t.dataComplete = true
        t.headers.abandon()
        if current === t { current = nil }
        dataTransaction = nil
        clientMode = .command
        let item = newCommand(.endOfData, verb: .other, otherVerb: ".", start: ctx.timestamp)
        item.transaction = t
        enqueue(item, clientBytes: 0, ctx)
    }

    /// The reply to DATA was lost and the client sends something that is not a command.
    private func startLostData(_ ctx: PluginContext) {
        let t = lostDataTransaction.flatMap { $0.finished ? nil : $0 } ?? beginImplicit(ctx.timestamp)
        lostDataTransaction = nil
        t.notes.add(Note.packetLoss)
        t.dataStarted = true
        current = t
        dataTransaction = t
        clientMode = .data(atLineStart: true)
    }

    // MARK: - Server → client

    func parseServer(_ s: inout StreamBuffer, _ ctx: PluginContext) {
        while true {
            switch serverMode {
            case .ignore:
                s.skip(s.readableBytes)
                return
            case .discard:
                guard let lf = s.offsetOfLineFeed() else {
                    s.skip(s.readableBytes)
                    return
                }
                s.skip(lf + 1)
                serverMode = .lines
            case .lines:
                if s.isEmpty { return }  // (as in `parseClientBytes`)
                let limit = config.maxLineLength + 2
                guard let lf = s.offsetOfLineFeed(limit: limit) else {
                    if s.readableBytes >= limit {
                        ctx.logger.debug("smtp: server line longer than \(config.maxLineLength) bytes, discarding")
                        greetingPossible = false
                        s.skip(limit)
                        serverMode = .discard
                        continue
                    }
                    return
                }
                // The line parsed in place (the slice made once, no slice per step).
                let n = lf + 1
                s.withReadableBytes { serverLine(UnsafeBufferPointer(rebasing: $0[..<n]), ctx) }
                s.skip(n)
            }
        }
    }

    private func serverLine(_ raw: UnsafeBufferPointer<UInt8>, _ ctx: PluginContext) {
        guard let (code, isLast, text) = SMTPSyntax.replyLine(SMTPSyntax.withoutLineEnd(raw)) else {
            ctx.logger.debug("smtp: skipping server line of \(raw.count) bytes that is no reply")
            greetingPossible = false
            return
        }
        // A one-line reply (the usual kind) may be the same as the last one to such a command.
        let cacheSlot = reply == nil && isLast ? ReplyCache.slot(answering: pending.first) : nil
        if let cacheSlot, let json = replyCache.phrasesJSON(slot: cacheSlot, text: text) {
            var r = Reply(code: code, raw: config.sendResponse ? [] : nil, start: ctx.timestamp,
                          end: ctx.timestamp, phrasesJSON: json)
            r.bytes = raw.count
            if r.raw != nil { r.raw!.append(contentsOf: raw) }
            handleReply(r, ctx)
            return
        }
        // Taken out of `reply` so that appending to its buffers does not copy them.
        var r = reply.take() ?? Reply(code: code, raw: config.sendResponse ? [] : nil, start: ctx.timestamp,
                                      end: ctx.timestamp, phrasesBuffer: takeSparePhrasesBuffer())
        r.code = code
        r.end = ctx.timestamp
        r.bytes += raw.count
        r.addPhrase(text)
        if r.raw != nil && r.raw!.count < Reply.maxRawBytes { r.raw!.append(contentsOf: raw) }
        if isLast {
            r.finish()
            if let cacheSlot { replyCache.store(slot: cacheSlot, text: text, phrasesJSON: r.phrasesJSON) }
            handleReply(r, ctx)
            sparePhrasesBuffer = r.recyclePhrasesBuffer()
        } else {
            reply = r
        }
    }

    private func takeSparePhrasesBuffer() -> [UInt8] {
        var buffer: [UInt8] = []
        swap(&buffer, &sparePhrasesBuffer)
        return buffer
    }

    private func handleReply(_ r: Reply, _ ctx: PluginContext) {
        defer {
            if pending.isEmpty { clientLoss = false }
            drainStash(ctx)
        }
        let afterLoss = serverLoss
        if greetingPossible {
            greetingPossible = false
            // The greeting codes of RFC 5321 3.1, at the very start of the server's stream.
            // A client talking first (or seen first) does not change what the 220 is.
            if [220, 421, 554].contains(r.code)
                && (pending.isEmpty || (r.code == 220 && pending[0].verb != .starttls)) {
                var e = promptEvent(r, ctx)
                // Without the SYN, a first 220 may answer a STARTTLS that went by unseen.
                if startedMidStream { e.addNote(Note.greetingNotCertain) }
                ctx.publish(consume e)   // not a copy: the event's storage goes back to the pool
                return
            }
        }
        // 334 only answers AUTH, 354 only DATA, 220 only STARTTLS (after the greeting): anything
        // else means the pairing is off.
        // (`pending[0]`, not a binding of it: `recycle` needs the only reference.)
        guard !pending.isEmpty, !(r.code == 334 && pending[0].auth == nil),
              !(r.code == 354 && pending[0].verb != .data), !(r.code == 220 && pending[0].verb != .starttls) else {
            unexpectedReply(r, ctx)
            return
        }
        // The first reply after lost server bytes may have lost its first lines.
        if afterLoss {
            pending[0].notes.add(Note.packetLoss)
            serverLoss = false
        }
        if r.code == 334 && pending[0].auth != nil {
            // An AUTH challenge: the exchange goes on.
            pending[0].addReply(r)
            if case .waiting = clientMode, pending.count == 1 { clientMode = .authLine }
            return
        }
        var head = removeFirstPending()
        complete(head, reply: r, ctx)
        recycle(&head)
    }

    // MARK: - Reuse

    private func newCommand(verb: Verb, word: ArraySlice<UInt8>, start: Timestamp) -> PendingCommand {
        newCommand(.command, verb: verb, otherVerb: verb == .other ? word.upperText : nil, start: start)
    }

    private func newCommand(_ kind: PendingCommand.Kind, verb: Verb, otherVerb: String?,
                            start: Timestamp) -> PendingCommand {
        guard let item = spareCommands.popLast() else {
            return PendingCommand(kind, verb: verb, otherVerb: otherVerb, start: start)
        }
        item.reuse(kind, verb: verb, otherVerb: otherVerb, start: start)
        return item
    }

    private func newTransaction(start: Timestamp, implicit: Bool) -> MailTransaction {
        guard let t = spareTransactions.popLast() else {
            return MailTransaction(start: start, implicit: implicit, helo: helo)
        }
        t.reuse(start: start, implicit: implicit, helo: helo)
        return t
    }

    /// A completed command kept for reuse, unless anything else still refers to it (such as
    /// `discardItem`).
    private func recycle(_ item: inout PendingCommand) {
        guard spareCommands.count < SMTPSession.maxSpares, isKnownUniquelyReferenced(&item) else { return }
        item.clear()
        spareCommands.append(item)
    }

    /// A finished transaction kept for reuse, unless anything else still refers to it.
    private func recycle(_ t: inout MailTransaction) {
        guard spareTransactions.count < SMTPSession.maxSpares, isKnownUniquelyReferenced(&t) else { return }
        t.clear()
        spareTransactions.append(t)
    }

    /// A reply with no command to pair it with (lost commands, capture started mid-session).
    private func unexpectedReply(_ r: Reply, _ ctx: PluginContext) {
        if case .discard = clientMode, [220, 334, 354].contains(r.code) {
            // The client waited for this reply, so the damaged line it answers is complete.
            endDiscard()
        }
        switch (r.code, clientMode) {
        case (_, .data):
            guard let t = dataTransaction else { break }
            // E.g. 421 during the data, or the terminator was lost in a gap.
            t.notes.add(Note.earlyReply)
            t.serverBytes += r.bytes
            dataTransaction = nil
            clientMode = .resync
            finish(t, type: "ABORTED", reply: r, ctx)
            return
        case (334, .command), (334, .resync):
            // A challenge to an AUTH we did not see: the client's next line is a credential and
            // must never be taken for a command.
            clientMode = .authLine
        case (354, .command), (354, .resync), (354, .waiting), (354, .authLine), (354, .dataOrCommand):
            // Whatever we thought was pending, message data follows; its end re-aligns pairing.
            if !pending.isEmpty { flushPending(note: Note.packetLoss, ctx) }
            let t = current.flatMap { $0.finished || $0.dataComplete ? nil : $0 } ?? beginImplicit(r.start)
            if clientLoss || mailMayBeLost { t.notes.add(Note.packetLoss) }
            t.dataStarted = true
            t.serverBytes += r.bytes
            current = t
            dataTransaction = t
            clientMode = .data(atLineStart: true)
            return
        case (220, .command), (220, .resync), (220, .waiting), (220, .authLine), (220, .dataOrCommand):
            if !pending.isEmpty { flushPending(note: Note.packetLoss, ctx) }
            tlsCheck = true
        default:
            break
        }
        ctx.logger.debug("smtp: dropping reply \(r.code): no command waiting for it")
    }

    /// A command's reply arrived (or never will: `reply == nil`, with a note already added).
    /// Publishes its COMMAND event, then applies what the reply means for the session.
    func complete(_ item: PendingCommand, reply: Reply?, _ ctx: PluginContext) {
        if let reply { item.addReply(reply) }
        let t = item.transaction.flatMap { $0.finished ? nil : $0 }
        if item.notes.contains(Note.packetLoss) { t?.notes.add(Note.packetLoss) }
        let success = reply?.isSuccess ?? false

        if item.kind == .endOfData {
            if let t {
                if reply == nil { t.notes.add(item.notes) }
                finish(t, type: "MAIL", reply: reply, ctx)
            }
            return
        }

        let tlsStarted = item.verb == .starttls && reply?.code == 220
        ctx.publish(commandEvent(item, reply: reply, tlsStarted: tlsStarted, ctx))

        switch item.isPlaceholder ? .other : item.verb {
        case .mail:
            guard let t else { break }
            let previous = t.previous
            t.previous = nil
            guard let reply else { break }
            if success {
                t.mailAccepted = true
                if let p = previous { abort(p, note: Note.replaced, end: reply.end, ctx) }
            } else {
                // Refused: no transaction. A nested MAIL leaves the earlier one in place.
                t.mailAccepted = false
                finish(t, type: "ABORTED", reply: nil, ctx)
                if current == nil, let p = previous, !p.finished, !p.dataStarted { current = p }
            }
        case .rcpt:
            guard let t, let recipient = item.recipient, let reply else { break }
            if reply.isSuccess { t.rcptAccepted = true } else { t.rejectRecipient(recipient) }
        case .data:
            guard let reply else { break }
            if reply.code == 354 {
                let target = t ?? beginImplicit(item.start)
                target.dataStarted = true
                if lostWhileWaiting {
                    target.notes.add(Note.packetLoss)
                    target.headers.abandon()
                }
                current = target
                if case .waiting = clientMode {
                    dataTransaction = target
                    clientMode = .data(atLineStart: true)
                }
            }
        case .bdat:
            guard let t, item.isChunk else { break }
            if let reply {
                if !reply.isSuccess || item.bdatLast { finish(t, type: "MAIL", reply: reply, ctx) }
            } else if item.bdatLast {
                t.notes.add(item.notes)
                finish(t, type: "MAIL", reply: nil, ctx)
            }
        case .rset, .quit:
            if let target = item.abortTarget {
                abort(target, note: Note.abortedBy(item.verbName), end: reply?.end, ctx, extra: item.notes)
            }
        case .helo, .ehlo, .starttls:
            guard let target = item.abortTarget else { break }
            if reply == nil || success || tlsStarted {
                abort(target, note: Note.abortedBy(item.verbName), end: reply?.end, ctx, extra: item.notes)
            } else if current == nil, !target.finished {
                current = target  // refused: the transaction goes on
            }
        default:
            break
        }

        if item.blocksClient, reply != nil {
            switch clientMode {
            case .waiting, .authLine:
                if tlsStarted {
                    clientMode = .ignore
                    serverMode = .ignore
                } else if !(item.verb == .data && reply?.code == 354) {
                    clientMode = lostWhileWaiting ? .resync : .command
                }
            default:
                break
            }
            lostWhileWaiting = false
        }
    }

    // MARK: - Transactions

    private func begin(_ t: MailTransaction) {
        // Usually just the previous transaction, finished: dropped without the generic
        // `removeAll(where:)` (several hundred instructions).
        while transactions.last?.finished == true {
            var old = transactions.removeLast()
            recycle(&old)
        }
        if transactions.contains(where: { $0.finished }) { transactions.removeAll { $0.finished } }
        transactions.append(t)
        current = t
    }

    private func beginImplicit(_ start: Timestamp) -> MailTransaction {
        let t = newTransaction(start: start, implicit: true)
        if mailMayBeLost || heloMayBeLost { t.notes.add(Note.packetLoss) }
        noteMissingHelo(t)
        begin(t)
        return t
    }

    private func takeCurrent() -> MailTransaction? {
        defer { current = nil; mailMayBeLost = false }
        return current
    }

    private func abort(_ t: MailTransaction, note: String, end: Timestamp?, _ ctx: PluginContext,
                       extra: Notes = Notes()) {
        guard !t.finished else { return }
        t.notes.add(note)
        if extra.contains(Note.packetLoss) { t.notes.add(Note.packetLoss) }
        finish(t, type: "ABORTED", reply: nil, end: end, ctx)
    }

    /// Publishes the transaction (unless it never really existed) and forgets it.
    private func finish(_ t: MailTransaction, type: String, reply: Reply?, end: Timestamp? = nil,
                        _ ctx: PluginContext) {
        guard !t.finished else { return }
        t.finished = true
        t.previous = nil
        if current === t { current = nil }
        guard type == "MAIL" || t.isWorthPublishing else { return }
        ctx.publish(transactionEvent(t, type: type, reply: reply, end: reply?.end ?? end, ctx))
    }

    // MARK: - Loss and end of stream

    func gap(_ direction: Direction, byteCount: Int, stream s: inout StreamBuffer, _ ctx: PluginContext) {
        ctx.logger.debug("smtp: \(byteCount) bytes lost (\(direction))")
        var leftover = s.readableBytes
        s.skip(leftover)
        if direction == .reverse {
            greetingPossible = false
            flushPending(note: Note.packetLoss, ctx)
            // No skipping to the next LF: if the hole ended at a line boundary, that line is a
            // whole reply. A fragment is rarely a valid reply line; either way, the first
            // reply paired after the gap is marked.
            if serverMode != .ignore {
                serverMode = .lines
                serverLoss = true
            }
            drainStash(ctx)
            return
        }
        // Unparsed bytes before the hole cannot be completed any more.
        leftover += clientStash.readableBytes
        clientStash.removeAll()
        tlsCheck = false
        switch clientMode {
        case .ignore:
            break
        case .data:
            // Still in the message: keep looking for the terminator. (If the terminator was
            // in the hole, so may be the next MAIL.)
            mailMayBeLost = true
            if let t = dataTransaction {
                t.notes.add(Note.packetLoss)
                t.headers.abandon()
                t.dataBytes += leftover + byteCount
                t.clientBytes += leftover + byteCount
            }
            clientMode = .data(atLineStart: true)
        case .chunk(let remaining) where byteCount < remaining:
            dataTransaction?.notes.add(Note.packetLoss)
            dataTransaction?.headers.abandon()
            dataTransaction?.dataBytes += byteCount
            dataTransaction?.clientBytes += byteCount
            clientMode = .chunk(remaining: remaining - byteCount)
        case .chunk(let remaining):
            dataTransaction?.notes.add(Note.packetLoss)
            dataTransaction?.dataBytes += remaining
            dataTransaction?.clientBytes += remaining
            dataTransaction = nil
            lostCommands()
        case .waiting:
            // What was lost depends on the reply we are waiting for.
            lostWhileWaiting = true
            pending.last?.notes.add(Note.packetLoss)
        case .authLine:
            pending.last?.notes.add(Note.packetLoss)
            lostCommands()
        case .discard:
            discardItem = nil
            clientLoss = true
            discardAfterLoss = true
            mailMayBeLost = true
            if helo == nil { heloMayBeLost = true }
            current?.notes.add(Note.packetLoss)
            afterDiscard = .resync
        case .resync, .command, .dataOrCommand:
            lostCommands()
        }
    }

    /// Client command bytes were lost: skip the damaged line, then resynchronise.
    private func lostCommands() {
        clientLoss = true
        discardAfterLoss = true
        mailMayBeLost = true
        if helo == nil { heloMayBeLost = true }
        current?.notes.add(Note.packetLoss)
        discardItem = nil
        afterDiscard = .resync
        clientMode = .discard
    }

    /// Publishes every command still waiting, without a reply.
    private func flushPending(note: String, _ ctx: PluginContext) {
        reply = nil
        while !pending.isEmpty {
            var item = removeFirstPending()
            item.notes.add(note)
            if item.blocksClient {
                switch clientMode {
                case .waiting, .authLine:
                    if item.verb == .data && note == Note.packetLoss {
                        lostDataTransaction = item.transaction
                        clientMode = .dataOrCommand
                    } else if item.verb == .starttls && note == Note.packetLoss {
                        tlsCheck = true
                        clientMode = .resync
                    } else {
                        clientMode = .resync
                    }
                    lostWhileWaiting = false
                default:
                    break
                }
            }
            complete(item, reply: nil, ctx)
            recycle(&item)
        }
        clientLoss = false
    }

    /// Publishes the transactions that can no longer complete.
    private func finishTransactions(note: String, _ ctx: PluginContext) {
        let open = transactions
        transactions.removeAll()
        for t in open where !t.finished {
            t.notes.add(note)
            finish(t, type: t.dataComplete ? "MAIL" : "ABORTED", reply: nil, ctx)
        }
        current = nil
        dataTransaction = nil
    }

    func streamEnded(_ direction: Direction, remaining s: inout StreamBuffer, _ ctx: PluginContext) {
        if direction == .original {
            stash(&s, unbounded: true)
            if !isWaiting && !clientStash.isEmpty {
                ctx.logger.debug("smtp: dropping \(clientStash.readableBytes) unfinished client bytes at end of stream")
                clientStash.removeAll()
            }
            return
        }
        // A last reply line without its CRLF is still a reply.
        if case .lines = serverMode, !s.isEmpty, s.readableBytes <= config.maxLineLength {
            s.withReadableBytes { serverLine($0, ctx) }
            s.skip(s.readableBytes)
        }
        s.skip(s.readableBytes)
        serverMode = .ignore
        flushPending(note: Note.noResponse, ctx)
        finishTransactions(note: Note.closedEarly, ctx)
        drainStash(ctx)
    }

    func close(_ reason: CloseReason, _ ctx: PluginContext) {
        if !clientStash.isEmpty {
            ctx.logger.debug("smtp: dropping \(clientStash.readableBytes) client bytes never answered")
            clientStash.removeAll()
        }
        flushPending(note: Note.noResponse, ctx)
        finishTransactions(note: Note.closedEarly, ctx)
        clientMode = .ignore
        serverMode = .ignore
    }
}
