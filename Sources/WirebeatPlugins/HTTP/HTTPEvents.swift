import WirebeatCore

extension HTTPSession {
    /// The event of one transaction (`type: http`), with Packetbeat's field names.
    func event(_ t: HTTPTransaction, _ ctx: PluginContext) -> Event {
        let q = t.request, r = t.response
        var notes = Notes()
        if q == nil && r != nil && !t.standIn { notes.add(HTTPNote.unmatchedResponse) }
        if r == nil && q != nil { notes.add(HTTPNote.unmatchedRequest) }
        if t.standIn || t.pairingLossy { notes.add(HTTPNote.packetLoss) }
        if let q { notes.add(q.notes) }
        if let r { notes.add(r.notes) }
        notes.add(t.notes)

        let start = q?.start ?? r?.start ?? ctx.timestamp
        let failed = q == nil || r == nil || r!.statusCode >= 400
        let serverBytes: Int? = r != nil || t.interimBytes > 0 ? (r?.bytes ?? 0) + t.interimBytes : nil
        var e = Event.transaction(type: "http", connection: ctx.connection, start: start, end: r?.end,
                                  status: failed ? .error : .ok, requestBytes: q?.bytes, responseBytes: serverBytes)
        e.set("http.version", q?.version ?? r?.version)
        if let q {
            e.set("http.request.method", q.method)
            e.set("url.original", HTTPSession.redactedTarget(q.target))
            let url = HTTPURL(target: q.target, method: q.method, host: q.host)
            e.set("url.path", url.path)
            e.set("url.query", url.query)
            e.set("url.domain", url.domain)
            e.set("url.port", url.port)
            e.set("url.full", url.full)
            e.set("http.request.bytes", q.bytes)
            e.set("http.request.body.bytes", q.bodyBytes)
            e.set("http.request.mime_type", HTTPSession.mimeType(q.contentType))
            e.set("user_agent.original", q.userAgent)
            e.set("user.name", q.user)
            e.set("network.forwarded_ip", q.forwardedFor)
            setHeaders(&e, "http.request.headers", q.headers)
            if let raw = q.raw { e.set("request", raw[...].text) }
        }
        if let r {
            e.set("http.response.status_code", r.statusCode)
            e.set("http.response.status_phrase", r.phrase)
            e.set("http.response.bytes", r.bytes)
            e.set("http.response.body.bytes", r.bodyBytes)
            e.set("http.response.mime_type", HTTPSession.mimeType(r.contentType))
            setHeaders(&e, "http.response.headers", r.headers)
            if let raw = r.raw { e.set("response", raw[...].text) }
        }
        if !t.interimCodes.isEmpty { e.set("http.response.interim_status_codes", t.interimCodes) }
        for note in notes.list { e.addNote(note) }
        return e
    }

    /// Header fields under `prefix.<name>` (lower case, dots as underscores); repeated fields
    /// are joined with ", " in the order they came.
    private func setHeaders(_ e: inout Event, _ prefix: String, _ headers: [(name: String, value: String)]) {
        guard !headers.isEmpty else { return }
        var joined: [(String, String)] = []
        for (name, value) in headers {
            let key = name.replacingOccurrences(of: ".", with: "_")
            if let i = joined.firstIndex(where: { $0.0 == key }) { joined[i].1 += ", " + value } else { joined.append((key, value)) }
        }
        for (key, value) in joined { e.set("\(prefix).\(key)", value) }
    }

    static func mimeType(_ contentType: String?) -> String? {
        guard let c = contentType else { return nil }
        let base = c.split(separator: ";", maxSplits: 1).first.map { HTTPSyntax.trimmedWhitespace($0).lowercased() } ?? ""
        return base.isEmpty ? nil : base
    }

    /// The request target with the password of an absolute URI's userinfo removed.
    static func redactedTarget(_ target: String) -> String {
        guard HTTPSyntax.mayHaveScheme(target), let scheme = target.range(of: "://") else { return target }
        let rest = target[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return target }
        return String(target[..<colon]) + ":[redacted]" + String(target[at...])
    }
}

import Foundation  // replacingOccurrences, trimmingCharacters
