import WirebeatCore
#if canImport(Glibc)
import Glibc  // memchr
#elseif canImport(Darwin)
import Darwin
#endif

/// Collects the header section of a message as its data streams by (already dot-unstuffed),
/// up to the first empty line or `limit` bytes; the body is never kept.
struct MessageHeaderCollector {
    static let limit = 65_536

    private(set) var raw: [UInt8] = []
    /// The current line has a byte other than CR (so an LF now does not end the headers).
    private var lineHasText = false
    private(set) var complete = false

    /// Scans for the empty line that ends the headers, copying the bytes at once. Only a line
    /// that starts with CR or LF can be empty: the scan looks for a LF followed by one
    /// (`nextBlankCandidate`), not at every line (a memchr and a test per line cost ~60
    /// instructions a line).
    mutating func feed(contiguous bytes: UnsafeBufferPointer<UInt8>) {
        // Fed line by line: room for a typical header section at once, not one regrowth per
        // few lines.
        if raw.capacity == 0 { raw.reserveCapacity(2048) }
        // At least 1 while collecting: `complete` is set as soon as `raw` reaches the limit.
        let room = MessageHeaderCollector.limit - raw.count
        guard room > 0, let base = bytes.baseAddress else {
            if room <= 0 { complete = true }
            return
        }
        let n = min(bytes.count, room)
        var i = 0
        defer { raw.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[0..<i])) }
        // `i` is where a line (or the rest of one) starts that is blank so far unless
        // `lineHasText`.
        while true {
            if !lineHasText {
                var k = i
                while k < n && base[k] == Byte.cr { k += 1 }
                if k == n {
                    i = n  // only CRs so far: the line goes on in the next bytes
                    break
                }
                if base[k] == Byte.lf {
                    i = k
                    complete = true  // the empty line ends the headers; its LF is not kept
                    return
                }
                i = k
                lineHasText = true
            }
            guard let lf = MessageHeaderCollector.nextBlankCandidate(base, n, from: i) else {
                i = n  // the last line has text and goes on
                break
            }
            lineHasText = false
            i = lf + 1
        }
        // The limit reached.
        if n == room { complete = true }
    }

    /// The first LF at or after `from` that a CR or LF follows (what follows may be a blank
    /// line), else the last byte if it is a LF (what follows is not there yet), else nil.
    /// Compared 16 bytes at a time, as `SMTPSession.nextDotLine`.
    static func nextBlankCandidate(_ base: UnsafePointer<UInt8>, _ n: Int, from: Int) -> Int? {
        guard from < n else { return nil }
        let raw = UnsafeRawPointer(base)
        let lf = SIMD16<UInt8>(repeating: Byte.lf), cr = SIMD16<UInt8>(repeating: Byte.cr)
        var i = from
        while i + 17 <= n {
            let next = raw.loadUnaligned(fromByteOffset: i + 1, as: SIMD16<UInt8>.self)
            let m = (raw.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self) .== lf) .& ((next .== cr) .| (next .== lf))
            let words = unsafeBitCast(m, to: SIMD2<UInt64>.self)
            if words[0] | words[1] != 0 { break }
            i += 16
        }
        while i + 1 < n {
            if base[i] == Byte.lf && (base[i + 1] == Byte.cr || base[i + 1] == Byte.lf) { return i }
            i += 1
        }
        return base[n - 1] == Byte.lf ? n - 1 : nil
    }

    /// Stop collecting (data was lost): what is complete so far is still parsed.
    mutating func abandon() { complete = true }

    /// Empty again for another message, keeping a usual header section's capacity.
    mutating func reset() {
        if raw.capacity > 8192 { raw = [] } else if !raw.isEmpty { raw.removeAll(keepingCapacity: true) }
        lineHasText = false
        complete = false
    }

    /// Sets the `email.*` fields of the headers collected so far.
    /// `state`: what the caller (the session) keeps from mail to mail.
    func publish(into e: inout Event, state: inout MessageHeaders.State) { MessageHeaders.publish(raw, into: &e, state: &state) }
}

