/// Byte constants and ASCII helpers: the SMTP parsers work on bytes and make Strings only
/// for what ends up in an event.
enum Byte {
    static let cr: UInt8 = 0x0d, lf: UInt8 = 0x0a, space: UInt8 = 0x20, tab: UInt8 = 0x09
    static let dot: UInt8 = 0x2e, colon: UInt8 = 0x3a, semicolon: UInt8 = 0x3b, comma: UInt8 = 0x2c
    static let less: UInt8 = 0x3c, greater: UInt8 = 0x3e, quote: UInt8 = 0x22, backslash: UInt8 = 0x5c
    static let at: UInt8 = 0x40, dash: UInt8 = 0x2d, equals: UInt8 = 0x3d, question: UInt8 = 0x3f
    static let openParen: UInt8 = 0x28, closeParen: UInt8 = 0x29, underscore: UInt8 = 0x5f
    static let star: UInt8 = 0x2a, nul: UInt8 = 0

    static func isSpace(_ b: UInt8) -> Bool { b == space || b == tab }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func upper(_ b: UInt8) -> UInt8 { b >= 0x61 && b <= 0x7a ? b - 0x20 : b }
    static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b + 0x20 : b }
}

extension ArraySlice where Element == UInt8 {
    var trimmingSpaces: ArraySlice<UInt8> {
        // By index: one slice made, not one per byte dropped.
        var lo = startIndex, hi = endIndex
        while lo < hi && Byte.isSpace(self[lo]) { lo += 1 }
        while hi > lo && Byte.isSpace(self[hi - 1]) { hi -= 1 }
        return self[lo..<hi]
    }

    /// Without a trailing LF or CRLF. (Inlined, as `SMTPSyntax.splitCommand`: the calls, and
    /// the retains of the slices they return, cost ~70 instructions a command line.)
    @inline(__always)
    var withoutLineEnd: ArraySlice<UInt8> {
        // By index: one slice made, not one per byte dropped.
        var end = endIndex
        if end > startIndex && self[end - 1] == Byte.lf { end -= 1 }
        if end > startIndex && self[end - 1] == Byte.cr { end -= 1 }
        return self[startIndex..<end]
    }

    func hasPrefix(ignoringCase prefix: [UInt8]) -> Bool {
        guard count >= prefix.count else { return false }
        var i = startIndex
        for p in prefix {
            if Byte.upper(self[i]) != Byte.upper(p) { return false }
            i += 1
        }
        return true
    }

    /// Splits on runs of spaces and tabs.
    var words: [ArraySlice<UInt8>] { split(whereSeparator: Byte.isSpace) }

    /// UTF-8 text (invalid sequences become U+FFFD).
    var text: String { String(decoding: self, as: UTF8.self) }
    var upperText: String {
        // Verbs mostly come in upper case already: no copy then.
        if !contains(where: { $0 >= 0x61 && $0 <= 0x7a }) { return text }
        return String(decoding: map(Byte.upper), as: UTF8.self)
    }
}

/// A command verb, recognised case-insensitively from its bytes once: the session compares
/// enum cases, and events take each known verb's JSON text encoded once. `other` is any
/// other verb, whose (upper-cased) text the command keeps.
enum Verb: Int, CaseIterable {
    case helo, ehlo, mail, rcpt, data, bdat, rset, quit, starttls, auth, vrfy, expn, noop, help
    case other

    /// The upper-case name (`""` for `other`).
    var name: String { Verb.names[rawValue] }
    /// `name` as JSON text, for `Event.set(_:encodedJSON:)`: a literal (an array from a table
    /// cost a retain and a release for every COMMAND event).
    var json: StaticString {
        switch self {
        case .helo: "\"HELO\""
        case .ehlo: "\"EHLO\""
        case .mail: "\"MAIL\""
        case .rcpt: "\"RCPT\""
        case .data: "\"DATA\""
        case .bdat: "\"BDAT\""
        case .rset: "\"RSET\""
        case .quit: "\"QUIT\""
        case .starttls: "\"STARTTLS\""
        case .auth: "\"AUTH\""
        case .vrfy: "\"VRFY\""
        case .expn: "\"EXPN\""
        case .noop: "\"NOOP\""
        case .help: "\"HELP\""
        case .other: "\"\""
        }
    }

