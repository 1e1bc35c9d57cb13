/// Writes `JSONValue`s as compact (NDJSON) or canonical pretty text.
///
/// Hand-written rather than `JSONEncoder`: it runs once per event on the hot path, and its
/// output (key order, number and string formatting) must never change under our feet.
public enum JSONWriter {
    public static func compact(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        write(value, into: &out, indent: nil, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Two-space indentation, `"key": value`, no trailing newline.
    public static func pretty(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        write(value, into: &out, indent: 2, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes `value` as UTF-8; `indent` spaces per level, or compact when nil.
    public static func write(_ value: JSONValue, into out: inout [UInt8], indent: Int?, level: Int) {
        switch value {
        case .null: out.append(contentsOf: nullBytes)
        case .bool(let b): out.append(contentsOf: b ? trueBytes : falseBytes)
        case .int(let i): writeInt(i, into: &out)
        case .double(let d):
            if d.isFinite {
                if d == d.rounded(), abs(d) < 1e15 { writeInt(Int64(d), into: &out) } else { out.append(contentsOf: String(d).utf8) }
            } else { out.append(contentsOf: nullBytes) }
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            if items.isEmpty { out.append(UInt8(ascii: "[")); out.append(UInt8(ascii: "]")); return }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, indent, level + 1)
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            if pairs.isEmpty { out.append(UInt8(ascii: "{")); out.append(UInt8(ascii: "}")); return }
            out.append(UInt8(ascii: "{"))
            for (i, (key, item)) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, indent, level + 1)
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(UInt8(ascii: " ")) }
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out.append(UInt8(ascii: "}"))
        }
    }

    static let nullBytes = Array("null".utf8)
    static let trueBytes = Array("true".utf8)
    static let falseBytes = Array("false".utf8)

    private static func newline(_ out: inout [UInt8], _ indent: Int?, _ level: Int) {
        guard let indent else { return }
        out.append(0x0A)
        for _ in 0..<(level * indent) { out.append(0x20) }
    }

    /// The decimal text of `value` (1 ..< 100,000,000: byte counts, durations, ports…) in one
    /// word, two digits at a time from `digitPairs` (half the divisions): the digits made last
    /// (the first ones written) end up in the lowest bytes, so the word's little-endian bytes
    /// are the text, stored in one go (no stack buffer and memcpy call) with `count` bytes kept.
    @inlinable @inline(__always)
    static func digitsWord(_ value: UInt64) -> (word: UInt64, count: Int) {
        let pairs = UnsafeRawPointer(digitPairs.utf8Start)
        var v = value, word: UInt64 = 0, count = 0
        while v >= 100 {
            let pair = pairs.loadUnaligned(fromByteOffset: Int(truncatingIfNeeded: v % 100) &* 2, as: UInt16.self)
            word = word << 16 | UInt64(UInt16(littleEndian: pair))
            v /= 100
            count &+= 2
        }
        if v >= 10 {
            let pair = pairs.loadUnaligned(fromByteOffset: Int(truncatingIfNeeded: v) &* 2, as: UInt16.self)
            word = word << 16 | UInt64(UInt16(littleEndian: pair))
            count &+= 2
        } else {
            word = word << 8 | (0x30 &+ v)
            count &+= 1
        }
        return (word.littleEndian, count)
    }

    /// `00` to `99`, back to back (a literal: its address a constant, no global to set up).
    @inlinable static var digitPairs: StaticString {
        """
        00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899
        """
    }

    /// Whether a JSON string holds `text` as it is, between its quotes: every byte ASCII from
    /// 0x20, none `"` or `\` (nor `:`, with `orColon`): what the escaper would copy unchanged.
    /// Eight bytes at a time, the tail as the last 8 overlapping, with the usual tests for a
    /// byte below a bound and for a zero byte (of the word XOR each special byte): each tells
    /// exactly whether some byte of the word qualifies. For plugins that write such text
    /// straight into a value (addresses, targets, phrases: nearly all of them are plain).
    @inlinable
    public static func isPlainText(_ text: UnsafeBufferPointer<UInt8>, orColon: Bool = false) -> Bool {
        guard let base = text.baseAddress else { return true }
        let n = text.count
        guard n >= 8 else {
            for u in text where u < 0x20 || u >= 0x80 || u == 0x22 || u == 0x5c || (orColon && u == 0x3a) { return false }
            return true
        }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZero(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        @inline(__always) func special(_ w: UInt64) -> UInt64 {
            (w & highs) | ((w &- ones &* 0x20) & ~w & highs) | hasZero(w ^ (ones &* 0x22)) | hasZero(w ^ (ones &* 0x5c))
                | (orColon ? hasZero(w ^ (ones &* 0x3a)) : 0)
        }
        let p = UnsafeRawPointer(base)
        var i = 0
        while i + 8 < n {
            if special(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) != 0 { return false }
            i += 8
        }
        return special(p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) == 0
    }

    /// Appends an integer as JSON (also for plugins that write a value's JSON themselves).
    public static func writeInt(_ value: Int64, into out: inout [UInt8]) { writeInt(value, to: &out) }

    @inline(__always)
    static func writeInt<Sink: JSONSink>(_ value: Int64, to out: inout Sink) {
        if value >= 0 && value < 10 { out.put(UInt8(ascii: "0") &+ UInt8(value)); return }
        if value > 0 && value < 100_000_000 {
            let (word, count) = digitsWord(UInt64(value))
            out.putWord(word, count: count)
            return
        }
        var magnitude = value.magnitude
        // Digits from the right end of a stack buffer, then one append.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: 20 digits and a sign
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            while magnitude > 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            }
            if value < 0 { start -= 1; buffer[start] = UInt8(ascii: "-") }
            out.putRaw(UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends a JSON string: quotes, escapes; non-ASCII UTF-8 is copied as is.
    public static func writeString<S: StringProtocol>(_ s: S, into out: inout [UInt8]) { writeString(s, to: &out) }

    static func writeString<S: StringProtocol, Sink: JSONSink>(_ s: S, to out: inout Sink) {
        // Native strings are contiguous UTF-8: escape straight from their bytes.
        if s.utf8.withContiguousStorageIfAvailable({ writeString($0, to: &out) }) == nil {
            Array(s.utf8).withUnsafeBufferPointer { writeString($0, to: &out) }
        }
    }

    /// Writes bytes that should be UTF-8 as a JSON string; invalid sequences become U+FFFD
    /// (what `String(decoding:as:)` makes of them), so the output is always valid UTF-8.
    /// ASCII (the usual case) is escaped in one pass; anything else is repaired first.
    public static func writeUTF8String(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        writeUTF8String(bytes, to: &out)
    }

    static func writeUTF8String<Sink: JSONSink>(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout Sink) {
        let start = out.writtenCount
        if writeEscaped(bytes, into: &out, asciiOnly: true) { return }
        out.truncate(to: start)
        writeString(String(decoding: bytes, as: UTF8.self), to: &out)
    }

    /// Writes valid UTF-8 `bytes` as a JSON string.
    public static func writeString(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        writeString(bytes, to: &out)
    }

    static func writeString<Sink: JSONSink>(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout Sink) {
        _ = writeEscaped(bytes, into: &out, asciiOnly: false)
    }

    /// Quotes and escapes: `"`, `\`, \n, \r and \t by a backslash, other bytes below 0x20
    /// as \u00XX (lower-case hex), the rest as they are. Runs of bytes that need no escape
    /// (nearly all of them) are appended in one copy. With `asciiOnly`, stops at the first
    /// byte above 0x7F and returns false (the caller removes what was written).
    private static func writeEscaped<Sink: JSONSink>(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout Sink,
                                                     asciiOnly: Bool) -> Bool {
        out.put(UInt8(ascii: "\""))
        var run = 0, i = 0
        let n = bytes.count
        while i < n {
            let u = bytes[i]
            if u >= 0x20 && u != UInt8(ascii: "\"") && u != UInt8(ascii: "\\") && (u < 0x80 || !asciiOnly) {
                i += 1
                continue
            }
            if u >= 0x80 { return false }
            if run < i { out.put(UnsafeBufferPointer(rebasing: bytes[run..<i])) }
            switch u {
            case UInt8(ascii: "\""): out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "\\"))
            case 0x0A: out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "n"))
            case 0x0D: out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "r"))
            case 0x09: out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "t"))
            default:
                out.put(UInt8(ascii: "\\")); out.put(UInt8(ascii: "u"))
                out.put(UInt8(ascii: "0")); out.put(UInt8(ascii: "0"))
                out.put(hexDigits[Int(u >> 4)]); out.put(hexDigits[Int(u & 0xF)])
            }
            i += 1
            run = i
        }
        if run < n { out.put(UnsafeBufferPointer(rebasing: bytes[run..<n])) }
        out.put(UInt8(ascii: "\""))
        return true
    }
}