/// The header fields Wirebeat publishes (`email.*`), from the first occurrence of each,
/// written straight into the event: values are byte ranges of the collected header section
/// (only a folded value is copied, to join its lines), never a String unless RFC 2047
/// decoding needs one.
enum MessageHeaders {
    /// The header fields published (their lower-case names: see `init(name:)`).
    private enum Field: Int {
        case subject, messageID, from, to, cc, replyTo, xMailer, contentType

        /// The field a header name (any case) stands for, compared as bytes: the only
        /// candidate, by length and first letter, then its bytes.
        init?(name: UnsafeBufferPointer<UInt8>) {
            guard let first = name.first else { return nil }
            let candidate: Field, lowerName: StaticString
            switch (name.count, Byte.lower(first)) {
            case (7, UInt8(ascii: "s")): (candidate, lowerName) = (.subject, "subject")
            case (10, UInt8(ascii: "m")): (candidate, lowerName) = (.messageID, "message-id")
            case (4, UInt8(ascii: "f")): (candidate, lowerName) = (.from, "from")
            case (2, UInt8(ascii: "t")): (candidate, lowerName) = (.to, "to")
            case (2, UInt8(ascii: "c")): (candidate, lowerName) = (.cc, "cc")
            case (8, UInt8(ascii: "r")): (candidate, lowerName) = (.replyTo, "reply-to")
            case (8, UInt8(ascii: "x")): (candidate, lowerName) = (.xMailer, "x-mailer")
            case (12, UInt8(ascii: "c")): (candidate, lowerName) = (.contentType, "content-type")
            default: return nil
            }
            // A literal's bytes: no array to look up.
            let bytes = lowerName.utf8Start
            var k = 1
            while k < name.count && bytes[k] == Byte.lower(name[k]) { k += 1 }
            guard k == name.count else { return nil }
            self = candidate
        }

        /// The field whose name (any case) and a colon start a line (`count` bytes), as
        /// `init(name:)` finds it after the search for the colon; nil when the line starts
        /// otherwise, e.g. with a space before the colon, which the general way handles. (The
        /// search and `init(name:)` cost ~100 instructions a line, this test ~40.)
        @inline(__always)
        init?(lineStart p: UnsafePointer<UInt8>, count: Int) {
            guard count > 2 else { return nil }
            let candidate: Field, lowerName: StaticString
            switch Byte.lower(p[0]) {
            case UInt8(ascii: "s"): (candidate, lowerName) = (.subject, "subject")
            case UInt8(ascii: "m"): (candidate, lowerName) = (.messageID, "message-id")
            case UInt8(ascii: "f"): (candidate, lowerName) = (.from, "from")
            case UInt8(ascii: "t"): (candidate, lowerName) = (.to, "to")
            case UInt8(ascii: "c"):
                (candidate, lowerName) = p[2] == Byte.colon ? (.cc, "cc") : (.contentType, "content-type")
            case UInt8(ascii: "r"): (candidate, lowerName) = (.replyTo, "reply-to")
            case UInt8(ascii: "x"): (candidate, lowerName) = (.xMailer, "x-mailer")
            default: return nil
            }
            let n = lowerName.utf8CodeUnitCount
            guard n < count, p[n] == Byte.colon else { return nil }
            let bytes = lowerName.utf8Start
            var k = 1
            while k < n && bytes[k] == Byte.lower(p[k]) { k += 1 }
            guard k == n else { return nil }
            self = candidate
        }

        /// The length of the field's name.
        var nameLength: Int {
            switch self {
            case .subject: return 7
            case .messageID: return 10
            case .from: return 4
            case .to, .cc: return 2
            case .replyTo, .xMailer: return 8
            case .contentType: return 12
            }
        }
    }

    /// Unfolds the published fields of `raw` and sets them in `e`. A line not ended by LF is
    /// cut off (the collector stopped inside it) and dropped. Other fields are skipped,
    /// continuation lines included; so are repeats of a field.
    static func publish(_ raw: [UInt8], into e: inout Event, state: inout State) {
        // Values are read in place (no slice of `raw` per value: a retain and release, and
        // slice indices for every step of the trimming and searching).
        raw.withUnsafeBufferPointer { publish($0, into: &e, state: &state) }
    }

