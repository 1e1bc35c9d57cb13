import WirebeatCore

/// Recognisers for HTTP/1.x syntax (RFC 9112), on bytes.
enum HTTPSyntax {
    /// Parts of the line as ranges of its indices (a range is two integers, a slice a
    /// reference to retain and release): the parser copies what it keeps.
    struct RequestLine {
        var method: Range<Int>
        var target: Range<Int>
        /// The `x` of `HTTP/1.x`, 0...9.
        var minorVersion: Int
    }

    struct StatusLine {
        var minorVersion: Int
        var code: Int
        /// As sent: `reasonPhrase(_:)` gives the value.
        var phrase: Range<Int>
    }

    /// `HTTP/` in any case at the start of `s`. Clearing bit 5 upper-cases a-z and makes
    /// 'H', 'T' or 'P' of nothing else: no array, no per-byte case mapping of both sides.
    static func startsWithHTTPSlash(_ s: ArraySlice<UInt8>) -> Bool {
        guard s.count >= 5 else { return false }
        let i = s.startIndex
        return s[i] & 0xdf == UInt8(ascii: "H") && s[i + 1] & 0xdf == UInt8(ascii: "T")
            && s[i + 2] & 0xdf == UInt8(ascii: "T") && s[i + 3] & 0xdf == UInt8(ascii: "P")
            && s[i + 4] == UInt8(ascii: "/")
    }

    /// tchar of RFC 9110 5.6.2: `!#$%&'*+-.^_`|~`, digits and letters, one bit per ASCII byte
    /// (bytes 0-63, then 64-127). A shift and a test instead of a range switch: it runs for
    /// every byte of every header name.
    private static let tokenCharsLow: UInt64 = 0x03ff_6cfa_0000_0000
    private static let tokenCharsHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    static func isTokenChar(_ b: UInt8) -> Bool {
        let mask = b & 64 == 0 ? tokenCharsLow : tokenCharsHigh
        return b < 128 && (mask >> UInt64(b & 63)) & 1 != 0
    }

    /// `d.d` after `HTTP/`, major version 1 (or 0.9/1.x variants seen in the wild: only 1.x accepted).
    /// The minor version.
    private static func version(_ s: ArraySlice<UInt8>) -> Int? {
        s.withUnsafeBufferPointer(version)
    }

    @inline(__always)  // (once per message: a few compares)
    private static func version(_ s: UnsafeBufferPointer<UInt8>) -> Int? {
        // Clearing bit 5 upper-cases a-z and makes 'H', 'T' or 'P' of nothing else.
        guard s.count == 8, s[0] & 0xdf == UInt8(ascii: "H"), s[1] & 0xdf == UInt8(ascii: "T"),
              s[2] & 0xdf == UInt8(ascii: "T"), s[3] & 0xdf == UInt8(ascii: "P"), s[4] == UInt8(ascii: "/"),
              s[5] == UInt8(ascii: "1"), s[6] == Byte.dot, Byte.isDigit(s[7]) else { return nil }
        return Int(s[7] - UInt8(ascii: "0"))
    }

    /// `METHOD SP request-target SP HTTP/1.x`: method a token of at most 32 characters, the
    /// target without controls or spaces.
    static func requestLine(_ line: ArraySlice<UInt8>) -> RequestLine? {
        // Checked on the raw bytes (no index checks, no slice per step); the two slices are
        // made once at the end.
        guard let (sp1, sp2, minor) = line.withUnsafeBufferPointer(requestLineParts) else { return nil }
        let start = line.startIndex
        return RequestLine(method: start..<(start + sp1), target: (start + sp1 + 1)..<(start + sp2), minorVersion: minor)
    }

    /// `requestLine` on raw bytes: the ranges are offsets in `line`.
    @inline(__always)  // (this and `statusLine`: once per message)
    static func requestLine(_ line: UnsafeBufferPointer<UInt8>) -> RequestLine? {
        guard let (sp1, sp2, minor) = requestLineParts(line) else { return nil }
        return RequestLine(method: 0..<sp1, target: (sp1 + 1)..<sp2, minorVersion: minor)
    }

