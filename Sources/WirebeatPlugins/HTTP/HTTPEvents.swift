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
        // Values go in as JSON text built here (see `set(_:text:using:)`): no String per field.
        var json: [UInt8] = []
        json.reserveCapacity(256)
        if let version = q?.minorVersion ?? r?.minorVersion {
            e.set("http.version", encodedJSON: HTTPSyntax.versionJSON[version])
        }
        let sendsHeaders = config.sendAllHeaders || !config.sendHeaders.isEmpty
        if let q {
            let kept = q.kept
            let target = kept[q.target]
            e.set("http.request.method", text: kept[q.method], using: &json)
            if let redacted = HTTPSession.redactedTarget(target) {
                e.set("url.original", utf8: redacted.utf8)
            } else {
                e.set("url.original", text: target, using: &json)
            }
            let url = HTTPURL(target: target, isConnect: q.methodIs("connect"), host: q.host.map { kept[$0] })
            if let path = url.path { e.set("url.path", text: path, using: &json) }
            if let query = url.query { e.set("url.query", text: query, using: &json) }
            if let domain = url.domain { e.set("url.domain", text: domain, using: &json) }
            if let port = url.port { e.set("url.port", int: port, using: &json) }
            if let full = url.full { e.set("url.full", text: full[...], using: &json) }
            e.set("http.request.bytes", int: q.bytes, using: &json)
            e.set("http.request.body.bytes", int: q.bodyBytes, using: &json)
            if let c = q.contentType, let mime = HTTPSession.mimeType(kept[c]) {
                e.set("http.request.mime_type", text: mime, using: &json)
            }
            if let ua = q.userAgent { e.set("user_agent.original", text: kept[ua], using: &json) }
            if let user = q.user { e.set("user.name", utf8: user.utf8) }
            if let ip = q.forwardedFor { e.set("network.forwarded_ip", utf8: ip.utf8) }
            if sendsHeaders { setHeaders(&e, "http.request.headers", q.headers) }
            if q.keepsRaw, let raw = q.raw { e.set("request", utf8: raw) }
        }
        if let r {
            let kept = r.kept
            e.set("http.response.status_code", int: r.statusCode, using: &json)
            e.set("http.response.status_phrase", text: kept[r.phrase], using: &json)
            e.set("http.response.bytes", int: r.bytes, using: &json)
            e.set("http.response.body.bytes", int: r.bodyBytes, using: &json)
            if let c = r.contentType, let mime = HTTPSession.mimeType(kept[c]) {
                e.set("http.response.mime_type", text: mime, using: &json)
            }
            if sendsHeaders { setHeaders(&e, "http.response.headers", r.headers) }
            if r.keepsRaw, let raw = r.raw { e.set("response", utf8: raw) }
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

    /// `type/subtype` of a Content-Type value, lower-cased; nil if there is none.
    static func mimeType(_ contentType: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        guard contentType.allSatisfy({ $0 < 0x80 }) else {
            // Not ASCII: Unicode white space and lower-casing, as Strings have them.
            return mimeType(contentType.text).map { Array($0.utf8)[...] }
        }
        // The first non-empty part between semicolons (what `split` gives first), trimmed.
        let start = contentType.firstIndex { $0 != Byte.semicolon } ?? contentType.endIndex
        let rest = contentType[start...]
        let untrimmed = rest[..<(rest.firstIndex(of: Byte.semicolon) ?? rest.endIndex)]
        let base = HTTPSyntax.trimmed(untrimmed)
        if base.isEmpty { return nil }
        // Nearly always lower case already: a copy only when not.
        return base.contains(where: { $0 >= 0x41 && $0 <= 0x5a }) ? base.map(Byte.lower)[...] : base
    }

    static func mimeType(_ c: String) -> String? {
        let base = c.split(separator: ";", maxSplits: 1).first.map { HTTPSyntax.trimmedWhitespace($0).lowercased() } ?? ""
        return base.isEmpty ? nil : base
    }

    /// The request target with the password of an absolute URI's userinfo removed; nil when
    /// there is nothing to remove.
    static func redactedTarget(_ target: ArraySlice<UInt8>) -> String? {
        // Most targets are paths, without the `:` of a scheme: no String made for them.
        guard target.contains(Byte.colon) else { return nil }
        let text = target.text
        guard let scheme = text.range(of: "://") else { return nil }
        let rest = text[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return nil }
        return String(text[..<colon]) + ":[redacted]" + String(text[at...])
    }
}

extension Event {
    // Event's setters for an Int (`set(_:_:)`, which resolves to its `any JSONRepresentable`
    // overload) and for UTF-8 bytes (`set(_:utf8:)`, generic) are not specialised across the
    // module boundary: each costs several hundred instructions. The JSON text of a number,
    // or of a string that needs no escaping, is simple enough to build here in a reused
    // buffer and hand over as `encodedJSON`, which is a plain copy.

    /// An Int, as `JSONWriter` writes it.
    fileprivate mutating func set(_ field: String, int value: Int, using json: inout [UInt8]) {
        json.removeAll(keepingCapacity: true)
        if value < 0 { json.append(UInt8(ascii: "-")) }
        let magnitude = value.magnitude
        var unit: UInt = 1  // of the leading digit
        while unit <= magnitude / 10 { unit *= 10 }
        repeat {
            json.append(UInt8(ascii: "0") + UInt8(magnitude / unit % 10))
            unit /= 10
        } while unit > 0
        set(field, encodedJSON: json)
    }

    /// A string from UTF-8 bytes, as `set(_:utf8:)` would write it: printable ASCII other
    /// than `"` and `\` needs no escaping, so its JSON text is the bytes in quotes; anything
    /// else takes `set(_:utf8:)` (escapes, repairs of invalid UTF-8).
    fileprivate mutating func set(_ field: String, text bytes: ArraySlice<UInt8>, using json: inout [UInt8]) {
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x80 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else {
            set(field, utf8: bytes)
            return
        }
        json.removeAll(keepingCapacity: true)
        json.append(UInt8(ascii: "\""))
        json.append(contentsOf: bytes)
        json.append(UInt8(ascii: "\""))
        set(field, encodedJSON: json)
    }
}

import Foundation  // replacingOccurrences, trimmingCharacters