    // No nested function: one capturing the loop's state made its variables boxes with
    // run-time exclusivity checks (~75 instructions per access).
    private static func publish(_ buf: UnsafeBufferPointer<UInt8>, into e: inout Event, state: inout State) {
        var seen: UInt16 = 0   // bit per Field: the first occurrence of each counts
        // The field whose value may go on in continuation lines, its value in `buf`, and its
        // value with those lines joined once it has any.
        var pending: Field?
        var valueStart = 0, valueEnd = 0
        var folded: [UInt8]?
        let n = buf.count
        var lineStart = 0
        while lineStart < n {
            guard let found = memchr(buf.baseAddress! + lineStart, Int32(Byte.lf), n - lineStart) else { break }
            let lf = buf.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
            let start = lineStart
            var end = lf
            lineStart = lf + 1
            if end > start && buf[end - 1] == Byte.cr { end -= 1 }
            if start < end && Byte.isSpace(buf[start]) {
                // Folded continuation: unfolding removes only the line break.
                if pending != nil {
                    if folded == nil { folded = Array(buf[valueStart..<valueEnd]) }
                    folded!.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<end]))
                }
                continue
            }
            // A published field's name right before the colon (the usual `From:` line): its
            // name's bytes are no colon and no space, so that colon is the first and the name
            // needs no trimming. Else the general way below.
            var colon = start
            var known = Field(lineStart: buf.baseAddress! + start, count: end - start)
            if let field = known {
                colon = start + field.nameLength
            } else {
                // A line that is no field at all leaves a continuation to the field before it.
                while colon < end && buf[colon] != Byte.colon { colon += 1 }
                guard colon < end else { continue }
                var nameStart = start, nameEnd = colon
                while nameStart < nameEnd && Byte.isSpace(buf[nameStart]) { nameStart += 1 }
                while nameEnd > nameStart && Byte.isSpace(buf[nameEnd - 1]) { nameEnd -= 1 }
                guard nameStart < nameEnd, nameEnd - nameStart <= 76 else { continue }
                known = Field(name: UnsafeBufferPointer(rebasing: buf[nameStart..<nameEnd]))
            }
            if let field = pending {
                set(field, buf[valueStart..<valueEnd], folded: &folded, into: &e, state: &state)
                pending = nil
            }
            guard let field = known, seen & (1 << field.rawValue) == 0 else { continue }
            seen |= 1 << field.rawValue
            pending = field
            valueStart = colon + 1
            valueEnd = end
        }
        if let field = pending { set(field, buf[valueStart..<valueEnd], folded: &folded, into: &e, state: &state) }
    }

    /// A field's value: `value`, or `folded` (emptied) if its lines were joined.
    private static func set(_ field: Field, _ value: Slice<UnsafeBufferPointer<UInt8>>, folded: inout [UInt8]?,
                            into e: inout Event, state: inout State) {
        guard let joined = folded else {
            set(field, UnsafeBufferPointer(rebasing: value), into: &e, state: &state)
            return
        }
        folded = nil
        joined.withUnsafeBufferPointer { set(field, $0, into: &e, state: &state) }
    }

    private static func set(_ field: Field, _ value: UnsafeBufferPointer<UInt8>, into e: inout Event,
                            state: inout State) {
        switch field {
        case .subject: setText("email.subject", trimmingSpaces(value), into: &e)
        case .xMailer: setText("email.x_mailer", trimmingSpaces(value), into: &e)
        case .messageID:
            if let id = messageID(value) { setString("email.message_id", id, into: &e) }
        case .contentType:
            var end = 0
            while end < value.count && value[end] != Byte.semicolon { end += 1 }
            let type = trimmingSpaces(UnsafeBufferPointer(rebasing: value[..<end]))
            if !type.isEmpty { setString("email.content_type", type, into: &e) }
        case .from: setAddresses("email.from.address", .from, value, into: &e, state: &state)
        case .to: setAddresses("email.to.address", .to, value, into: &e, state: &state)
        case .cc: setAddresses("email.cc.address", .cc, value, into: &e, state: &state)
        case .replyTo: setAddresses("email.reply_to.address", .replyTo, value, into: &e, state: &state)
        }
    }

    /// `e.set(name, utf8: text)`, written straight into the event.
    private static func setString(_ name: String, _ text: UnsafeBufferPointer<UInt8>, into e: inout Event) {
        e.set(name, writingJSONTo: { SMTPJSON.string(text, into: &$0) })
    }

    @inline(__always)
    static func trimmingSpaces(_ v: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var lo = 0, hi = v.count
        while lo < hi && Byte.isSpace(v[lo]) { lo += 1 }
        while hi > lo && Byte.isSpace(v[hi - 1]) { hi -= 1 }
        return UnsafeBufferPointer(rebasing: v[lo..<hi])
    }

    /// Unstructured text: as it is, unless it may hold RFC 2047 encoded-words.
    private static func setText(_ name: String, _ text: UnsafeBufferPointer<UInt8>, into e: inout Event) {
        if text.count >= 8 && text.contains(Byte.question) {
            // (The test of `RFC2047.mayBeEncoded`, on the bytes in place.)
            e.set(name, RFC2047.decode(Array(text)[...]))
        } else {
            setString(name, text, into: &e)
        }
    }

    /// The text inside `<...>` (to the `>` or the end) if there is a `<`, else the whole
    /// value; trimmed; nil if empty.
    static func messageID(_ value: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        guard let base = value.baseAddress else { return nil }
        var lo = 0, hi = value.count
        if let open = memchr(base, Int32(Byte.less), hi) {
            lo = base.distance(to: open.assumingMemoryBound(to: UInt8.self)) + 1
            if let close = memchr(base + lo, Int32(Byte.greater), hi - lo) {
                hi = base.distance(to: close.assumingMemoryBound(to: UInt8.self))
            }
        }
        let id = trimmingSpaces(UnsafeBufferPointer(rebasing: value[lo..<hi]))
        return id.isEmpty ? nil : id
    }

    /// The JSON text is made in the state's scratch buffer, then copied in; a value that
    /// is the field's last one again takes that one's text.
    private static func setAddresses(_ name: String, _ field: Field, _ value: UnsafeBufferPointer<UInt8>,
                                     into e: inout Event, state: inout State) {
        let slot = field.rawValue - Field.from.rawValue
        if let json = state.recent.json(slot: slot, text: value) {
            if !json.isEmpty { e.set(name, encodedJSON: json) }
            return
        }
        if !state.scratch.isEmpty { state.scratch.removeAll(keepingCapacity: true) }
        // Most values are one plain address: no need for the full parser.
        if let address = singleAddress(value) {
            if !address.isEmpty {
                state.scratch.append(UInt8(ascii: "["))
                SMTPJSON.string(address, into: &state.scratch)
            }
        } else {
            addresses(value, into: &state.scratch)
        }
        if !state.scratch.isEmpty {
            state.scratch.append(UInt8(ascii: "]"))
            e.set(name, encodedJSON: state.scratch)
        }
        state.recent.store(slot: slot, text: value, json: state.scratch)
        if state.scratch.capacity > 8192 { state.scratch = [] }  // a long list's buffer is not kept
    }

    /// What publishing keeps from mail to mail (one per session): a buffer for the address
    /// fields' JSON text, and each address field's last value with its text. A session's
    /// mails mostly repeat their From and To: the value is compared (~30 instructions), not
    /// parsed and written again (~450).
    struct State {
        var scratch: [UInt8] = []
        /// The last value of each address field (From, To, Cc, Reply-To) and its JSON text
        /// (empty: no address).
        fileprivate var recent = RecentTexts(slots: 4, fromSecondValue: false)
    }

    /// `"`, `(`, `,`, `;`, `:` and `<`, as a bit mask.
    private static let singleAddressBytes: UInt64 = [Byte.quote, Byte.openParen, Byte.comma, Byte.semicolon,
                                                      Byte.colon, Byte.less].reduce(0) { $0 | 1 << UInt64($1) }

    /// What `addresses` finds in a value without quotes, comments, lists or groups and with
    /// at most one `<`: the text inside `<...>` (to its `>` or the end) if there is one, else
    /// the whole value; trimmed, possibly empty. nil for any other value.
    static func singleAddress(_ v: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        var open = -1
        for i in 0..<v.count {
            // The bytes that matter are all below 64: one test for the others.
            let b = v[i]
            guard b < 64, singleAddressBytes & (1 << UInt64(b)) != 0 else { continue }
            if b != Byte.less || open >= 0 { return nil }
            open = i
        }
        var lo = 0, hi = v.count
        if open >= 0 {
            lo = open + 1
            hi = lo
            while hi < v.count && v[hi] != Byte.greater { hi += 1 }
        }
        while lo < hi && Byte.isSpace(v[lo]) { lo += 1 }
        while hi > lo && Byte.isSpace(v[hi - 1]) { hi -= 1 }
        return UnsafeBufferPointer(rebasing: v[lo..<hi])
    }

    /// The addresses of an address list (RFC 5322 3.4): display names, comments and group
    /// names dropped, `<...>` taken when present. Written to `json` as the strings of a JSON
    /// array without its `]`; nothing when there are none.
    static func addresses(_ value: UnsafeBufferPointer<UInt8>, into json: inout [UInt8]) {
        // The bytes of the current address outside and inside `<...>` go to two scratch areas
        // on the stack (each at most the value's length), not to growing arrays.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * value.count + 2) { scratch in
            let bareBase = scratch.baseAddress!, angleBase = scratch.baseAddress! + value.count + 1
            var bare = 0
            var angle = -1   // < 0: no `<...>` in this address
            var inQuote = false, inAngle = false, escaped = false
            var commentDepth = 0

            func flush() {
                var p = angle >= 0 ? angleBase : bareBase
                var n = angle >= 0 ? angle : bare
                while n > 0 && Byte.isSpace(p[0]) { p += 1; n -= 1 }
                while n > 0 && Byte.isSpace(p[n - 1]) { n -= 1 }
                if n > 0 {
                    json.append(json.isEmpty ? UInt8(ascii: "[") : Byte.comma)
                    SMTPJSON.string(UnsafeBufferPointer(start: p, count: n), into: &json)
                }
                bare = 0
                angle = -1
            }
            @inline(__always) func keep(_ b: UInt8) {
                if inAngle { angleBase[angle] = b; angle += 1 } else { bareBase[bare] = b; bare += 1 }
            }

            for b in value {
                if escaped { escaped = false; keep(b); continue }
                if b == Byte.backslash && (inQuote || commentDepth > 0) { escaped = true; continue }
                if commentDepth > 0 {
                    if b == Byte.openParen { commentDepth += 1 } else if b == Byte.closeParen { commentDepth -= 1 }
                    continue
                }
                if inQuote {
                    if b == Byte.quote { inQuote = false }
                    keep(b)
                    continue
                }
                if inAngle {
                    if b == Byte.greater { inAngle = false } else { keep(b) }
                    continue
                }
                switch b {
                case Byte.quote: inQuote = true; keep(b)
                case Byte.openParen: commentDepth = 1
                case Byte.less: inAngle = true; angle = 0
                case Byte.comma, Byte.semicolon: flush()
                case Byte.colon: bare = 0; angle = -1  // "group name:"
                default: keep(b)
                }
            }
            flush()
        }
    }
}

/// RFC 2047 encoded-words (`=?charset?B|Q?text?=`) in unstructured header text.
enum RFC2047 {
    /// Whether `decode` may find an encoded-word (it returns the text as it is otherwise).
    static func mayBeEncoded(_ text: ArraySlice<UInt8>) -> Bool {
        text.count >= 8 && text.firstIndex(of: Byte.question) != nil
    }

    static func decode(_ text: ArraySlice<UInt8>) -> String {
        guard mayBeEncoded(text) else { return text.text }
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