    /// `requestLine`'s checks: the offsets of its two spaces, and the minor version.
    @inline(__always)  // (once per request)
    private static func requestLineParts(_ line: UnsafeBufferPointer<UInt8>) -> (Int, Int, Int)? {
        guard let sp1 = line.firstIndex(of: Byte.space), sp1 > 0, sp1 <= 32 else { return nil }
        for i in 0..<sp1 where !isTokenChar(line[i]) { return nil }
        // The last space is followed by the 8 bytes of the version (which hold no space).
        let sp2 = line.count - 9
        guard sp2 > sp1 + 1, line[sp2] == Byte.space,
              let v = version(UnsafeBufferPointer(rebasing: line[(sp2 + 1)...])) else { return nil }
        guard hasNoControlOrSpace(UnsafeBufferPointer(rebasing: line[(sp1 + 1)..<sp2])) else { return nil }
        return (sp1, sp2, v)
    }

    /// No byte of `bytes` is a control, a space or DEL (`<= 0x20` or `0x7f`), tested 8 bytes
    /// at a time (the last 8 overlapping) rather than one (a request target's every byte).
    @inline(__always)  // (once per request)
    static func hasNoControlOrSpace(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n >= 8 else {
            for b in bytes where b <= 0x20 || b == 0x7f { return false }
            return true
        }
        let p = UnsafeRawPointer(bytes.baseAddress!)
        // A byte below 0x21 sets its high bit in `(x - 0x21…) & ~x`, a byte 0x7f (a zero in
        // `x ^ 0x7f…`) in `(y - 0x01…) & ~y`; a borrow only spreads from such a byte, so the
        // word has one exactly when a high bit is set.
        func clean(_ x: UInt64) -> Bool {
            let y = x ^ 0x7f7f_7f7f_7f7f_7f7f
            return ((x &- 0x2121_2121_2121_2121) & ~x | (y &- 0x0101_0101_0101_0101) & ~y) & 0x8080_8080_8080_8080 == 0
        }
        var i = 0
        while i < n - 8 {
            if !clean(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return false }
            i += 8
        }
        return clean(p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
    }

    /// `statusLine` on raw bytes: the phrase's range is offsets in `line`.
    @inline(__always)
    static func statusLine(_ line: UnsafeBufferPointer<UInt8>) -> StatusLine? {
        guard line.count >= 12, let v = version(UnsafeBufferPointer(rebasing: line[..<8])), line[8] == Byte.space else { return nil }
        let d0 = line[9], d1 = line[10], d2 = line[11]
        guard Byte.isDigit(d0), Byte.isDigit(d1), Byte.isDigit(d2), d0 != UInt8(ascii: "0"),
              line.count == 12 || line[12] == Byte.space else { return nil }
        let code = Int(d0 - 0x30) * 100 + Int(d1 - 0x30) * 10 + Int(d2 - 0x30)
        return StatusLine(minorVersion: v, code: code, phrase: min(13, line.count)..<line.count)
    }

    /// `HTTP/1.x SP ddd [SP reason-phrase]`.
    static func statusLine(_ line: ArraySlice<UInt8>) -> StatusLine? {
        guard line.count >= 12, let v = version(line.prefix(8)), line[line.startIndex + 8] == Byte.space else { return nil }
        let digits = line[(line.startIndex + 9)..<(line.startIndex + 12)]
        guard digits.allSatisfy(Byte.isDigit), digits.first! != UInt8(ascii: "0") else { return nil }
        let rest = line[(line.startIndex + 12)...]
        guard rest.isEmpty || rest.first == Byte.space else { return nil }
        let code = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        return StatusLine(minorVersion: v, code: code, phrase: rest.dropFirst().indices)
    }

    /// The reason phrase of a status line as sent: without controls, trimmed.
    static func reasonPhrase(_ sent: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var phrase = sent
        if !phrase.allSatisfy(isPhraseByte) { phrase = phrase.filter(isPhraseByte)[...] }  // rare: a copy without controls
        return trimmed(phrase)
    }

    /// `reasonPhrase` in place, for a phrase without controls (nearly all); nil for another.
    @inline(__always)  // (once per response: a short loop, cheaper than its call)
    static func plainReasonPhrase(_ sent: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        for b in sent where !isPhraseByte(b) { return nil }
        return trimmed(sent)
    }

    private static func isPhraseByte(_ b: UInt8) -> Bool { b >= 0x20 && b != 0x7f || b == Byte.tab }

    /// A status line starting inside `line` (after the tail of a body that did not end in LF):
    /// its offset and value.
    static func embeddedStatusLine(_ line: ArraySlice<UInt8>) -> (Int, StatusLine)? {
        var i = line.startIndex + 1
        while i + 12 <= line.endIndex {
            if line[i] == UInt8(ascii: "H"), startsWithHTTPSlash(line[i...]), let s = statusLine(line[i...]) {
                return (i - line.startIndex, s)
            }
            i += 1
        }
        return nil
    }

    /// A request line with one of `methods` starting inside `line` (after the tail of a body
    /// that did not end in LF): its offset and value. Linear in the line's length.
    static func embeddedRequestLine(_ line: ArraySlice<UInt8>, methods: Set<String>) -> (Int, RequestLine)? {
        guard let sp2 = line.lastIndex(of: Byte.space), version(line[(sp2 + 1)...]) != nil,
              let sp1 = line[..<sp2].lastIndex(of: Byte.space) else { return nil }
        let before = line[..<sp1]
        for m in methods.sorted() {
            let bytes = Array(m.utf8)
            guard before.count > bytes.count, before.suffix(bytes.count).elementsEqual(bytes) else { continue }
            let start = sp1 - bytes.count
            if let r = requestLine(line[start...]) { return (start - line.startIndex, r) }
        }
        return nil
    }

    /// The length of a header field's name: of the token before the line's first colon; 0 if
    /// there is none or another byte comes first (no header field). A loop of its own over raw
    /// bytes (no index checks), returning one Int: it runs for every byte of every header
    /// name. (Not inlined: inlined, the loop carried the caller's registers and was twice as
    /// long.)
    /// Each byte is tested by a load from `tokenTable` (one per byte value).
    @inline(never)
    static func fieldNameLength(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        tokenTable.withUnsafeBufferPointer { isToken in
            var i = 0
            while i < bytes.count && isToken[Int(bytes[i])] { i &+= 1 }
            return i < bytes.count && bytes[i] == Byte.colon ? i : 0  // (a colon is no tchar)
        }
    }

    /// `isTokenChar` of each byte value.
    private static let tokenTable: [Bool] = (0...255).map { isTokenChar(UInt8($0)) }

    /// Without leading and trailing spaces and tabs (`trimmingSpaces`, by index: it runs for
    /// every header line).
    static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = s.startIndex, end = s.endIndex
        while start < end && Byte.isSpace(s[start]) { start += 1 }
        while end > start && Byte.isSpace(s[end - 1]) { end -= 1 }
        return s[start..<end]
    }