    private static let names = ["HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "QUIT", "STARTTLS",
                                "AUTH", "VRFY", "EXPN", "NOOP", "HELP", ""]
    private static let starttlsBytes = Array("STARTTLS".utf8)

    init(_ word: UnsafeBufferPointer<UInt8>) {
        if word.count == 4 {
            // The four bytes upper-cased as a big-endian UInt32, then one switch on the
            // constants (a search of a table of them, behind a lazy global, cost ~100
            // instructions per command).
            var packed: UInt32 = 0
            for i in 0..<4 { packed = packed << 8 | UInt32(Byte.upper(word[i])) }
            switch packed {
            case 0x4845_4c4f: self = .helo  // "HELO"
            case 0x4548_4c4f: self = .ehlo  // "EHLO"
            case 0x4d41_494c: self = .mail  // "MAIL"
            case 0x5243_5054: self = .rcpt  // "RCPT"
            case 0x4441_5441: self = .data  // "DATA"
            case 0x4244_4154: self = .bdat  // "BDAT"
            case 0x5253_4554: self = .rset  // "RSET"
            case 0x5155_4954: self = .quit  // "QUIT"
            case 0x4155_5448: self = .auth  // "AUTH"
            case 0x5652_4659: self = .vrfy  // "VRFY"
            case 0x4558_504e: self = .expn  // "EXPN"
            case 0x4e4f_4f50: self = .noop  // "NOOP"
            case 0x4845_4c50: self = .help  // "HELP"
            default: self = .other
            }
            return
        } else if word.count == 8 {
            let starttls = Verb.starttlsBytes
            var i = 0
            while i < 8 && Byte.upper(word[i]) == starttls[i] { i += 1 }
            if i == 8 {
                self = .starttls
                return
            }
        }
        self = .other
    }
}

enum SMTPSyntax {
    static let from = Array("FROM:".utf8)
    static let to = Array("TO:".utf8)
    static let last = Array("LAST".utf8)

    /// The verb (recognised from the bytes; at most 64 bytes looked at), the verb's bytes and
    /// the rest of a command line, trimmed.
    @inline(__always)  // see `withoutLineEnd`
    static func splitCommand(_ line: ArraySlice<UInt8>) -> (verb: Verb, word: ArraySlice<UInt8>, rest: ArraySlice<UInt8>) {
        // Offsets found in place over the bytes; each slice made once.
        let (verb, wordEnd, restStart, restEnd) = line.withUnsafeBufferPointer { s -> (Verb, Int, Int, Int) in
            var end = 0
            while end < s.count && !Byte.isSpace(s[end]) { end += 1 }
            let wordEnd = Swift.min(end, 64)
            var lo = end, hi = s.count
            while lo < hi && Byte.isSpace(s[lo]) { lo += 1 }
            while hi > lo && Byte.isSpace(s[hi - 1]) { hi -= 1 }
            return (Verb(UnsafeBufferPointer(rebasing: s[..<wordEnd])), wordEnd, lo, hi)
        }
        let base = line.startIndex
        return (verb, line[base..<base + wordEnd], line[(base + restStart)..<(base + restEnd)])
    }

    /// Whether a line at an untrusted position (connection picked up mid-stream, after a gap)
    /// is a command we can resynchronise on: a known verb with arguments of the right shape,
    /// so that message text such as "Help me" or "Data follows" is not taken for a command.
    static func isPlausibleCommand(verb: Verb, rest: ArraySlice<UInt8>) -> Bool {
        switch verb {
        case .mail: return rest.hasPrefix(ignoringCase: from)
        case .rcpt: return rest.hasPrefix(ignoringCase: to)
        case .data, .rset, .quit, .starttls: return rest.isEmpty
        case .ehlo, .helo: return !rest.isEmpty && rest.words.count == 1
        case .vrfy, .expn: return !rest.isEmpty
        case .noop, .help: return rest.words.count <= 1
        case .auth:
            guard let mech = rest.words.first else { return false }
            return rest.words.count <= 2 && mech.allSatisfy { isMechanismByte($0) }
        case .bdat: return bdatArguments(rest) != nil
        case .other: return false
        }
    }

