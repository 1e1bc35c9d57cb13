import WirebeatCore

extension HTTPSession {
    /// The event of one transaction (`type: http`), with Packetbeat's field names.
    func event(_ t: HTTPTransaction, _ ctx: PluginContext) -> Event {
        // The messages borrowed from `t`, which holds them throughout (nothing here changes
        // it): loaded and bound as strong references they cost six retains and releases.
        let q = t.request.unretained, r = t.response.unretained
        var notes = Notes()
        if q == nil && r != nil && !t.standIn { notes.add(HTTPNote.unmatchedResponse) }
        if r == nil && q != nil { notes.add(HTTPNote.unmatchedRequest) }
        if t.standIn || t.pairingLossy { notes.add(HTTPNote.packetLoss) }
        // (Nearly always all empty: tested before the calls.)
        q?.borrow { if !$0.notes.isEmpty { notes.add($0.notes) } }
        r?.borrow { if !$0.notes.isEmpty { notes.add($0.notes) } }
        if !t.notes.isEmpty { notes.add(t.notes) }

        let start = q?.borrow { $0.start } ?? r?.borrow { $0.start } ?? ctx.timestamp
        let failed = q == nil || r == nil || r!.borrow { $0.statusCode } >= 400
        let serverBytes: Int? = r != nil || t.interimBytes > 0 ? (r?.borrow { $0.bytes } ?? 0) + t.interimBytes : nil
        var e = Event.transaction(type: "http", connection: ctx.connection, start: start, end: r?.borrow { $0.end },
                                  status: failed ? .error : .ok, requestBytes: q?.borrow { $0.bytes },
                                  responseBytes: serverBytes)
        // The whole `http` and `url` objects as one value each, members in key order: the
        // event prints them where their dotted members would go (it nests dotted names into
        // objects, and nothing else sets `http.*` or `url.*`), and one value costs far less
        // to set (and to write out) than a dozen. Values go in from the message's bytes.
        if q != nil || r != nil || !t.interimCodes.isEmpty {
            e.set("http", writingJSONTo: { writeHTTP(t, q, r, into: &$0) })
        }
        q?.borrow { q in
            e.set("url", writingJSONTo: { writeURL(q, into: &$0) })
            if let ua = q.userAgent { userAgentJSON.set("user_agent.original", q.kept, ua, in: &e, HTTPSession.writeUTF8) }
            if let user = q.user { e.set("user.name", utf8: user.utf8) }
            if let ip = q.forwardedFor { e.set("network.forwarded_ip", utf8: ip.utf8) }
            if q.keepsRaw, let raw = q.raw { e.set("request", utf8: raw) }
        }
        r?.borrow { r in if r.keepsRaw, let raw = r.raw { e.set("response", utf8: raw) } }
        for note in notes.list { e.addNote(note) }
        return e
    }