    /// `trimmed` in place in a buffer (a header value being parsed).
    @inline(__always)  // a few instructions, for every header value: not worth a call
    static func trimmed(_ s: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var start = 0, end = s.count
        while start < end && Byte.isSpace(s[start]) { start += 1 }
        while end > start && Byte.isSpace(s[end - 1]) { end -= 1 }
        return UnsafeBufferPointer(rebasing: s[start..<end])
    }

    /// Without a trailing LF or CRLF, in place in a buffer (a line being parsed).
    static func withoutLineEnd(_ s: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var end = s.count
        if end > 0 && s[end - 1] == Byte.lf { end -= 1 }
        if end > 0 && s[end - 1] == Byte.cr { end -= 1 }
        return UnsafeBufferPointer(rebasing: s[..<end])
    }


    /// A Content-Length value: digits only (a list of equal values is accepted); nil if invalid.
    @inline(__always)  // (the usual value's loop is shorter than the call)
    static func contentLength(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        // The usual value, one number, in one loop; anything else below.
        if !value.isEmpty && value.count <= 18 {
            var n = 0
            for b in value {
                guard Byte.isDigit(b) else { n = -1; break }
                n = n * 10 + Int(b - 0x30)
            }
            if n >= 0 { return n }
        }
        var result: Int?
        var from = 0
        while from < value.count {
            var end = from
            while end < value.count && value[end] != Byte.comma { end += 1 }
            if end > from {  // empty parts are left out, as `split` leaves them
                let digits = trimmed(UnsafeBufferPointer(rebasing: value[from..<end]))
                guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy(Byte.isDigit) else { return nil }
                let n = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                if let r = result, r != n { return nil }
                result = n
            }
            from = end + 1
        }
        return result
    }