/// Parses JSON text into `JSONValue` (goldens and tests read JSON back).
public struct JSONParser {
    public struct Failure: Error, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { "invalid JSON at byte \(offset): \(message)" }
    }

    private let bytes: [UInt8]
    private var i = 0

    public static func parse(_ text: String) throws -> JSONValue {
        try parse(bytes: Array(text.utf8))
    }

    /// Parses UTF-8 JSON text given as bytes.
    public static func parse(bytes: [UInt8]) throws -> JSONValue {
        var p = JSONParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        guard p.i == p.bytes.count else { throw Failure(offset: p.i, message: "trailing characters") }
        return v
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0a || bytes[i] == 0x0d || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: String) throws {
        for b in literal.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw Failure(offset: i, message: "expected \(literal)") }
            i += 1
        }
    }

    private mutating func value() throws -> JSONValue {
        guard i < bytes.count else { throw Failure(offset: i, message: "unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "["):
            i += 1; skipSpace()
            var items: [JSONValue] = []
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace(); items.append(try value()); skipSpace()
                guard i < bytes.count else { throw Failure(offset: i, message: "unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw Failure(offset: i, message: "expected , or ]")
            }
        case UInt8(ascii: "{"):
            i += 1; skipSpace()
            var pairs: [(String, JSONValue)] = []
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw Failure(offset: i, message: "expected key") }
                let key = try string()
                skipSpace(); try expect(":"); skipSpace()
                pairs.append((key, try value()))
                skipSpace()
                guard i < bytes.count else { throw Failure(offset: i, message: "unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    return .object(pairs.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) })
                }
                throw Failure(offset: i, message: "expected , or }")
            }
        default:
            return try number()
        }
    }

    private mutating func string() throws -> String {
        i += 1
        var out: [UInt8] = []
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if b == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count, var code = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16)
                    else { throw Failure(offset: i, message: "bad \\u escape") }
                    i += 4
                    if (0xD800..<0xDC00).contains(code), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"),
                       bytes[i + 1] == UInt8(ascii: "u"),
                       let low = UInt32(String(decoding: bytes[i + 2..<i + 6], as: UTF8.self), radix: 16),
                       (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                    out.append(contentsOf: Array(String(Unicode.Scalar(code) ?? "\u{FFFD}").utf8))
                default: out.append(e)
                }
            } else {
                out.append(b); i += 1
            }
        }
        throw Failure(offset: i, message: "unterminated string")
    }

    private mutating func number() throws -> JSONValue {
        let start = i
        var isDouble = false
        while i < bytes.count {
            let b = bytes[i]
            if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") { i += 1; continue }
            if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { isDouble = true; i += 1; continue }
            break
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if !isDouble, let v = Int64(text) { return .int(v) }
        if let d = Double(text) { return .double(d) }
        throw Failure(offset: start, message: "bad value")
    }
}
