import WirebeatCore

extension HTTPSession {
    /// The event of one transaction (`type: http`), with Packetbeat's field names.
    func event(_ t: HTTPTransaction, _ ctx: PluginContext) -> Event {
        let q = t.request, r = t.response
        var notes = Notes()
        if q == nil && r != nil && !t.standIn { notes.add(HTTPNote.unmatchedResponse) }
        if r == nil && q != nil { notes.add(HTTPNote.unmatchedRequest) }
        if t.standIn || t.pairingLossy { notes.add(HTTPNote.packetLoss) }
        // (Nearly always all empty: tested before the calls.)
        if let q, !q.notes.isEmpty { notes.add(q.notes) }
        if let r, !r.notes.isEmpty { notes.add(r.notes) }
        if !t.notes.isEmpty { notes.add(t.notes) }

        let start = q?.start ?? r?.start ?? ctx.timestamp
        let failed = q == nil || r == nil || r!.statusCode >= 400
        let serverBytes: Int? = r != nil || t.interimBytes > 0 ? (r?.bytes ?? 0) + t.interimBytes : nil
        var e = Event.transaction(type: "http", connection: ctx.connection, start: start, end: r?.end,
                                  status: failed ? .error : .ok, requestBytes: q?.bytes, responseBytes: serverBytes)
        // Values go in from the message's bytes (`set(_:utf8:)`): no String per field.
        if let version = q?.minorVersion ?? r?.minorVersion {
            e.set("http.version", encodedJSON: HTTPSyntax.versionJSON[version])
        }
        let sendsHeaders = config.sendAllHeaders || !config.sendHeaders.isEmpty
        if let q {
            let kept = q.kept
            let target = kept[q.target]
            methodJSON.set("http.request.method", kept, q.method, in: &e, HTTPSession.writeUTF8)
            let redacted = HTTPSession.redactedTarget(target)
            if let redacted {
                e.set("url.original", utf8: redacted.utf8)
            } else {
                e.set("url.original", utf8: target)
            }
            let url = HTTPURL(kept: kept, target: q.target, isConnect: q.methodIs("connect"), host: q.host)
            if let path = url.path {
                if url.pathIsTarget && redacted == nil {
                    // Usually the path is the whole target, just set as url.original: that
                    // value again, not a second copy of it.
                    e.repeatLastValue(as: "url.path")
                } else {
                    e.set("url.path", utf8: url[path])
                }
            }
            if let query = url.query { e.set("url.query", utf8: url[query]) }
            if let domain = url.domain { domainJSON.set("url.domain", url.bytes, domain, in: &e, HTTPSession.writeUTF8) }
            if let port = url.port { e.set("url.port", port) }
            if url.hasFull {
                // Written into the session's buffer, then copied in as it is: cheaper than
                // the pool's scratch and the closure of `set(_:writingJSON:)`.
                url.writeFullJSON(into: &fullURLJSON)
                e.set("url.full", encodedJSON: fullURLJSON)
            }
            e.set("http.request.bytes", q.bytes)
            e.set("http.request.body.bytes", q.bodyBytes)
            if let c = q.contentType { requestMimeJSON.set("http.request.mime_type", kept, c, in: &e, HTTPSession.writeMimeType) }
            if let ua = q.userAgent { userAgentJSON.set("user_agent.original", kept, ua, in: &e, HTTPSession.writeUTF8) }
            if let user = q.user { e.set("user.name", utf8: user.utf8) }
            if let ip = q.forwardedFor { e.set("network.forwarded_ip", utf8: ip.utf8) }
            if sendsHeaders { setHeaders(&e, "http.request.headers", q.headers) }
            if q.keepsRaw, let raw = q.raw { e.set("request", utf8: raw) }
        }
        if let r {
            let kept = r.kept
            e.set("http.response.status_code", r.statusCode)
            phraseJSON.set("http.response.status_phrase", kept, r.phrase, in: &e, HTTPSession.writeUTF8)
            e.set("http.response.bytes", r.bytes)
            e.set("http.response.body.bytes", r.bodyBytes)
            if let c = r.contentType { responseMimeJSON.set("http.response.mime_type", kept, c, in: &e, HTTPSession.writeMimeType) }
            if sendsHeaders { setHeaders(&e, "http.response.headers", r.headers) }
            if r.keepsRaw, let raw = r.raw { e.set("response", utf8: raw) }
        }
        if !t.interimCodes.isEmpty { e.set("http.response.interim_status_codes", t.interimCodes) }
        for note in notes.list { e.addNote(note) }
        return e
    }