    /// The size of a chunk-size line (`hex [; ext]`), nil if invalid.
    static func chunkSize(_ line: UnsafeBufferPointer<UInt8>) -> Int? {
        var digits = line
        if let semi = line.firstIndex(of: Byte.semicolon) { digits = UnsafeBufferPointer(rebasing: line[..<semi]) }
        digits = trimmed(digits)
        guard !digits.isEmpty, digits.count <= 15 else { return nil }
        var n = 0
        for b in digits {
            let v: Int
            switch b {
            case 0x30...0x39: v = Int(b - 0x30)
            case 0x41...0x46: v = Int(b - 0x41 + 10)
            case 0x61...0x66: v = Int(b - 0x61 + 10)
            default: return nil
            }
            n = n * 16 + v
        }
        return n
    }

    /// The header fields the parser acts on.
    enum KnownHeader {
        case contentLength, transferEncoding, connection, host, userAgent, contentType
        case authorization, proxyAuthorization

        /// Recognised from the name's bytes, in any case: the length picks the candidate,
        /// one comparison confirms it (no lower-cased String per header).
        init?(name: UnsafeBufferPointer<UInt8>) {
            let candidate: KnownHeader, lowerName: StaticString
            switch name.count {
            case 4: (candidate, lowerName) = (.host, "host")
            case 10:
                (candidate, lowerName) = Byte.lower(name[0]) == UInt8(ascii: "c")
                    ? (.connection, "connection") : (.userAgent, "user-agent")
            case 12: (candidate, lowerName) = (.contentType, "content-type")
            case 13: (candidate, lowerName) = (.authorization, "authorization")
            case 14: (candidate, lowerName) = (.contentLength, "content-length")
            case 17: (candidate, lowerName) = (.transferEncoding, "transfer-encoding")
            case 19: (candidate, lowerName) = (.proxyAuthorization, "proxy-authorization")
            default: return nil
            }
            guard KnownHeader.tokenEqualsIgnoringCase(name, lowerName) else { return nil }
            self = candidate
        }

        /// The known header a line starts with, and the length of its name: what
        /// `fieldNameLength` and `init(name:)` find together, for the headers the parser acts
        /// on, without a loop over the name. The first letter picks the candidates, the byte
        /// after the name must be the colon, one comparison confirms it. That comparison is
        /// exact on letters; on a dash it would also take a CR, which is no tchar, so a name
        /// with a dash has that byte checked as well.
        static func atStart(of line: UnsafeBufferPointer<UInt8>) -> (KnownHeader, nameLength: Int)? {
            guard let first = line.first else { return nil }
            func named(_ candidate: KnownHeader, _ lower: StaticString, dashAt dash: Int = 0) -> (KnownHeader, nameLength: Int)? {
                let n = lower.utf8CodeUnitCount
                guard n < line.count, line[n] == Byte.colon,
                      tokenEqualsIgnoringCase(UnsafeBufferPointer(rebasing: line[..<n]), lower),
                      dash == 0 || line[dash] == Byte.dash else { return nil }
                return (candidate, n)
            }
            switch first | 0x20 {
            case UInt8(ascii: "h"): return named(.host, "host")
            case UInt8(ascii: "c"):
                return named(.contentLength, "content-length", dashAt: 7) ?? named(.contentType, "content-type", dashAt: 7)
                    ?? named(.connection, "connection")
            case UInt8(ascii: "u"): return named(.userAgent, "user-agent", dashAt: 4)
            case UInt8(ascii: "t"): return named(.transferEncoding, "transfer-encoding", dashAt: 8)
            case UInt8(ascii: "a"): return named(.authorization, "authorization")
            case UInt8(ascii: "p"): return named(.proxyAuthorization, "proxy-authorization", dashAt: 5)
            default: return nil
            }
        }

        /// `equalsIgnoringCase` for a token (a header name) and a lower-case name of letters
        /// and dashes, 8 bytes at a time. Setting bit 5 (0x20) lower-cases A-Z; on a tchar it
        /// makes no other letter, and a dash only of a dash: exact for tokens.
        private static func tokenEqualsIgnoringCase(_ name: UnsafeBufferPointer<UInt8>, _ lower: StaticString) -> Bool {
            let n = name.count
            guard n == lower.utf8CodeUnitCount else { return false }
            let a = UnsafeRawPointer(name.baseAddress!), b = UnsafeRawPointer(lower.utf8Start)
            guard n >= 8 else {
                for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) | 0x20 != b.load(fromByteOffset: i, as: UInt8.self) {
                    return false
                }
                return true
            }
            func word(_ p: UnsafeRawPointer, _ at: Int) -> UInt64 { p.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
            var i = 0
            while i < n - 8 {
                if word(a, i) | 0x2020_2020_2020_2020 != word(b, i) { return false }
                i += 8
            }
            return word(a, n - 8) | 0x2020_2020_2020_2020 == word(b, n - 8)  // the last 8, overlapping
        }
    }

