import WirebeatCore

/// Collects the header section of a message as its data streams by (already dot-unstuffed),
/// up to the first empty line or `limit` bytes; the body is never kept.
struct MessageHeaderCollector {
    static let limit = 65_536

    private(set) var raw: [UInt8] = []
    /// Bytes of the current line, CR not counted: 0 at a line start.
    private var lineLength = 0
    private(set) var complete = false

    mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard !complete else { return }
        if bytes.withContiguousStorageIfAvailable({ feed(contiguous: $0) }) == nil {
            Array(bytes).withUnsafeBufferPointer { feed(contiguous: $0) }
        }
    }

    /// Scans for the empty line that ends the headers, copying runs of bytes at once.
    private mutating func feed(contiguous bytes: UnsafeBufferPointer<UInt8>) {
        var i = 0
        defer { raw.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[0..<i])) }
        while i < bytes.count {
            let b = bytes[i]
            if b == Byte.lf {
                if lineLength == 0 { complete = true; return }   // the empty line itself is not kept
                lineLength = 0
            } else if b != Byte.cr {
                lineLength += 1
            }
            i += 1
            if raw.count + i >= MessageHeaderCollector.limit { complete = true; return }
        }
    }

    /// Stop collecting (data was lost): what is complete so far is still parsed.
    mutating func abandon() { complete = true }

    var parsed: MessageHeaders { MessageHeaders(raw[...]) }
}

/// The header fields Wirebeat publishes (`email.*`), from the first occurrence of each.
struct MessageHeaders {
    var subject: String?
    var messageID: String?
    var from: [String] = []
    var to: [String] = []
    var cc: [String] = []
    var replyTo: [String] = []
    var xMailer: String?
    var contentType: String?

    /// The header fields published, by their lower-case names.
    private enum Field: Int, CaseIterable {
        case subject, messageID, from, to, cc, replyTo, xMailer, contentType

        static let names: [[UInt8]] = ["subject", "message-id", "from", "to", "cc", "reply-to", "x-mailer",
                                       "content-type"].map { Array($0.utf8) }

        /// The field a header name (any case) stands for, compared as bytes: no String per
        /// header line.
        init?(name: ArraySlice<UInt8>) {
            for (i, candidate) in Field.names.enumerated() where candidate.count == name.count {
                if zip(candidate, name).allSatisfy({ $0 == Byte.lower($1) }) {
                    self.init(rawValue: i)
                    return
                }
            }
            return nil
        }
    }

    init(_ raw: ArraySlice<UInt8>) {
        var seen: UInt16 = 0   // bit per Field: the first occurrence of each counts
        for (field, value) in MessageHeaders.fields(raw) where seen & (1 << field.rawValue) == 0 {
            switch field {
            case .subject: subject = RFC2047.decode(value.trimmingSpaces)
            case .messageID: messageID = MessageHeaders.messageID(value)
            case .from: from = MessageHeaders.addresses(value)
            case .to: to = MessageHeaders.addresses(value)
            case .cc: cc = MessageHeaders.addresses(value)
            case .replyTo: replyTo = MessageHeaders.addresses(value)
            case .xMailer: xMailer = RFC2047.decode(value.trimmingSpaces)
            case .contentType:
                let type = value[..<(value.firstIndex(of: Byte.semicolon) ?? value.endIndex)].trimmingSpaces
                if !type.isEmpty { contentType = type.text }
            }
            seen |= 1 << field.rawValue
        }
    }

    /// Unfolded values of the published fields, in order. A line not ended by LF is cut off
    /// (the collector stopped inside it) and dropped.
    private static func fields(_ raw: ArraySlice<UInt8>) -> [(Field, ArraySlice<UInt8>)] {
        // Values are slices of `raw` (no copy, no array of lines); only a folded value is
        // copied, to join its lines. Other fields are skipped, continuation lines included.
        var result: [(Field, ArraySlice<UInt8>)] = []
        var lineStart = raw.startIndex
        var inPublishedField = false
        while let lf = raw[lineStart...].firstIndex(of: Byte.lf) {  // the part after the last LF is dropped
            var line = raw[lineStart..<lf]
            lineStart = lf + 1
            if line.last == Byte.cr { line = line.dropLast() }
            if let first = line.first, Byte.isSpace(first) {
                // Folded continuation: unfolding removes only the line break.
                if inPublishedField { result[result.count - 1].1 = (Array(result[result.count - 1].1) + line)[...] }
                continue
            }
            // A line that is no field at all leaves a continuation to the field before it.
            guard let colon = line.firstIndex(of: Byte.colon) else { continue }
            let name = line[..<colon].trimmingSpaces
            guard !name.isEmpty, name.count <= 76 else { continue }
            guard let field = Field(name: name) else { inPublishedField = false; continue }
            result.append((field, line[(colon + 1)...]))
            inPublishedField = true
        }
        return result
    }

    static func messageID(_ value: ArraySlice<UInt8>) -> String? {
        var v = value.trimmingSpaces
        if let open = v.firstIndex(of: Byte.less) {
            v = v[(open + 1)...]
            v = v[..<(v.firstIndex(of: Byte.greater) ?? v.endIndex)]
        }
        v = v.trimmingSpaces
        return v.isEmpty ? nil : v.text
    }

