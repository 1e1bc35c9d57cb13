import WirebeatCore

/// The events: all `type: smtp`, told apart by `smtp.type`.
extension SMTPSession {
    func promptEvent(_ r: Reply, _ ctx: PluginContext) -> Event {
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: r.start, end: r.end,
                                  status: r.isError ? .error : .ok, requestBytes: nil, responseBytes: r.bytes)
        e.set("smtp.type", encodedJSON: SMTPJSON.prompt)
        setResponse(&e, r)
        if let raw = r.raw { e.set("response", utf8: raw) }
        return e
    }

    func commandEvent(_ item: PendingCommand, reply: Reply?, tlsStarted: Bool, _ ctx: PluginContext) -> Event {
        let failed = reply.map { $0.isError } ?? true
        let status: EventStatus = failed || !item.notes.isEmpty ? .error : .ok
        let responseBytes: Int? = reply != nil || item.serverBytes > 0 ? item.serverBytes : nil
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: item.start, end: reply?.end,
                                  status: status, requestBytes: item.clientBytes, responseBytes: responseBytes)
        e.set("smtp.type", encodedJSON: SMTPJSON.command)
        e.set("smtp.request.command", item.verb)
        // Optionals unwrapped here: the concrete setters are much cheaper than the generic one.
        if let param = item.param { e.set("smtp.request.param", param) }
        if let reply { setResponse(&e, reply) }
        if let auth = item.auth {
            if !auth.mechanism.isEmpty { e.set("smtp.auth.mechanism", auth.mechanism) }
            if let user = auth.user { e.set("user.name", user) }
        }
        if tlsStarted { e.set("smtp.starttls", true) }
        if let request = item.request { e.set("request", utf8: request) }
        if let response = item.response { e.set("response", utf8: response) }
        for note in item.notes.list { e.addNote(note) }
        return e
    }

    func transactionEvent(_ t: MailTransaction, type: String, reply: Reply?, end: Timestamp?,
                          _ ctx: PluginContext) -> Event {
        let failed = type != "MAIL" || reply.map { $0.isError } ?? true
        let status: EventStatus = failed || !t.notes.isEmpty ? .error : .ok
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: t.start, end: end,
                                  status: status, requestBytes: t.clientBytes, responseBytes: t.serverBytes)
        e.set("smtp.type", encodedJSON: type == "MAIL" ? SMTPJSON.mail : SMTPJSON.aborted)
        if let helo = t.helo { e.set("smtp.helo", helo) }
        if let from = t.mailFrom { e.set("smtp.mail_from", from) }
        if !t.rcptTo.isEmpty { e.set("smtp.rcpt_to", t.rcptTo) }
        if !t.rcptRejected.isEmpty { e.set("smtp.rcpt_rejected", t.rcptRejected) }
        if let reply { setResponse(&e, reply) }
        if t.dataStarted {
            e.set("smtp.data_bytes", t.dataBytes)
            t.headers.publish(into: &e)
        }
        for note in t.notes.list { e.addNote(note) }
        return e
    }

    private func setResponse(_ e: inout Event, _ r: Reply) {
        e.set("smtp.response.code", r.code)
        e.set("smtp.response.phrases", encodedJSON: r.phrasesJSON)
    }
}

/// JSON text the plugin writes itself, for `Event.set(_:encodedJSON:)`: constant values
/// encoded once, and reply phrases encoded as their lines arrive (no String per line). The
/// output must be byte for byte what the core's JSONWriter prints for the same values.
enum SMTPJSON {
    static let prompt = quoted("PROMPT")
    static let command = quoted("COMMAND")
    static let mail = quoted("MAIL")
    static let aborted = quoted("ABORTED")

    static func quoted(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var s = s
        s.withUTF8 { string($0, into: &out) }
        return out
    }


    /// Bytes that should be UTF-8 as a JSON string; invalid sequences become U+FFFD, as
    /// `String(decoding:as:)` (and so the core's writer) makes them.
    static func string(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let start = out.count
        if escapedASCII(bytes, into: &out) { return }
        // Not ASCII: through a String, which repairs invalid UTF-8 as the core does.
        out.removeSubrange(start...)
        var s = String(decoding: bytes, as: UTF8.self)
        s.withUTF8 { _ = escapedASCII($0, into: &out, allowingNonASCII: true) }
    }

    /// Writes `bytes` as a JSON string, escaped as JSONWriter does: `"`, `\\`, \\n, \\r and
    /// \\t by a backslash, other bytes below 0x20 as \\u00XX (lower-case hex); runs copied at
    /// once. Stops and returns false at a byte above 0x7F unless `allowingNonASCII`.
    private static func escapedASCII(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8],
                                     allowingNonASCII: Bool = false) -> Bool {
        let n = bytes.count
        out.reserveCapacity(out.count + n + 2)
        out.append(Byte.quote)
        var run = 0, i = 0
        while i < n {
            let u = bytes[i]
            if u >= 0x20 && u != Byte.quote && u != Byte.backslash && (u < 0x80 || allowingNonASCII) {
                i += 1
                continue
            }
            if u >= 0x80 { return false }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
            out.append(Byte.backslash)
            switch u {
            case Byte.quote, Byte.backslash: out.append(u)
            case Byte.lf: out.append(UInt8(ascii: "n"))
            case Byte.cr: out.append(UInt8(ascii: "r"))
            case Byte.tab: out.append(UInt8(ascii: "t"))
            default:
                out.append(UInt8(ascii: "u")); out.append(UInt8(ascii: "0")); out.append(UInt8(ascii: "0"))
                out.append(hexDigits[Int(u >> 4)]); out.append(hexDigits[Int(u & 0xF)])
            }
            i += 1
            run = i
        }
        if run < n { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<n])) }
        out.append(Byte.quote)
        return true
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