    /// ASCII bytes equal to `lower` (lower-case ASCII) in any case. (Inlined: `lower` a
    /// constant, its length and its words are too, and the call cost about as much as the
    /// comparison.)
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ lower: StaticString) -> Bool {
        // Raw pointers on both sides: no closure over the StaticString, no index checks.
        let n = lower.utf8CodeUnitCount
        guard bytes.count == n else { return false }
        let l = lower.utf8Start
        guard n >= 8 else {
            for i in 0..<n where Byte.lower(bytes[i]) != l[i] { return false }
            return true
        }
        // Eight bytes at a time, the last eight overlapping.
        let a = UnsafeRawPointer(bytes.baseAddress!), b = UnsafeRawPointer(l)
        func word(_ p: UnsafeRawPointer, _ at: Int) -> UInt64 { p.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        var i = 0
        while i < n - 8 {
            if lowercased(word(a, i)) != word(b, i) { return false }
            i += 8
        }
        return lowercased(word(a, n - 8)) == word(b, n - 8)
    }

    /// `Byte.lower` of each byte of `w`, all eight at once. Bit 7 of a byte of `low7` plus
    /// 0x3f is set from "A" (0x41) on, plus 0x25 from past "Z" (0x5b) on (no carry leaves a
    /// byte below 0x80): where the first is set and not the second, in a byte below 0x80,
    /// bit 5 is set.
    private static func lowercased(_ w: UInt64) -> UInt64 {
        let low7 = w & 0x7f7f_7f7f_7f7f_7f7f
        let upper = (low7 &+ 0x3f3f_3f3f_3f3f_3f3f) & ~(low7 &+ 0x2525_2525_2525_2525) & ~w & 0x8080_8080_8080_8080
        return w | (upper >> 2)
    }

    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lower: StaticString) -> Bool {
        bytes.withUnsafeBufferPointer { equalsIgnoringCase($0, lower) }
    }

    /// Calls `body` with each comma-separated token of a header value (`Connection`,
    /// `Transfer-Encoding`), trimmed of spaces and tabs, empty ones left out; compare them
    /// with `equalsIgnoringCase`. A token is valid only during its call.
    static func forEachToken(_ value: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard !value.contains(where: { $0 >= 0x80 }) else {
            // Not ASCII: Unicode lower-casing and white space, as `tokens` has them.
            for token in tokens(value.text) { Array(token.utf8).withUnsafeBufferPointer(body) }
            return
        }
        var from = 0
        while from <= value.count {
            var end = from
            while end < value.count && value[end] != Byte.comma { end += 1 }
            let token = trimmed(UnsafeBufferPointer(rebasing: value[from..<end]))
            if !token.isEmpty { body(token) }
            from = end + 1
        }
    }

    /// Comma-separated, lower-cased tokens of a header value (`Connection`, `Transfer-Encoding`).
    static func tokens(_ value: String) -> [String] {
        value.lowercased().split(separator: ",").map { trimmedWhitespace($0) }.filter { !$0.isEmpty }
    }

    /// `trimmingCharacters(in: .whitespaces)` without Foundation for ASCII text (where
    /// .whitespaces is space and tab): it runs for several headers of every message.
    static func trimmedWhitespace(_ s: Substring) -> String {
        let utf8 = s.utf8
        guard !utf8.contains(where: { $0 >= 0x80 }) else { return s.trimmingCharacters(in: .whitespaces) }
        let isBlank = { (b: UInt8) in b == Byte.space || b == Byte.tab }
        guard let first = utf8.firstIndex(where: { !isBlank($0) }) else { return "" }
        let last = utf8.lastIndex(where: { !isBlank($0) })!
        return String(decoding: utf8[first...last], as: UTF8.self)
    }

    /// Whether `text` may hold `://` (Foundation's `range(of:)` is slow and usually finds nothing).
    static func mayHaveScheme<S: StringProtocol>(_ text: S) -> Bool { text.utf8.contains(Byte.colon) }

    /// The user of `Basic <base64(user:password)>`; the password is never returned.
    static func basicAuthUser(_ value: String) -> String? {
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Base64.decode(Array(parts[1].utf8)),
              let colon = decoded.firstIndex(of: Byte.colon) else { return nil }
        let user = decoded[..<colon]
        guard !user.isEmpty, user.count <= 256, !user.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { return nil }
        return user.text
    }

    /// `Authorization` value with its credentials replaced: `Basic [redacted]`.
    static func redactedCredentials(_ value: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let scheme = value.prefix { !Byte.isSpace($0) }
        return scheme.count < value.count ? Array(scheme) + Array(" [redacted]".utf8) : Array("[redacted]".utf8)
    }

    static func isCredentialHeader(_ lowerName: String) -> Bool {
        lowerName == "authorization" || lowerName == "proxy-authorization"
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// UTF-8 text (invalid sequences become U+FFFD), as `ArraySlice.text`.
    var text: String { String(decoding: self, as: UTF8.self) }
}

