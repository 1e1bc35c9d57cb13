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
        if let other = item.otherVerb {
            e.set("smtp.request.command", other)
        } else {
            e.set("smtp.request.command", encodedJSON: item.verb.json)
        }
        // Optionals unwrapped here: the concrete setters are much cheaper than the generic one.
        if !item.param.isEmpty { e.set("smtp.request.param", encodedJSON: item.param.bytes) }
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
        if let helo = t.helo { e.set("smtp.helo", encodedJSON: helo) }
        if !t.mailFrom.isEmpty { e.set("smtp.mail_from", encodedJSON: t.mailFrom.bytes) }
        if !t.rcptTo.isEmpty { e.set("smtp.rcpt_to", encodedJSON: t.rcptTo.bytes) }
        if !t.rcptRejected.isEmpty { e.set("smtp.rcpt_rejected", encodedJSON: t.rcptRejected) }
        if let reply { setResponse(&e, reply) }
        if t.dataStarted {
            e.set("smtp.data_bytes", t.dataBytes)
            t.headers.publish(into: &e, state: &headerState)
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
/// encoded once, and reply phrases encoded as their lines arrive (no String per line), with
/// the core's JSONWriter so the bytes are what it prints for the same values.
enum SMTPJSON {
    // Literals, not arrays: set for every event, an array costs a retain and a release.
    static let prompt: StaticString = "\"PROMPT\""
    static let command: StaticString = "\"COMMAND\""
    static let mail: StaticString = "\"MAIL\""
    static let aborted: StaticString = "\"ABORTED\""

    static func quoted(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        JSONWriter.writeString(s, into: &out)
        return out
    }

    /// Bytes that should be UTF-8 as a JSON string, as the core writes them (invalid UTF-8
    /// repaired to U+FFFD).
    static func string(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        if JSONWriter.isPlainText(bytes) {
            out.append(Byte.quote)
            out.append(contentsOf: bytes)
            out.append(Byte.quote)
        } else {
            JSONWriter.writeUTF8String(bytes, into: &out)
        }
    }

    /// The same, written straight into an event's value (`Event.set(_:writingJSONTo:)`).
    static func string(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout JSONOutput) {
        if JSONWriter.isPlainText(bytes) {
            out.append(Byte.quote)
            out.append(bytes)
            out.append(Byte.quote)
        } else {
            out.writeUTF8String(bytes)
        }
    }


    /// `bytes` as a JSON string of their own.
    static func string(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        encode(bytes, as: &out)
        return out
    }

    /// Replaces `out` with `bytes` as a JSON string (keeping its capacity).
    static func encode(_ bytes: ArraySlice<UInt8>, as out: inout [UInt8]) {
        if !out.isEmpty { out.removeAll(keepingCapacity: true) }
        out.reserveCapacity(bytes.count + 2)  // one allocation unless escapes are needed
        bytes.withUnsafeBufferPointer { string($0, into: &out) }
    }
}