    /// The addresses of an address list (RFC 5322 3.4): display names, comments and group
    /// names dropped, `<...>` taken when present.
    static func addresses(_ value: ArraySlice<UInt8>) -> [String] {
        var result: [String] = []
        var bare: [UInt8] = []
        var angle: [UInt8]?
        var inQuote = false, inAngle = false, escaped = false
        var commentDepth = 0

        func flush() {
            let address = (angle ?? bare)[...].trimmingSpaces
            if !address.isEmpty { result.append(address.text) }
            bare.removeAll(keepingCapacity: true)
            angle = nil
        }

        for b in value {
            if escaped { escaped = false; if inAngle { angle?.append(b) } else { bare.append(b) }; continue }
            if b == Byte.backslash && (inQuote || commentDepth > 0) { escaped = true; continue }
            if commentDepth > 0 {
                if b == Byte.openParen { commentDepth += 1 } else if b == Byte.closeParen { commentDepth -= 1 }
                continue
            }
            if inQuote {
                if b == Byte.quote { inQuote = false }
                if inAngle { angle?.append(b) } else { bare.append(b) }
                continue
            }
            if inAngle {
                if b == Byte.greater { inAngle = false } else { angle?.append(b) }
                continue
            }
            switch b {
            case Byte.quote: inQuote = true; bare.append(b)
            case Byte.openParen: commentDepth = 1
            case Byte.less: inAngle = true; angle = []
            case Byte.comma, Byte.semicolon: flush()
            case Byte.colon: bare.removeAll(keepingCapacity: true); angle = nil  // "group name:"
            default: bare.append(b)
            }
        }
        flush()
        return result
    }
}

/// RFC 2047 encoded-words (`=?charset?B|Q?text?=`) in unstructured header text.
enum RFC2047 {
    static func decode(_ text: ArraySlice<UInt8>) -> String {
        guard text.count >= 8, text.firstIndex(of: Byte.question) != nil else { return text.text }
        var out = ""
        var literalStart = text.startIndex
        var afterEncodedWord = false
        var i = text.startIndex
        while i < text.endIndex - 1 {
            if text[i] == Byte.equals && text[i + 1] == Byte.question, let (decoded, end) = encodedWord(text, at: i) {
                let between = text[literalStart..<i]
                // Whitespace between two encoded-words is not part of the text (RFC 2047 6.2).
                if !(afterEncodedWord && between.allSatisfy(Byte.isSpace)) { out += between.text }
                out += decoded
                i = end
                literalStart = end
                afterEncodedWord = true
                continue
            }
            i += 1
        }
        out += text[literalStart...].text
        return out
    }

    /// The word starting at `start` and the index after it, or nil when it is not well formed.
    static func encodedWord(_ t: ArraySlice<UInt8>, at start: Int) -> (String, Int)? {
        var i = start + 2
        let charsetStart = i
        while i < t.endIndex && t[i] != Byte.question && !Byte.isSpace(t[i]) && i - charsetStart < 64 { i += 1 }
        guard i < t.endIndex, t[i] == Byte.question, i > charsetStart else { return nil }
        var charset = t[charsetStart..<i]
        if let star = charset.firstIndex(of: Byte.star) { charset = charset[..<star] }  // RFC 2231 language
        i += 1
        guard i + 1 < t.endIndex, t[i + 1] == Byte.question else { return nil }
        let encoding = Byte.upper(t[i])
        i += 2
        let payloadStart = i
        while i + 1 < t.endIndex && !(t[i] == Byte.question && t[i + 1] == Byte.equals) {
            if Byte.isSpace(t[i]) { return nil }
            i += 1
        }
        guard i + 1 < t.endIndex else { return nil }
        let payload = t[payloadStart..<i]
        let bytes: [UInt8]
        switch encoding {
        case 0x42:  // B
            guard let b = Base64.decode(payload) else { return nil }
            bytes = b
        case 0x51:  // Q
            bytes = quotedPrintable(payload)
        default:
            return nil
        }
        return (text(bytes, charset: String(decoding: charset.lazy.map(Byte.lower), as: UTF8.self)), i + 2)
    }

    static func quotedPrintable(_ p: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var i = p.startIndex
        while i < p.endIndex {
            let b = p[i]
            if b == Byte.underscore { out.append(Byte.space) }
            else if b == Byte.equals, i + 2 < p.endIndex, let h = hex(p[i + 1]), let l = hex(p[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else { out.append(b) }
            i += 1
        }
        return out
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// UTF-8 and ASCII as UTF-8; the Latin-1 family byte for code point (close enough for
    /// windows-1252 and -15 in a subject line); anything else as UTF-8 with replacements.
    static func text(_ bytes: [UInt8], charset: String) -> String {
        switch charset {
        case "iso-8859-1", "latin1", "iso-8859-15", "windows-1252", "cp1252":
            var s = String.UnicodeScalarView()
            for b in bytes { s.append(Unicode.Scalar(b)) }
            return String(s)
        default:
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