/// The URL fields of a request, from the target and the Host header: ranges of `bytes`,
/// which holds the target and the Host (`HTTPSession.url(of:isConnect:)`) or, rarely, text
/// made for the fields. Ranges rather than slices: a slice is a reference to retain and release
/// each time it is copied, a range is two integers.
struct HTTPURL {
    private(set) var bytes: [UInt8]
    var path: Range<Int>?
    var query: Range<Int>?
    var domain: Range<Int>?
    var port: Int?
    /// Where the request went (Host, or the authority of an absolute target), when
    /// `url.full` is made of it.
    var fullAuthority: Range<Int>?
    /// `path` is the whole target (an origin-form target without a query): the same bytes.
    private(set) var pathIsTarget = false

    private static let httpPrefix = Array("http://".utf8)

    /// The fields of `kept[target]` (with `kept[host]`, the Host header's value).
    init(kept: [UInt8], target targetRange: Range<Int>, isConnect: Bool, host hostRange: Range<Int>?) {
        bytes = kept
        if !isConnect, let usual = kept.withUnsafeBufferPointer({ HTTPURL.originForm($0, target: targetRange, host: hostRange) }) {
            (path, query, domain, port, fullAuthority) = (usual.path, usual.query, usual.domain, usual.port, usual.authority)
            pathIsTarget = usual.query == nil
            return
        }
        let target = kept[targetRange], host = hostRange.map { kept[$0] }
        guard target.allSatisfy({ $0 < 0x80 }), host?.allSatisfy({ $0 < 0x80 }) ?? true else {
            // Not ASCII: Character rules (Unicode letters, grapheme clusters) apply, as the
            // String version has them.
            self = HTTPURL(text: target.text, isConnect: isConnect, host: host?.text)
            return
        }
        // ASCII: one byte is one Character, so byte searches find what String searches would.
        var authority = host
        var rest = target
        var slashFirst = false  // an absolute target without a path: the path is "/"
        if isConnect {
            // authority-form: host:port
            authority = target
            rest = []
        } else if let r = HTTPURL.schemeSeparator(target),
                  target[..<r].allSatisfy({ HTTPURL.isLetter($0) || $0 == UInt8(ascii: "+") || $0 == Byte.dash || $0 == Byte.dot }) {
            // absolute-form (to a proxy): its authority wins over Host.
            let afterScheme = target[(r + 3)...]
            let end = afterScheme.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == Byte.question }) ?? afterScheme.endIndex
            var auth = afterScheme[..<end]
            if let at = auth.lastIndex(of: Byte.at) { auth = auth[(at + 1)...] }  // no userinfo
            authority = auth
            rest = afterScheme[end...]
            slashFirst = rest.isEmpty || rest.first == Byte.question
        }
        var pathStartsWithSlash = false
        if slashFirst {
            // A "/" of its own after the rest (a copy of `kept`, in this rare case).
            path = bytes.count..<(bytes.count + 1)
            bytes.append(UInt8(ascii: "/"))
            pathStartsWithSlash = true
            if !rest.isEmpty { query = (rest.startIndex + 1)..<rest.endIndex }
        } else if rest.count == 1 && rest.first == Byte.star {
            path = rest.indices
        } else if !rest.isEmpty {
            if let q = rest.firstIndex(of: Byte.question) {
                path = rest.startIndex..<q
                query = (q + 1)..<rest.endIndex
            } else {
                path = rest.indices
            }
            pathStartsWithSlash = rest.first == UInt8(ascii: "/")
        }
        pathIsTarget = path == targetRange
        if let a = authority, !a.isEmpty {
            var hostPart = a, portPart: ArraySlice<UInt8>?
            if a.first == UInt8(ascii: "["), let close = a.firstIndex(of: UInt8(ascii: "]")) {
                hostPart = a[(a.startIndex + 1)..<close]
                let after = a[(close + 1)...]
                if after.first == Byte.colon { portPart = after.dropFirst() }
            } else if let colon = a.lastIndex(of: Byte.colon) {
                hostPart = a[..<colon]
                portPart = a[(colon + 1)...]
            }
            domain = hostPart.isEmpty ? nil : hostPart.indices
            if let p = portPart { port = p.withUnsafeBufferPointer(HTTPURL.portNumber) }
            if !isConnect && pathStartsWithSlash { fullAuthority = a.indices }
        }
    }

    /// The fields of the usual request (see `originForm`).
    private struct OriginForm {
        var path: Range<Int>
        var query: Range<Int>?
        var domain: Range<Int>?
        var port: Int?
        var authority: Range<Int>?
    }

    /// The fields of the usual request, an origin-form target (`/path?query`) with a Host
    /// not in brackets, both ASCII, from one loop over each, on raw bytes; nil for any other
    /// (the general code finds the same fields, more slowly).
    private static func originForm(_ b: UnsafeBufferPointer<UInt8>, target: Range<Int>,
                                   host: Range<Int>?) -> OriginForm? {
        // With a "/" first, the target is no absolute URI (a scheme has no "/").
        guard !target.isEmpty, b[target.lowerBound] == UInt8(ascii: "/") else { return nil }
        let targetBytes = UnsafeBufferPointer(rebasing: b[target])
        let hostBytes = host.map { UnsafeBufferPointer(rebasing: b[$0]) } ?? UnsafeBufferPointer(start: nil, count: 0)
        if hostBytes.first == UInt8(ascii: "[") { return nil }
        // ASCII: bit 7 clear in every byte (loops of their own, which the compiler vectorises).
        var high: UInt8 = 0
        for c in targetBytes { high |= c }
        for c in hostBytes { high |= c }
        guard high < 0x80 else { return nil }
        let question = targetBytes.firstIndex(of: Byte.question).map { target.lowerBound + $0 }
        let colon = hostBytes.lastIndex(of: Byte.colon).map { host!.lowerBound + $0 }
        var url = OriginForm(path: target)
        if let question {
            url.path = target.lowerBound..<question
            url.query = (question + 1)..<target.upperBound
        }
        if let host, !host.isEmpty {
            let name = host.lowerBound..<(colon ?? host.upperBound)
            url.domain = name.isEmpty ? nil : name
            if let colon { url.port = portNumber(UnsafeBufferPointer(rebasing: b[(colon + 1)..<host.upperBound])) }
            url.authority = host
        }
        return url
    }

    /// The bytes of one of the fields.
    subscript(_ field: Range<Int>) -> ArraySlice<UInt8> { bytes[field] }

    /// There is a `url.full` (see `writeFullJSON(into:)`).
    var hasFull: Bool { fullAuthority != nil }

    /// The bytes of a field as a JSON string, written into a value being written.
    func writeUTF8(_ field: Range<Int>, into out: inout JSONOutput) {
        bytes.withUnsafeBufferPointer { out.writeUTF8String(UnsafeBufferPointer(rebasing: $0[field])) }
    }

    /// `url.full` (`http://`, the authority, the path and `?query`) as one JSON string,
    /// written into a value being written: the bytes `JSONOutput.writeUTF8String` would
    /// write for that text, without assembling it first. Nearly always no byte of the
    /// pieces needs escaping, and they are copied in between the quotes; if one does, the
    /// text is assembled and `writeUTF8String` escapes (and repairs) it. Nothing when there
    /// is none.
    func writeFullJSON(into out: inout JSONOutput) {
        guard let fullAuthority, let path else { return }
        bytes.withUnsafeBufferPointer { b in
            let authority = UnsafeBufferPointer(rebasing: b[fullAuthority])
            let pathBytes = UnsafeBufferPointer(rebasing: b[path])
            let queryBytes = query.map { UnsafeBufferPointer(rebasing: b[$0]) } ?? UnsafeBufferPointer(start: nil, count: 0)
            if JSONWriter.isPlainText(authority) && JSONWriter.isPlainText(pathBytes) && JSONWriter.isPlainText(queryBytes) {
                out.append(#""http://"#)
                out.append(authority)
                out.append(pathBytes)
                if query != nil {
                    out.append(Byte.question)
                    out.append(queryBytes)
                }
                out.append(Byte.quote)
            } else {
                var text = HTTPURL.httpPrefix
                text.append(contentsOf: authority)
                text.append(contentsOf: pathBytes)
                if query != nil {
                    text.append(Byte.question)
                    text.append(contentsOf: queryBytes)
                }
                text.withUnsafeBufferPointer { out.writeUTF8String($0) }
            }
        }
    }


    private static func isLetter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) }

    /// Offset of the first `://`, if the target has one.
    private static func schemeSeparator(_ target: ArraySlice<UInt8>) -> Int? {
        var i = target.startIndex
        while let colon = target[i...].firstIndex(of: Byte.colon) {
            if target[colon...].starts(with: "://".utf8) { return colon }
            i = colon + 1
        }
        return nil
    }

    /// A port as `Int(_:)` reads it (an optional sign, decimal digits), nil outside 0...65535.
    private static func portNumber(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        let negative = text.first == Byte.dash
        var i = negative || text.first == UInt8(ascii: "+") ? 1 : 0
        guard i < text.count else { return nil }
        var n = 0
        while i < text.count {
            guard Byte.isDigit(text[i]) else { return nil }
            n = n * 10 + Int(text[i] - UInt8(ascii: "0"))
            if n > 65535 { return nil }  // out of range whatever follows
            i += 1
        }
        return negative && n != 0 ? nil : n
    }

    /// The fields from non-ASCII text, with String (Character) semantics.
    private init(text target: String, isConnect: Bool, host: String?) {
        bytes = []
        var authority = host
        var rest = Substring(target)
        if isConnect {
            // authority-form: host:port
            authority = target
            rest = ""
        } else if HTTPSyntax.mayHaveScheme(rest), let r = rest.range(of: "://"), rest[..<r.lowerBound].allSatisfy({ $0.isLetter || $0 == "+" || $0 == "-" || $0 == "." }) {
            // absolute-form (to a proxy): its authority wins over Host.
            let afterScheme = rest[r.upperBound...]
            let end = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
            var auth = afterScheme[..<end]
            if let at = auth.lastIndex(of: "@") { auth = auth[auth.index(after: at)...] }  // no userinfo
            authority = String(auth)
            rest = afterScheme[end...]
            if rest.isEmpty || rest.first == "?" { rest = "/" + rest }
        }
        /// Appends `s` to `bytes`; its range there.
        func add<S: StringProtocol>(_ s: S) -> Range<Int> {
            let start = bytes.count
            bytes.append(contentsOf: s.utf8)
            return start..<bytes.count
        }
        var pathText: String?
        if !rest.isEmpty && rest != "*" {
            if let q = rest.firstIndex(of: "?") {
                pathText = String(rest[..<q])
                query = add(rest[rest.index(after: q)...])
            } else {
                pathText = String(rest)
            }
        } else if rest == "*" {
            pathText = "*"
        }
        path = pathText.map(add)
        if let a = authority, !a.isEmpty {
            var hostPart = Substring(a), portPart: Substring?
            if a.hasPrefix("["), let close = a.firstIndex(of: "]") {
                hostPart = a[a.index(after: a.startIndex)..<close]
                let after = a[a.index(after: close)...]
                if after.hasPrefix(":") { portPart = after.dropFirst() }
            } else if let colon = a.lastIndex(of: ":") {
                hostPart = a[..<colon]
                portPart = a[a.index(after: colon)...]
            }
            domain = hostPart.isEmpty ? nil : add(hostPart)
            if let p = portPart, let n = Int(p), (0...65535).contains(n) { port = n }
            // String concatenation is concatenation of UTF-8: `writeFullJSON(into:)` makes the same text.
            if !isConnect, let pathText, pathText.hasPrefix("/") { fullAuthority = add(a) }
        }
    }
}

import Foundation  // trimmingCharacters