    static func isMechanismByte(_ b: UInt8) -> Bool {
        let u = Byte.upper(b)
        return (u >= 0x41 && u <= 0x5a) || Byte.isDigit(b) || b == Byte.dash || b == Byte.underscore
    }

    /// `BDAT <size> [LAST]`.
    static func bdatArguments(_ rest: ArraySlice<UInt8>) -> (size: Int, last: Bool)? {
        let words = rest.words
        guard let sizeWord = words.first, sizeWord.count <= 18, sizeWord.allSatisfy(Byte.isDigit) else { return nil }
        var size = 0
        for d in sizeWord { size = size * 10 + Int(d - 0x30) }
        switch words.count {
        case 1: return (size, false)
        case 2 where words[1].count == last.count && words[1].hasPrefix(ignoringCase: last): return (size, true)
        default: return nil
        }
    }

    /// Without a trailing LF or CRLF (a line parsed in place). (Inlined, as `replyLine`:
    /// the calls and their results passed through memory cost ~40 instructions a reply line.)
    @inline(__always)
    static func withoutLineEnd(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var n = line.count
        if n > 0 && line[n - 1] == Byte.lf { n -= 1 }
        if n > 0 && line[n - 1] == Byte.cr { n -= 1 }
        return UnsafeBufferPointer(rebasing: line[..<n])
    }

    /// A reply line `ddd[ -]text` or a bare `ddd`; the first digit must be 2 to 5.
    @inline(__always)  // see `withoutLineEnd`
    static func replyLine(_ line: UnsafeBufferPointer<UInt8>) -> (code: Int, isLast: Bool, text: UnsafeBufferPointer<UInt8>)? {
        guard line.count >= 3 else { return nil }
        let d0 = line[0], d1 = line[1], d2 = line[2]
        guard d0 >= 0x32 && d0 <= 0x35, Byte.isDigit(d1), Byte.isDigit(d2) else { return nil }
        let code = Int(d0 - 0x30) * 100 + Int(d1 - 0x30) * 10 + Int(d2 - 0x30)
        if line.count == 3 { return (code, true, UnsafeBufferPointer(rebasing: line[3...])) }
        switch line[3] {
        case Byte.space: return (code, true, UnsafeBufferPointer(rebasing: line[4...]))
        case Byte.dash: return (code, false, UnsafeBufferPointer(rebasing: line[4...]))
        default: return nil
        }
    }

    /// The address of `FROM:<path> params` / `TO:<path> params`: no angle brackets, no ESMTP
    /// parameters, no source route; empty for the null path `<>`. Lenient about a space after
    /// the colon and a missing pair of brackets, as servers are.
    static func mailPath(_ rest: ArraySlice<UInt8>, keyword: [UInt8]) -> ArraySlice<UInt8>? {
        // Offsets in `rest`, read in place: no slice per step.
        let path: Range<Int>? = rest.withUnsafeBufferPointer { s in
            let n = s.count
            guard n >= keyword.count else { return nil }
            for k in 0..<keyword.count where Byte.upper(s[k]) != Byte.upper(keyword[k]) { return nil }
            var i = keyword.count
            while i < n && Byte.isSpace(s[i]) { i += 1 }
            guard i < n else { return nil }
            if s[i] == Byte.less {
                var lo = i + 1, hi = lo
                var inQuote = false, escaped = false
                while hi < n {
                    let b = s[hi]
                    if escaped { escaped = false }
                    else if b == Byte.backslash { escaped = true }
                    else if b == Byte.quote { inQuote.toggle() }
                    else if b == Byte.greater && !inQuote { break }
                    hi += 1
                }
                // RFC 5321 4.1.1.3: a source route (`<@relay:user@host>`) is accepted and ignored.
                if lo < hi && s[lo] == Byte.at, let colon = (lo..<hi).first(where: { s[$0] == Byte.colon }) {
                    lo = colon + 1
                }
                while lo < hi && Byte.isSpace(s[lo]) { lo += 1 }
                while hi > lo && Byte.isSpace(s[hi - 1]) { hi -= 1 }
                return lo..<hi
            }
            var end = i
            while end < n && !Byte.isSpace(s[end]) { end += 1 }
            return i..<end
        }
        guard let path else { return nil }
        return rest[(rest.startIndex + path.lowerBound)..<(rest.startIndex + path.upperBound)]
    }
}