    /// The JSON string `Event.set(_:utf8:)` makes of `bytes`.
    static func writeUTF8(_ bytes: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        JSONWriter.writeUTF8String(bytes, into: &json)
    }

    /// The JSON string of the MIME type of a Content-Type value; nothing if it has none.
    static func writeMimeType(_ contentType: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        if let mime = mimeType(Array(contentType)[...]) { mime.withUnsafeBufferPointer { writeUTF8($0, into: &json) } }
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
        // The first non-empty part between semicolons (what `split` gives first), trimmed:
        // its offsets, found on the raw bytes, whether it has upper case, and whether the
        // whole value is ASCII.
        let (range, hasUpper, ascii) = contentType.withUnsafeBufferPointer { b -> (Range<Int>, Bool, Bool) in
            var high: UInt8 = 0
            for c in b { high |= c }
            var start = 0
            while start < b.count && b[start] == Byte.semicolon { start += 1 }
            var end = start
            while end < b.count && b[end] != Byte.semicolon { end += 1 }
            while start < end && Byte.isSpace(b[start]) { start += 1 }
            while end > start && Byte.isSpace(b[end - 1]) { end -= 1 }
            var hasUpper = false
            for i in start..<end where b[i] &- 0x41 < 26 { hasUpper = true }
            return (start..<end, hasUpper, high < 0x80)
        }
        guard ascii else {
            // Not ASCII: Unicode white space and lower-casing, as Strings have them.
            return mimeType(contentType.text).map { Array($0.utf8)[...] }
        }
        if range.isEmpty { return nil }
        let base = contentType[(contentType.startIndex + range.lowerBound)..<(contentType.startIndex + range.upperBound)]
        // Nearly always lower case already: a copy only when not.
        return hasUpper ? base.map(Byte.lower)[...] : base
    }

    static func mimeType(_ c: String) -> String? {
        let base = c.split(separator: ";", maxSplits: 1).first.map { HTTPSyntax.trimmedWhitespace($0).lowercased() } ?? ""
        return base.isEmpty ? nil : base
    }

    /// The request target with the password of an absolute URI's userinfo removed; nil when
    /// there is nothing to remove.
    static func redactedTarget(_ target: ArraySlice<UInt8>) -> String? {
        // Most targets are paths, without the `:` of a scheme: no String made for them.
        guard target.withUnsafeBufferPointer({ $0.contains(Byte.colon) }) else { return nil }
        let text = target.text
        guard let scheme = text.range(of: "://") else { return nil }
        let rest = text[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return nil }
        return String(text[..<colon]) + ":[redacted]" + String(text[at...])
    }
}

/// The JSON text of a value that a connection's events nearly always repeat (method, status
/// phrase, Host, MIME type): a comparison with the last value instead of an encoding per
/// event (and for the MIME type, of the parsing of Content-Type), then the text is copied
/// in by `Event.set(_:encodedJSON:)`.
struct RepeatedJSON {
    private var value: [UInt8] = []
    private var json: [UInt8] = []
    private var isSet = false

    /// Sets `field` of `e` to the JSON text that `encode` writes for `bytes[range]`, made
    /// again only when that value differs from the last one; no field if `encode` wrote
    /// nothing. (The bytes come with their range, not as a slice: one retain and release
    /// fewer each.)
    mutating func set(_ field: String, _ bytes: [UInt8], _ range: Range<Int>, in e: inout Event,
                      _ encode: (UnsafeBufferPointer<UInt8>, inout [UInt8]) -> Void) {
        bytes.withUnsafeBufferPointer { b in
            let v = UnsafeBufferPointer(rebasing: b[range])
            let same = isSet && v.count == value.count && value.withUnsafeBufferPointer {
                v.isEmpty || memcmp(v.baseAddress!, $0.baseAddress!, v.count) == 0
            }
            if !same {
                value.removeAll(keepingCapacity: true)
                value.append(contentsOf: v)
                json.removeAll(keepingCapacity: true)
                encode(v, &json)
                isSet = true
            }
        }
        if !json.isEmpty { e.set(field, encodedJSON: json) }
    }
}

import Foundation  // replacingOccurrences, trimmingCharacters, memcmp