    /// The `http` object: `request`, `response` and `version`, each present when the
    /// transaction has it (there is a version when there is a message). What follows the
    /// byte counts and headers of each message is text that the connection's messages
    /// nearly always repeat (`RepeatedTail`).
    private func writeHTTP(_ t: HTTPTransaction, _ q: Unmanaged<HTTPMessage>?, _ r: Unmanaged<HTTPMessage>?,
                           into out: inout JSONOutput) {
        out.append(UInt8(ascii: "{"))
        q?.borrow { writeRequest($0, into: &out) }
        let interim = !t.interimCodes.isEmpty
        if r != nil || interim {
            out.append(q == nil ? #""response":{"# : #","response":{"#)
            r?.borrow { writeCounts($0, into: &out) }
            if interim {
                out.append(r == nil ? #""interim_status_codes":["# : #","interim_status_codes":["#)
                for (i, code) in t.interimCodes.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    HTTPSession.writeCount(code, into: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            if let r {
                // `[,"mime_type":…],"status_code":…,"status_phrase":…},"version":…}`: the end.
                let version = q?.borrow { $0.minorVersion } ?? r.borrow { $0.minorVersion }
                r.borrow { writeResponseTail($0, version: version, into: &out) }
                return
            }
            out.append(UInt8(ascii: "}"))
        }
        if let q {
            // `"1.0"` to `"1.9"` (a minor version is one digit).
            out.append(#","version":"1."#)
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: q.borrow { $0.minorVersion }))
            out.append(Byte.quote)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `"body":{"bytes":…},"bytes":…[,"headers":{…}]` of a message.
    @inline(__always)  // (twice per event: the call and its spills cost more than the counts)
    private func writeCounts(_ m: HTTPMessage, into out: inout JSONOutput) {
        out.append(#""body":{"bytes":"#)
        HTTPSession.writeCount(m.bodyBytes, into: &out)
        out.append(#"},"bytes":"#)
        HTTPSession.writeCount(m.bytes, into: &out)
        if sendsHeaders { HTTPSession.writeHeaders(m.headers, into: &out) }
    }

    /// `"request":{…}` of request `q`.
    @inline(__always)  // (once per event, as `writeResponseTail`)
    private func writeRequest(_ q: HTTPMessage, into out: inout JSONOutput) {
        out.append(#""request":{"#)
        writeCounts(q, into: &out)
        // `,"method":…[,"mime_type":…]}`
        let b = q.kept
        let method = UnsafeBufferPointer(rebasing: b[q.method])
        let type = q.contentType.map { UnsafeBufferPointer(rebasing: b[$0]) }
        if !requestTail.matches(method, type, 0) {
            requestTail.set(method, type, 0) { json in
                json.append(contentsOf: #","method":"#.utf8)
                HTTPSession.writeUTF8(method, into: &json)
                if let type { HTTPSession.writeMimeTypeField(type, into: &json) }
                json.append(UInt8(ascii: "}"))
            }
        }
        requestTail.write(into: &out)
    }

    /// The end of the `http` object after the counts of response `r` (and its interim codes).
    @inline(__always)
    private func writeResponseTail(_ r: HTTPMessage, version: Int, into out: inout JSONOutput) {
        let b = r.kept
        let phrase = UnsafeBufferPointer(rebasing: b[r.phrase])
        let type = r.contentType.map { UnsafeBufferPointer(rebasing: b[$0]) }
        let code = r.statusCode
        let number = code << 4 | version
        if !responseTail.matches(phrase, type, number) {
            responseTail.set(phrase, type, number) { json in
                if let type { HTTPSession.writeMimeTypeField(type, into: &json) }
                json.append(contentsOf: #","status_code":"#.utf8)
                JSONWriter.writeInt(Int64(code), into: &json)
                json.append(contentsOf: #","status_phrase":"#.utf8)
                HTTPSession.writeUTF8(phrase, into: &json)
                json.append(contentsOf: #"},"version":"1."#.utf8)
                json.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: version))
                json.append(contentsOf: #""}"#.utf8)
            }
        }
        responseTail.write(into: &out)
    }

    /// A count (not negative) as JSON (`JSONOutput.writeInt` is inlined: four counts per event).
    @inline(__always)
    static func writeCount(_ n: Int, into out: inout JSONOutput) { out.writeInt(Int64(n)) }

    /// `n` bytes (`n > 0`) at `a` and at `b` are the same: up to 16 compared inline, as two
    /// overlapping words (the values the repeated texts compare are short: a method, a MIME
    /// type, a phrase, a host), longer ones by `memcmp`.
    @inline(__always)
    static func bytesEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let p = UnsafeRawPointer(a), q = UnsafeRawPointer(b)
        @inline(__always) func same<T: FixedWidthInteger>(_: T.Type) -> Bool {
            let last = n - MemoryLayout<T>.size
            return p.loadUnaligned(as: T.self) == q.loadUnaligned(as: T.self)
                && p.loadUnaligned(fromByteOffset: last, as: T.self) == q.loadUnaligned(fromByteOffset: last, as: T.self)
        }
        if n >= 8 { return n <= 16 ? same(UInt64.self) : memcmp(a, b, n) == 0 }
        if n >= 4 { return same(UInt32.self) }
        if n >= 2 { return same(UInt16.self) }
        return a.pointee == b.pointee
    }

    /// The `url` object of request `q`: `domain`, `full`, `original` (its password
    /// redacted), `path`, `port`, `query`, the ones the target and Host give.
    private func writeURL(_ q: HTTPMessage, into out: inout JSONOutput) {
        if writePlainURL(q, into: &out) { return }
        let b = q.kept
        let redacted = HTTPSession.redactedTarget(UnsafeBufferPointer(rebasing: b[q.target]))
        let url = HTTPSession.url(of: q, isConnect: q.methodIs("connect"))
        out.append(UInt8(ascii: "{"))
        if let domain = url.domain {
            out.append(#""domain":"#)
            url.bytes.withUnsafeBufferPointer { domainJSON.write($0, domain, into: &out, HTTPSession.writeUTF8) }
            out.append(UInt8(ascii: ","))
        }
        if url.hasFull {
            out.append(#""full":"#)
            url.writeFullJSON(into: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(#""original":"#)
        let originalStart = out.count
        if let redacted {
            Array(redacted.utf8).withUnsafeBufferPointer { out.writeUTF8String($0) }
        } else {
            out.writeUTF8String(UnsafeBufferPointer(rebasing: b[q.target]))
        }
        let original = originalStart..<out.count
        if let path = url.path {
            out.append(#","path":"#)
            if url.pathIsTarget && redacted == nil {
                // Usually the path is the whole target, just written as `original`: those
                // bytes again, not a second encoding.
                out.appendCopy(of: original)
            } else {
                url.writeUTF8(path, into: &out)
            }
        }
        if let port = url.port {
            out.append(#","port":"#)
            out.writeInt(Int64(port))
        }
        if let query = url.query {
            out.append(#","query":"#)
            url.writeUTF8(query, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The usual request, a plain origin-form target with the Host of the connection's last
    /// one: the host's part of the `url` object as it was, the target copied in between
    /// (some 1,700 instructions fewer than the general code of `writeURL`, per event). False,
    /// nothing written, for another request.
    @inline(__always)  // (once per event, into `writeURL`)
    private func writePlainURL(_ q: HTTPMessage, into out: inout JSONOutput) -> Bool {
        let b = q.kept
        let target = UnsafeBufferPointer(rebasing: b[q.target])
        guard let question = HTTPSession.plainOriginForm(target), !q.methodIs("connect") else { return false }
        let host = q.host.map { UnsafeBufferPointer(rebasing: b[$0]) }
        if !hostURLJSON.matches(host) {
            guard hostURLJSON.update(host, url: HTTPSession.url(of: q, isConnect: false)) else { return false }
        }
        hostURLJSON.writeHead(into: &out)
        if hostURLJSON.hasFull {
            out.append(target)
            out.append(#"","original":""#)
        } else {
            out.append(#""original":""#)
        }
        out.append(target)
        out.append(#"","path":""#)
        let path = question < 0 ? target : UnsafeBufferPointer(rebasing: target[..<question])
        out.append(path)
        out.append(Byte.quote)
        hostURLJSON.writePort(into: &out)
        if question >= 0 {
            out.append(#","query":""#)
            out.append(UnsafeBufferPointer(rebasing: target[(question + 1)...]))
            out.append(Byte.quote)
        }
        out.append(UInt8(ascii: "}"))
        return true
    }

    /// The `HTTPURL` of request `q`: its target and Host copied into an array of their own
    /// (`kept` is a raw buffer that may hold earlier messages' values too). Not on the usual
    /// path (see `writeURL`).
    static func url(of q: HTTPMessage, isConnect: Bool) -> HTTPURL {
        let b = q.kept, target = UnsafeBufferPointer(rebasing: b[q.target])
        var bytes = Array(target)
        var host: Range<Int>?
        if let h = q.host {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[h]))
            host = target.count..<bytes.count
        }
        return HTTPURL(kept: bytes, target: 0..<target.count, isConnect: isConnect, host: host)
    }

    /// For `writeURL`: whether `target` is an origin-form target (a `/` first) whose bytes
    /// all go into a JSON string as they are (ASCII, no control, `"` or `\\`) and hold no
    /// colon (so no userinfo to redact, see `redactedTarget`), and if so, the offset of its
    /// first `?` (-1: none). With such a target the fields are slices of it: `path` before
    /// the `?`, `query` after it, `full` the host's `http://` prefix and the target (what
    /// `HTTPURL` and `writeUTF8String` make of it, with less work).
    @inline(__always)  // (once per event)
    static func plainOriginForm(_ target: UnsafeBufferPointer<UInt8>) -> Int? {
        guard target.first == UInt8(ascii: "/"), JSONWriter.isPlainText(target, orColon: true) else { return nil }
        // Searched 8 bytes at a time, inline (a target is short: `memchr`'s call cost more): a
        // byte `?` is a zero of `w ^ 0x3f…`, and the lowest high bit of `(v - 0x01…) & ~v`
        // marks the first zero byte (a borrow only spreads upwards from one).
        let p = UnsafeRawPointer(target.baseAddress!), n = target.count
        @inline(__always) func question(at i: Int) -> Int? {
            let v = p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x3f3f_3f3f_3f3f_3f3f
            let zeros = (v &- 0x0101_0101_0101_0101) & ~v & 0x8080_8080_8080_8080
            return zeros == 0 ? nil : i + zeros.trailingZeroBitCount / 8
        }
        guard n >= 8 else { return target.firstIndex(of: Byte.question) ?? -1 }
        var i = 0
        while i + 8 <= n {
            if let q = question(at: i) { return q }
            i += 8
        }
        // The rest as the last 8 bytes, overlapping: those before `i` hold no `?`.
        return i < n ? question(at: n - 8) ?? -1 : -1
    }

    /// The JSON string `Event.set(_:utf8:)` makes of `bytes`.
    static func writeUTF8(_ bytes: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        JSONWriter.writeUTF8String(bytes, into: &json)
    }

    /// `,"mime_type":` and the MIME type of a Content-Type value; nothing if it has none.
    static func writeMimeTypeField(_ contentType: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        let start = json.count
        json.append(contentsOf: #","mime_type":"#.utf8)
        let value = json.count
        writeMimeType(contentType, into: &json)
        if json.count == value { json.removeSubrange(start...) }
    }

    /// The JSON string of the MIME type of a Content-Type value; nothing if it has none.
    static func writeMimeType(_ contentType: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        if let mime = mimeType(Array(contentType)[...]) { mime.withUnsafeBufferPointer { writeUTF8($0, into: &json) } }
    }

    /// `,"headers":{...}`: the header fields by name (lower case, dots as underscores), in
    /// key order; repeated fields are joined with ", " in the order they came. Nothing when
    /// there is none.
    static func writeHeaders(_ headers: [(name: String, value: String)], into out: inout JSONOutput) {
        guard !headers.isEmpty else { return }
        var joined: [(String, String)] = []
        for (name, value) in headers {
            let key = name.replacingOccurrences(of: ".", with: "_")
            if let i = joined.firstIndex(where: { $0.0 == key }) { joined[i].1 += ", " + value } else { joined.append((key, value)) }
        }
        // The event's order of names: byte order (keys have no dot).
        joined.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
        out.append(#","headers":{"#)
        for (i, (key, value)) in joined.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.writeString(key)
            out.append(UInt8(ascii: ":"))
            out.writeString(value)
        }
        out.append(UInt8(ascii: "}"))
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
    static func redactedTarget(_ target: UnsafeBufferPointer<UInt8>) -> String? {
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

/// What the Host of a connection's requests makes of their `url` objects (`writeURL`'s
/// usual case, an origin-form target): the JSON text before the target and the port, made
/// again only when the Host differs from the last one.
struct HostURLJSON {
    private var host: [UInt8] = []
    /// Set once `host` is the value of a Host header (not of none).
    private var hasHost = false
    private var isSet = false
    /// `{`, then `"domain":…,` and `"full":"http://<host>` when there are those fields.
    private var head: [UInt8] = []
    /// `,"port":<port>`, or nothing.
    private var port: [UInt8] = []
    /// `head` ends inside `url.full`, which the target completes.
    private(set) var hasFull = false

    /// The text is that of `host` (nil: no Host header). (Mutating, as the writers: the
    /// session's copy is used in place, not copied out with a retain of each array.)
    @inline(__always)  // (this and the writers: once per event each, a call cost as much as the work)
    mutating func matches(_ host: UnsafeBufferPointer<UInt8>?) -> Bool {
        guard isSet, let host else { return isSet && !hasHost && host == nil }
        return hasHost && host.count == self.host.count && self.host.withUnsafeBufferPointer {
            host.isEmpty || HTTPSession.bytesEqual(host.baseAddress!, $0.baseAddress!, host.count)
        }
    }

    /// The text for `host`, from the fields `url` found with it and an origin-form target;
    /// false (and nothing kept) when the host cannot be written this way: not ASCII, in
    /// brackets or with bytes to escape (`url.full` would have to be escaped as a whole).
    mutating func update(_ host: UnsafeBufferPointer<UInt8>?, url: HTTPURL) -> Bool {
        isSet = false
        if let host, host.first == UInt8(ascii: "[") || !JSONWriter.isPlainText(host, orColon: false) { return false }
        head.removeAll(keepingCapacity: true)
        head.append(UInt8(ascii: "{"))
        if let domain = url.domain {
            head.append(contentsOf: #""domain":"#.utf8)
            url.bytes.withUnsafeBufferPointer { JSONWriter.writeUTF8String(UnsafeBufferPointer(rebasing: $0[domain]), into: &head) }
            head.append(UInt8(ascii: ","))
        }
        hasFull = url.hasFull
        if let authority = url.fullAuthority {
            head.append(contentsOf: #""full":"http://"#.utf8)
            head.append(contentsOf: url[authority])
        }
        port.removeAll(keepingCapacity: true)
        if let p = url.port {
            port.append(contentsOf: #","port":"#.utf8)
            JSONWriter.writeInt(Int64(p), into: &port)
        }
        self.host.removeAll(keepingCapacity: true)
        if let host { self.host.append(contentsOf: host) }
        hasHost = host != nil
        isSet = true
        return true
    }

    @inline(__always)
    mutating func writeHead(into out: inout JSONOutput) { head.withUnsafeBufferPointer { out.append($0) } }
    @inline(__always)
    mutating func writePort(into out: inout JSONOutput) { port.withUnsafeBufferPointer { out.append($0) } }
}

/// The JSON text that two values and a number make (`writeHTTP`: the method and the MIME
/// type of requests; the phrase, the MIME type, the status code and the version of
/// responses), which a connection's messages nearly always repeat: made again only when one
/// of them differs from the last ones. One comparison and one copy per message, instead of
/// one per value and the encoding of the number.
struct RepeatedTail {
    /// The first value's bytes, then the second's.
    private var key: [UInt8] = []
    private var firstCount = 0
    /// -1: no second value.
    private var secondCount = -1
    private var number = 0
    private var isSet = false
    private var json: [UInt8] = []

    /// The text is that of `first`, `second` (nil: none) and `number`. (Mutating, as
    /// `write`: the session's copy is used in place, not copied out with a retain of each
    /// array.)
    @inline(__always)  // (this and `write`: twice per event, a call cost as much as the work)
    mutating func matches(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>?, _ number: Int) -> Bool {
        guard isSet, number == self.number, first.count == firstCount, (second?.count ?? -1) == secondCount else { return false }
        return key.withUnsafeBufferPointer { k in
            (first.isEmpty || HTTPSession.bytesEqual(first.baseAddress!, k.baseAddress!, first.count))
                && (second.map { $0.isEmpty || HTTPSession.bytesEqual($0.baseAddress!, k.baseAddress! + first.count, $0.count) } ?? true)
        }
    }

    /// Makes the text (`write` appends it) that of these values.
    mutating func set(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>?, _ number: Int,
                      _ write: (inout [UInt8]) -> Void) {
        key.removeAll(keepingCapacity: true)
        key.append(contentsOf: first)
        if let second { key.append(contentsOf: second) }
        firstCount = first.count
        secondCount = second?.count ?? -1
        self.number = number
        json.removeAll(keepingCapacity: true)
        write(&json)
        isSet = true
    }

    @inline(__always)
    mutating func write(into out: inout JSONOutput) { json.withUnsafeBufferPointer { out.append($0) } }
}

/// The JSON text of a value that a connection's events nearly always repeat (User-Agent, the
/// domain of a URL that `HostURLJSON` does not cover): a comparison with the last value
/// instead of an encoding per event, then the text is copied in (by
/// `Event.set(_:encodedJSON:)` or into a value being written).
struct RepeatedJSON {
    private var value: [UInt8] = []
    private var json: [UInt8] = []
    private var isSet = false

    /// Sets `field` of `e` to the JSON text that `encode` writes for `bytes[range]`, made
    /// again only when that value differs from the last one; no field if `encode` wrote
    /// nothing. (The bytes come with their range, not as a slice: one retain and release
    /// fewer each.)
    mutating func set(_ field: String, _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, in e: inout Event,
                      _ encode: (UnsafeBufferPointer<UInt8>, inout [UInt8]) -> Void) {
        if update(bytes, range, encode) { e.set(field, encodedJSON: json) }
    }

    /// Writes the text of `bytes[range]` (which `encode` must make non-empty) into a value
    /// being written.
    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout JSONOutput,
                        _ encode: (UnsafeBufferPointer<UInt8>, inout [UInt8]) -> Void) {
        _ = update(bytes, range, encode)
        write(into: &out)
    }

    /// The text of the last value, written into a value being written. (Mutating: see
    /// `RepeatedTail.matches`.)
    mutating func write(into out: inout JSONOutput) {
        json.withUnsafeBufferPointer { out.append($0) }
    }

    /// Makes the text of `bytes[range]` the current one; whether there is any.
    mutating func update(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                         _ encode: (UnsafeBufferPointer<UInt8>, inout [UInt8]) -> Void) -> Bool {
        do {
            let v = UnsafeBufferPointer(rebasing: bytes[range])
            let same = isSet && v.count == value.count && value.withUnsafeBufferPointer {
                v.isEmpty || HTTPSession.bytesEqual(v.baseAddress!, $0.baseAddress!, v.count)
            }
            if !same {
                value.removeAll(keepingCapacity: true)
                value.append(contentsOf: v)
                json.removeAll(keepingCapacity: true)
                encode(v, &json)
                isSet = true
            }
        }
        return !json.isEmpty
    }
}

import Foundation  // replacingOccurrences, trimmingCharacters, memcmp
