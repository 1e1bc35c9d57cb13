import WirebeatCore

/// The events: all `type: smtp`, told apart by `smtp.type`.
extension SMTPSession {
    func promptEvent(_ r: Reply, _ ctx: PluginContext) -> Event {
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: r.start, end: r.end,
                                  status: r.isError ? .error : .ok, requestBytes: nil, responseBytes: r.bytes)
        e.set("smtp.type", "PROMPT")
        setResponse(&e, r)
        if let raw = r.raw { e.set("response", raw[...].text) }
        return e
    }

    func commandEvent(_ item: PendingCommand, reply: Reply?, tlsStarted: Bool, _ ctx: PluginContext) -> Event {
        let failed = reply.map { $0.isError } ?? true
        let status: EventStatus = failed || !item.notes.isEmpty ? .error : .ok
        let responseBytes: Int? = reply != nil || item.serverBytes > 0 ? item.serverBytes : nil
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: item.start, end: reply?.end,
                                  status: status, requestBytes: item.clientBytes, responseBytes: responseBytes)
        e.set("smtp.type", "COMMAND")
        e.set("smtp.request.command", item.verb)
        e.set("smtp.request.param", item.param)
        if let reply { setResponse(&e, reply) }
        if let auth = item.auth {
            if !auth.mechanism.isEmpty { e.set("smtp.auth.mechanism", auth.mechanism) }
            e.set("user.name", auth.user)
        }
        if tlsStarted { e.set("smtp.starttls", true) }
        if let request = item.request { e.set("request", request[...].text) }
        if let response = item.response { e.set("response", response[...].text) }
        for note in item.notes.list { e.addNote(note) }
        return e
    }

    func transactionEvent(_ t: MailTransaction, type: String, reply: Reply?, end: Timestamp?,
                          _ ctx: PluginContext) -> Event {
        let failed = type != "MAIL" || reply.map { $0.isError } ?? true
        let status: EventStatus = failed || !t.notes.isEmpty ? .error : .ok
        var e = Event.transaction(type: "smtp", connection: ctx.connection, start: t.start, end: end,
                                  status: status, requestBytes: t.clientBytes, responseBytes: t.serverBytes)
        e.set("smtp.type", type)
        e.set("smtp.helo", t.helo)
        e.set("smtp.mail_from", t.mailFrom)
        if !t.rcptTo.isEmpty { e.set("smtp.rcpt_to", t.rcptTo) }
        if !t.rcptRejected.isEmpty { e.set("smtp.rcpt_rejected", t.rcptRejected) }
        if let reply { setResponse(&e, reply) }
        if t.dataStarted {
            e.set("smtp.data_bytes", t.dataBytes)
            let h = t.headers.parsed
            e.set("email.subject", h.subject)
            e.set("email.message_id", h.messageID)
            e.set("email.x_mailer", h.xMailer)
            e.set("email.content_type", h.contentType)
            for (field, list) in [("email.from.address", h.from), ("email.to.address", h.to),
                                  ("email.cc.address", h.cc), ("email.reply_to.address", h.replyTo)]
            where !list.isEmpty {
                e.set(field, list)
            }
        }
        for note in t.notes.list { e.addNote(note) }
        return e
    }

    private func setResponse(_ e: inout Event, _ r: Reply) {
        e.set("smtp.response.code", r.code)
        e.set("smtp.response.phrases", r.phrases)
    }
}
