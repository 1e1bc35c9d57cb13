#if canImport(Glibc)
import Glibc  // memcmp
#elseif canImport(Darwin)
import Darwin
#endif

/// DNS messages (RFC 1035 and successors): header, questions and resource records, parsed
/// from untrusted bytes. Every read is bounds-checked; a message that ends early or breaks
/// a rule keeps what was parsed before the fault and says why in `fault`.

/// Why parsing stopped early.
struct DNSFault: Error, Equatable, CustomStringConvertible {
    enum Kind: Equatable {
        /// The bytes ended before what the message announced (counts, lengths).
        case truncated
        /// A rule was broken: pointer loop, forward pointer, name too long, bad RDATA.
        case malformed
    }
    let kind: Kind
    let detail: String

    static func truncated(_ detail: String) -> DNSFault { DNSFault(kind: .truncated, detail: detail) }
    static func malformed(_ detail: String) -> DNSFault { DNSFault(kind: .malformed, detail: detail) }

    /// The note published with the event.
    var description: String { (kind == .truncated ? "truncated message: " : "malformed message: ") + detail }
}

/// Big-endian reads over one whole message (names may point anywhere before them).
struct DNSReader {
    let bytes: [UInt8]
    var position: Int
    /// Reads stop here (the end of the RDATA being decoded); name pointers may reach before it.
    let end: Int

    init(_ bytes: [UInt8], position: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.position = position
        self.end = min(end ?? bytes.count, bytes.count)
    }

    var remaining: Int { end - position }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 {
        guard position < end else { throw DNSFault.truncated("\(what()) missing at byte \(position)") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 {
        guard remaining >= 2 else { throw DNSFault.truncated("\(what()) missing at byte \(position)") }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 {
        guard remaining >= 4 else { throw DNSFault.truncated("\(what()) missing at byte \(position)") }
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16
            | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else {
            throw DNSFault.truncated("\(what()) needs \(count) bytes at byte \(position), \(max(0, remaining)) left")
        }
        defer { position += count }
        return bytes[position..<position + count]
    }

    /// A domain name with compression. Pointers must point strictly before the label that
    /// holds them (so decompression always terminates), at most `maxPointers` of them, and
    /// the name is at most 255 octets in wire form (RFC 1035 §3.1).
    ///
    /// Only checks the name: the result points at it in the message (no copy of its labels),
    /// and printing it walks the same, now validated, labels and pointers again.
    mutating func name() throws -> DNSName {
        let start = position
        // Over the bytes' buffer: the array's own bounds checks cost ~30% of the walk, which
        // checks every offset against `end` or the message's length itself.
        position = try bytes.withUnsafeBufferPointer { try DNSReader.checkName(in: $0, at: start, end: end) }
        return DNSName(message: bytes, start: start)
    }

    /// Where `checkName` finds the name at `position` ends, when it finds no fault; nil when it
    /// would (it then says what the fault is), and for any name with a pointer unless
    /// `followingPointer`. The same walk without errors to build: about half the instructions.
    @inline(__always)
    static func quickNameEnd(in bytes: UnsafeBufferPointer<UInt8>, at position: Int, end: Int,
                             followingPointer: Bool = false, name12Length: Int = 0) -> Int? {
        var cursor = position
        var bound = end
        var wireLength = 1
        var lowestTarget = position
        var pointers = 0
        var after = 0   // past the first pointer; 0 before it
        while cursor < bound {
            let length = Int(bytes[cursor])
            if length == 0 { return after > 0 ? after : cursor &+ 1 }
            if length < 0x40 {
                cursor &+= 1 &+ length
                wireLength &+= 1 &+ length
                guard cursor <= bound && wireLength <= 255 else { return nil }
                continue
            }
            // As `checkName`: strictly backwards from every pointer followed (so from the
            // cursor), 64 at most, then through the whole message.
            guard followingPointer, length >= 0xC0, cursor &+ 1 < bound else { return nil }
            let target = (length & 0x3F) << 8 | Int(bytes[cursor &+ 1])
            pointers &+= 1
            // (A pointer into the ID, bytes 0–1, is left to `checkName`: `read` notes then that
            // a name may read the ID, see `Parsed.mayReadID`.)
            guard target < lowestTarget, target >= 2, pointers <= 64 else { return nil }
            if after == 0 { after = cursor &+ 2 }
            if target == 12 && name12Length > 0 && wireLength &+ name12Length &- 1 <= 255 { return after }
            lowestTarget = target
            cursor = target
            bound = bytes.count
        }
        return nil
    }

    /// Checks the name at `position` of `bytes` as `name()` describes; returns where the
    /// name ends (after its first pointer, if any).
    ///
    /// `name12Length`: when not 0, the name at offset 12 (the first question's) is checked,
    /// has no pointer and is this long: a pointer to it ends the walk (its labels are not
    /// walked again, ~16 instructions a label), as long as the whole name stays within 255
    /// octets (else the walk goes on, to the same fault).
    static func checkName(in bytes: UnsafeBufferPointer<UInt8>, at position: Int, end: Int,
                          name12Length: Int = 0) throws -> Int {
        var position = position
        var wireLength = 1
        var cursor = position
        var jumped = false
        var pointers = 0
        var lowestTarget = position
        while true {
            let bound = jumped ? bytes.count : end
            guard cursor < bound else { throw DNSFault.truncated("name cut short at byte \(cursor)") }
            let length = Int(bytes[cursor])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    if !jumped { position = cursor + 1 }
                    return position
                }
                guard cursor + 1 + length <= bound else { throw DNSFault.truncated("label cut short at byte \(cursor)") }
                wireLength += length + 1
                guard wireLength <= 255 else { throw DNSFault.malformed("name longer than 255 octets at byte \(position)") }
                cursor += 1 + length
            case 0xC0:
                guard cursor + 1 < bound else { throw DNSFault.truncated("name pointer cut short at byte \(cursor)") }
                let target = (length & 0x3F) << 8 | Int(bytes[cursor + 1])
                // Strictly backwards from every pointer followed so far: no loops, no forward references.
                guard target < lowestTarget, target < cursor else {
                    throw DNSFault.malformed("name pointer at byte \(cursor) to \(target) does not point backwards (loop)")
                }
                pointers += 1
                guard pointers <= 64 else { throw DNSFault.malformed("more than 64 name pointers at byte \(position)") }
                if !jumped { position = cursor + 2 }
                if target == 12 && name12Length > 0 && wireLength + name12Length - 1 <= 255 { return position }
                jumped = true
                lowestTarget = target
                cursor = target
            default:
                throw DNSFault.malformed("reserved label type 0x\(String(length & 0xC0, radix: 16)) at byte \(cursor)")
            }
        }
    }
}

/// A domain name: where it starts in its (already validated) message. Holding the message
/// costs a reference count, not an allocation per label; the labels are read when the name
/// is printed, which most names are exactly once.
struct DNSName: Equatable, Hashable {
    let message: [UInt8]
    let start: Int

    static let root = DNSName(message: [0], start: 0)

    /// Calls `body` with the range of each label in `message`, in order (pointers followed).
    @inline(__always)
    func forEachLabel(_ body: (Range<Int>) -> Void) {
        var i = start
        while true {
            let length = Int(message[i])
            if length & 0xC0 == 0xC0 {
                i = (length & 0x3F) << 8 | Int(message[i + 1])
            } else if length == 0 {
                return
            } else {
                body(i + 1 ..< i + 1 + length)
                i += 1 + length
            }
        }
    }

    /// The name's length in the message when it has no pointer; nil when it has one.
    var uncompressedLength: Int? {
        var i = start
        while message[i] != 0 {
            if message[i] & 0xC0 != 0 { return nil }
            i += 1 + Int(message[i])
        }
        return i + 1 - start
    }

    /// The name has no pointer and `other` holds the same bytes where the name is in `message`.
    func isStored(identicallyIn other: [UInt8]) -> Bool {
        guard let length = uncompressedLength else { return false }
        return isStored(identicallyIn: other, length: length)
    }

    /// `isStored(identicallyIn:)` of a name without pointer whose length is `length` (as
    /// `uncompressedLength` found it: not walked again).
    func isStored(identicallyIn other: [UInt8], length: Int) -> Bool {
        DNSName.sameBytes(message, other, at: start, length: length)
    }

    /// `a` and `b` hold the same `length` bytes at `start` (`a` holds them).
    static func sameBytes(_ a: [UInt8], _ b: [UInt8], at start: Int, length: Int) -> Bool {
        guard b.count >= start + length else { return false }
        return a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in memcmp(a.baseAddress! + start, b.baseAddress! + start, length) == 0 }
        }
    }

    /// Where the (checked) name at `start` of the message `m` ends: after its zero length or
    /// its first pointer.
    static func end(in m: UnsafeBufferPointer<UInt8>, at start: Int) -> Int {
        var i = start
        while m[i] != 0 && m[i] & 0xC0 == 0 { i += 1 + Int(m[i]) }
        return i + (m[i] == 0 ? 1 : 2)
    }

    /// The name is only a pointer to `offset`.
    func isPointer(to offset: Int) -> Bool {
        message[start] == 0xC0 | UInt8(offset >> 8) && message[start + 1] == UInt8(truncatingIfNeeded: offset)
    }

    var isRoot: Bool {
        var root = true
        forEachLabel { _ in root = false }
        return root
    }

    /// The labels' bytes (tests, comparisons; printing does not need them).
    var labels: [[UInt8]] {
        var out: [[UInt8]] = []
        forEachLabel { out.append(Array(message[$0])) }
        return out
    }

    static func == (a: DNSName, b: DNSName) -> Bool { a.labels == b.labels }
    func hash(into hasher: inout Hasher) { hasher.combine(labels) }

    /// Presentation form with escapes for odd bytes, as dig prints it, without the final dot
    /// (`"."` for the root).
    var text: String {
        var out: [UInt8] = []
        write(into: &out, json: false)
        return String(decoding: out, as: UTF8.self)
    }

    /// As dig prints it: with the final dot.
    var absolute: String { isRoot ? "." : text + "." }

    /// Appends `text`; with `json`, escaped for the inside of a JSON string as the core's
    /// JSONWriter escapes (the text is printable ASCII: only `\` and `"` need it).
    func write<Out: DNSTextOutput>(into out: inout Out, json: Bool) {
        message.withUnsafeBufferPointer { DNSName.write($0, at: start, into: &out, json: json) }
    }

    /// Appends the text of the (checked) name at `start` of the message `m`, as `write`.
    /// `text12`: the text of the name at offset 12 (not the root), as this writes it, for the
    /// names that end with a pointer to it (most names of a response): copied, not walked again.
    static func write<Out: DNSTextOutput>(_ m: UnsafeBufferPointer<UInt8>, at start: Int, into out: inout Out, json: Bool,
                                          text12: UnsafeBufferPointer<UInt8>? = nil) {
        var i = start
        var first = true
        while true {
            // A run of labels stored one after another, up to a pointer or the end.
            let run = i
            var notPlain: UInt8 = 0
            while m[i] != 0 && m[i] & 0xC0 == 0 {
                let end = i &+ 1 &+ Int(m[i])
                // Every byte looked at, no early exit and no branch: a name is short.
                var k = i &+ 1
                while k < end {
                    notPlain |= DNSName.notPlainBit(m[k])
                    k &+= 1
                }
                i = end
            }
            if i > run && notPlain == 0 {
                // Nearly every name is letters, digits and hyphens: the run is copied whole,
                // then its length bytes become dots (the name's first one is left out).
                let from = first ? run + 1 : run
                let base = out.count - from
                out.append(UnsafeBufferPointer(rebasing: m[from..<i]))
                var j = run
                while j < i {
                    if j >= from { out[base + j] = UInt8(ascii: ".") }
                    j += 1 + Int(m[j])
                }
                first = false
            } else {
                var j = run
                while j < i {
                    if !first { out.append(UInt8(ascii: ".")) }
                    first = false
                    DNSName.escape(m[(j + 1)..<(j + 1 + Int(m[j]))], into: &out, json: json)
                    j += 1 + Int(m[j])
                }
            }
            if m[i] == 0 { break }
            i = (Int(m[i]) & 0x3F) << 8 | Int(m[i + 1])
            if i >= 12, let text12, let from = suffixStart(of: text12, in: m, at: i) {
                if !first { out.append(UInt8(ascii: ".")) }
                out.append(UnsafeBufferPointer(rebasing: text12[from...]))
                return
            }
        }
        if first { out.append(UInt8(ascii: ".")) }   // the root
    }

    /// Where in `text12` (the text of the name at offset 12 of `m`) the text of the name at
    /// `target` starts, when that is one of its labels (a pointer to a suffix of the question's
    /// name, e.g. `example.test` in `www.example.test`) and the text has no escapes (each
    /// length byte is one dot, so a label's offset gives its place in the text).
    @inline(__always)
    static func suffixStart(of text12: UnsafeBufferPointer<UInt8>, in m: UnsafeBufferPointer<UInt8>, at target: Int) -> Int? {
        if target == 12 { return 0 }
        var j = 12
        var from: Int?
        while m[j] != 0 {
            if j == target { from = j - 12 }
            j += 1 + Int(m[j])
        }
        // (The name at 12 has no pointer: `text12` is only given then.)
        return text12.count == j - 13 ? from : nil
    }

    /// Printed as it is in a name: printable ASCII other than the special characters below.
    static func isPlain(_ b: UInt8) -> Bool { notPlainBit(b) == 0 }

    /// 0 when `b` is printed as it is in a name, else 1 (computed from `isSpecial`; a test
    /// checks it). One load a byte, where two 64-bit masks took ~12 instructions.
    @inline(__always) static func notPlainBit(_ b: UInt8) -> UInt8 { DNSByteClasses.bit(b, of: .notPlainInName) }

    @inline(__always) static func isSpecial(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: ";"), UInt8(ascii: "@"), UInt8(ascii: "$"):
            return true
        default:
            return false
        }
    }

    /// Appends the label as dig prints it: special characters behind a backslash, bytes
    /// outside printable ASCII as `\DDD`. With `json`, each `\` and `"` written is escaped
    /// again for a JSON string.
    static func escape<Label: Collection, Out: DNSTextOutput>(_ label: Label, into out: inout Out, json: Bool = false)
        where Label.Element == UInt8 {
        let backslash = UInt8(ascii: "\\")
        for b in label {
            if isSpecial(b) {
                out.append(backslash)
                if json { out.append(backslash) }
                if json && (b == backslash || b == UInt8(ascii: "\"")) { out.append(backslash) }
                out.append(b)
            } else if b > 0x20 && b < 0x7F {
                out.append(b)
            } else {
                out.append(backslash)
                if json { out.append(backslash) }
                out.append(0x30 + b / 100)
                out.append(0x30 + b / 10 % 10)
                out.append(0x30 + b % 10)
            }
        }
    }

    static func decimalEscape(_ b: UInt8) -> String {
        let d = String(b)
        return "\\" + String(repeating: "0", count: 3 - d.count) + d
    }
}

/// The fixed 12-byte header.
struct DNSHeader: Equatable {
    var id: UInt16
    var flags: UInt16
    var questionCount: UInt16
    var answerCount: UInt16
    var authorityCount: UInt16
    var additionalCount: UInt16

    var isResponse: Bool { flags & 0x8000 != 0 }
    var opcode: Int { Int(flags >> 11 & 0xF) }
    var authoritative: Bool { flags & 0x0400 != 0 }
    var truncated: Bool { flags & 0x0200 != 0 }
    var recursionDesired: Bool { flags & 0x0100 != 0 }
    var recursionAvailable: Bool { flags & 0x0080 != 0 }
    var zero: Bool { flags & 0x0040 != 0 }
    var authenticData: Bool { flags & 0x0020 != 0 }
    var checkingDisabled: Bool { flags & 0x0010 != 0 }
    var rcode: Int { Int(flags & 0xF) }
}

struct DNSQuestion: Equatable {
    var name: DNSName
    var type: UInt16
    var qclass: UInt16
}

/// A question of a message, by the offset of its name (see `DNSMessage.firstQuestionPlace`).
struct DNSQuestionPlace {
    var start: Int
    var type: UInt16
    var qclass: UInt16
    /// The name's length when it has no pointer.
    var nameLength: Int?
}

/// A resource record; `data` is its RDATA decoded for presentation.
struct DNSRecord: Equatable {
    var name: DNSName
    var type: UInt16
    var rclass: UInt16
    var ttl: UInt32
    /// The RDATA, a slice of the message (its indices are message offsets).
    var rdata: ArraySlice<UInt8>
    var data: RData
}

/// EDNS(0) from the OPT pseudo-record (RFC 6891).
struct EDNS: Equatable {
    var udpSize: UInt16
    var extendedRcode: UInt8
    var version: UInt8
    var dnssecOK: Bool
    var zFlags: UInt16
    var options: [EDNSOption]
}

struct EDNSOption: Equatable {
    var code: UInt16
    var data: [UInt8]
}

/// Where a section's records are in the message: the first one's offset and how many were
/// read whole.
/// (16 bits each: `read` takes no message longer than 65,535 bytes, the most a DNS message
/// can be, over UDP or TCP. A parsed message is copied a few times, and four sections of two
/// words each were half of it.)
struct DNSSection: Equatable {
    private var start16: UInt16
    private var count16: UInt16

    init(start: Int = 0, count: Int = 0) {
        start16 = UInt16(start)
        count16 = UInt16(count)
    }

    var start: Int {
        get { Int(start16) }
        set { start16 = UInt16(newValue) }
    }

    var count: Int {
        get { Int(count16) }
        set { count16 = UInt16(newValue) }
    }
}

/// A parsed message, a value: a message seen on the wire is held in place (`DNSSeen`), on the
/// stack for a response (no object per datagram) or inside the object of a waiting query.
/// Sections hold what was read before a fault, if any.
///
/// Parsing checks every record but keeps only where each section starts: the records are
/// read again from `bytes` when the event is written (`RecordSpan`, `RDataView`), which costs less
/// than building, copying and freeing an array of records per message.
struct DNSMessage {
    /// The whole message.
    let bytes: [UInt8]
    /// The rest, in one piece (given whole to `init`, not copied field by field).
    let parsed: Parsed

    /// What `read` finds in a message.
    struct Parsed {
        var header: DNSHeader
        var sections: Sections
        var edns: EDNS?
        var faults: [DNSFault]
        var dataDecodes: Bool
        /// A name was checked the careful way (`checkName`, `DNSReader`), which may have
        /// followed a pointer into the ID (bytes 0–1): what was read may then depend on the ID.
        /// False when every name was checked the quick way, which follows no such pointer
        /// (`DNSRenderCache` stores the values of only such messages).
        var mayReadID = false

        /// Nothing: a payload shorter than a header (see `DNSSeen`).
        static let none = Parsed(header: DNSHeader(id: 0, flags: 0, questionCount: 0, answerCount: 0, authorityCount: 0,
                                                   additionalCount: 0),
                                 sections: (DNSSection(), DNSSection(), DNSSection(), DNSSection()), edns: nil, faults: [],
                                 dataDecodes: true)
    }

    typealias Sections = (question: DNSSection, answer: DNSSection, authority: DNSSection, additional: DNSSection)

    init(bytes: [UInt8], parsed: consuming Parsed) {
        self.bytes = bytes
        self.parsed = parsed
    }

    enum HeaderError: Error { case tooShort(Int) }

    /// Parses `bytes`; throws only when there is no complete header.
    static func parse(_ bytes: [UInt8]) throws -> DNSMessage {
        guard bytes.count >= 12 else { throw HeaderError.tooShort(bytes.count) }
        return DNSMessage(bytes: bytes, parsed: try read(bytes))
    }

    /// Reads the message `bytes`, at least 12 of them (a header). (Faults are noted, not
    /// thrown: the readers throw nothing else.)
    static func read(_ bytes: [UInt8]) throws -> Parsed {
        precondition(bytes.count >= 12, "a DNS header needs 12 bytes")
        // Read from the buffer, without the array's bounds check at each byte (~0.5 M
        // instructions on the bench capture).
        let header = bytes.withUnsafeBufferPointer { b in
            func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
            return DNSHeader(id: u16(0), flags: u16(2), questionCount: u16(4), answerCount: u16(6),
                             authorityCount: u16(8), additionalCount: u16(10))
        }
        // Longer than any DNS message (the UDP and TCP layers give none): not read, its
        // offsets would not fit a `DNSSection`.
        guard bytes.count <= 65535 else {
            return Parsed(header: header, sections: (DNSSection(start: 12), DNSSection(), DNSSection(), DNSSection()),
                          edns: nil, faults: [.malformed("\(bytes.count) bytes, longer than a DNS message")],
                          dataDecodes: true)
        }
        var sections: Sections = (DNSSection(start: 12), DNSSection(), DNSSection(), DNSSection())
        var edns: EDNS?
        var faults: [DNSFault] = []
        var dataDecodes = true
        var careful = false
        var position = 12
        do {
            try bytes.withUnsafeBufferPointer { b in
                // The first question's name, checked, without a pointer: what most names point to.
                var name12 = 0   // its length; 0: it has a pointer, or there is no question
                for q in 0..<header.questionCount {
                    var plainLength = 0
                    position = try question(b, at: position, bytes, plainNameLength: &plainLength, &careful)
                    if q == 0 { name12 = plainLength }
                    sections.question.count += 1
                }
                sections.answer.start = position
                for _ in 0..<header.answerCount {
                    position = try check(b, at: position, bytes, name12, &faults, &dataDecodes, &careful).end
                    sections.answer.count += 1
                }
                sections.authority.start = position
                for _ in 0..<header.authorityCount {
                    position = try check(b, at: position, bytes, name12, &faults, &dataDecodes, &careful).end
                    sections.authority.count += 1
                }
                sections.additional.start = position
                for _ in 0..<header.additionalCount {
                    let rr = try check(b, at: position, bytes, name12, &faults, &dataDecodes, &careful)
                    position = rr.end
                    sections.additional.count += 1
                    if rr.type == DNSType.OPT {
                        if edns != nil { faults.append(.malformed("more than one OPT record")); continue }
                        edns = readEDNS(rr, b, bytes, &faults)
                    }
                }
            }
            if position < bytes.count { faults.append(.malformed("\(bytes.count - position) bytes after the last record")) }
        } catch let fault as DNSFault {
            faults.append(fault)
        }
        return Parsed(header: header, sections: sections, edns: edns, faults: faults, dataDecodes: dataDecodes,
                      mayReadID: careful)
    }

    // Parsing checks each question and record where it is, in the message's buffer: reading
    // them as values (`DNSReader`, `DNSRecord`, `RData`) cost ~650 instructions a record, in
    // retains and releases of the message's array and in building the values. What fails the
    // quick check is read again the careful way, which says exactly what is wrong.

    /// Checks the question at `p`; returns where it ends. `plainNameLength`: the length of its
    /// name when it has no pointer (else left alone).
    private static func question(_ b: UnsafeBufferPointer<UInt8>, at p: Int, _ bytes: [UInt8],
                                 plainNameLength: inout Int, _ careful: inout Bool) throws -> Int {
        // (The quick check only passes names without a pointer.)
        if let name = DNSReader.quickNameEnd(in: b, at: p, end: b.count), name + 4 <= b.count {
            plainNameLength = name - p
            return name + 4
        }
        careful = true
        if let name = try? DNSReader.checkName(in: b, at: p, end: b.count), name + 4 <= b.count { return name + 4 }
        var r = DNSReader(bytes, position: p)
        _ = try question(&r)
        return r.position
    }

    /// Where a record is: its owner name at `owner`, its fixed fields (type, class, TTL,
    /// RDLENGTH) at `fixed`, its RDATA at `fixed + 10 ..< end`.
    struct RecordSpan {
        var owner: Int
        var fixed: Int
        var end: Int
        var type: UInt16

        /// The record at `p` of a message that `parse` checked.
        init(checkedAt p: Int, in b: UnsafeBufferPointer<UInt8>) {
            owner = p
            fixed = DNSName.end(in: b, at: p)
            end = fixed + 10 + (Int(b[fixed + 8]) << 8 | Int(b[fixed + 9]))
            type = UInt16(b[fixed]) << 8 | UInt16(b[fixed + 1])
        }

        init(owner: Int, fixed: Int, end: Int, type: UInt16) {
            self.owner = owner
            self.fixed = fixed
            self.end = end
            self.type = type
        }

        var rdata: Range<Int> { fixed + 10 ..< end }
        func rclass(in b: UnsafeBufferPointer<UInt8>) -> UInt16 { UInt16(b[fixed + 2]) << 8 | UInt16(b[fixed + 3]) }
        func ttl(in b: UnsafeBufferPointer<UInt8>) -> UInt32 {
            UInt32(b[fixed + 4]) << 24 | UInt32(b[fixed + 5]) << 16 | UInt32(b[fixed + 6]) << 8 | UInt32(b[fixed + 7])
        }
    }

    /// Checks the record at `p` of `bytes` (noting in `faults` RDATA that cannot be
    /// decoded, and clearing `dataDecodes`); returns where it is.
    private static func check(_ b: UnsafeBufferPointer<UInt8>, at p: Int, _ bytes: [UInt8], _ name12: Int,
                              _ faults: inout [DNSFault], _ dataDecodes: inout Bool,
                              _ careful: inout Bool) throws -> RecordSpan {
        if let span = quickCheck(b, at: p, name12: name12, &careful) { return span }
        careful = true
        var r = DNSReader(bytes, position: p)
        var badData: DNSFault?
        let rr = try record(&r, badData: &badData)
        if let badData {
            dataDecodes = false
            faults.append(.malformed("bad RDATA of \(DNSType.name(rr.type)) \(rr.name.text): \(badData.detail)"))
        }
        return RecordSpan(owner: p, fixed: r.position - rr.rdata.count - 10, end: r.position, type: rr.type)
    }

    /// The record at `p` when it is whole and `record` would decode its RDATA without fault;
    /// nil when it is not, or when its type is not one checked here.
    /// `name12`: when not 0, the name at offset 12 (the first question's) is checked, has no
    /// pointer and is this long.
    private static func quickCheck(_ b: UnsafeBufferPointer<UInt8>, at p: Int, name12: Int,
                                   _ careful: inout Bool) -> RecordSpan? {
        /// Where the name at `i` ends, reading no further than `end` but through pointers
        /// (nil: not a valid name). Most owner names are only a pointer to the question's
        /// name: checked already, not walked again (what `checkName` would find).
        @inline(__always) func name(at i: Int, end: Int) -> Int? {
            if name12 > 0, i > 12, i + 1 < end, b[i] == 0xC0, b[i + 1] == 12 { return i + 2 }
            if let quick = DNSReader.quickNameEnd(in: b, at: i, end: end, followingPointer: true, name12Length: name12) {
                return quick
            }
            careful = true
            return try? DNSReader.checkName(in: b, at: i, end: end, name12Length: name12)
        }
        guard let fixed = name(at: p, end: b.count), fixed + 10 <= b.count else { return nil }
        let type = UInt16(b[fixed]) << 8 | UInt16(b[fixed + 1])
        let start = fixed + 10, end = start + (Int(b[fixed + 8]) << 8 | Int(b[fixed + 9]))
        guard end <= b.count else { return nil }
        /// Where the name at `i` of the RDATA ends (nil: not a valid name inside it).
        @inline(__always) func name(at i: Int) -> Int? { name(at: i, end: end) }
        let valid: Bool
        switch type {
        case DNSType.A: valid = end - start == 4
        case DNSType.AAAA: valid = end - start == 16
        case DNSType.NS, DNSType.CNAME, DNSType.PTR, DNSType.DNAME: valid = name(at: start) == end
        case DNSType.MX: valid = name(at: start + 2) == end
        case DNSType.SRV: valid = name(at: start + 6) == end
        case DNSType.SOA: valid = name(at: start).flatMap { name(at: $0) }.map { $0 + 20 == end } ?? false
        case DNSType.TXT, DNSType.HINFO, 99:
            var i = start, count = 0
            while i < end && i + 1 + Int(b[i]) <= end {
                i += 1 + Int(b[i])
                count += 1
            }
            valid = i == end && (type != DNSType.HINFO || count == 2)
        case DNSType.OPT: valid = true   // not decoded: kept as data
        default: return nil
        }
        return valid ? RecordSpan(owner: p, fixed: fixed, end: end, type: type) : nil
    }

    /// EDNS from the OPT record `rr` of `bytes` (noting in `faults` what is wrong with it).
    private static func readEDNS(_ rr: RecordSpan, _ b: UnsafeBufferPointer<UInt8>, _ bytes: [UInt8],
                                 _ faults: inout [DNSFault]) -> EDNS {
        if !DNSName(message: bytes, start: rr.owner).isRoot { faults.append(.malformed("OPT record not owned by the root")) }
        let f = rr.fixed
        let rclass = UInt16(b[f + 2]) << 8 | UInt16(b[f + 3])
        let ttl = UInt32(b[f + 4]) << 24 | UInt32(b[f + 5]) << 16 | UInt32(b[f + 6]) << 8 | UInt32(b[f + 7])
        return EDNS(udpSize: rclass, extendedRcode: UInt8(ttl >> 24), version: UInt8(ttl >> 16 & 0xFF),
                    dnssecOK: ttl & 0x8000 != 0, zFlags: UInt16(ttl & 0x7FFF),
                    options: parseOptions(bytes[(f + 10)..<rr.end], &faults))
    }

    fileprivate static func question(_ r: inout DNSReader) throws -> DNSQuestion {
        let name = try r.name()
        return DNSQuestion(name: name, type: try r.u16("question type"), qclass: try r.u16("question class"))
    }

    /// Reads the record at `r`'s position; RDATA that cannot be decoded is kept as unknown
    /// data, and `badData` says why.
    fileprivate static func record(_ r: inout DNSReader, badData: inout DNSFault?) throws -> DNSRecord {
        let name = try r.name()
        let type = try r.u16("record type"), rclass = try r.u16("record class")
        let ttl = try r.u32("record TTL")
        let length = Int(try r.u16("RDLENGTH"))
        let start = r.position
        let rdata = try r.take(length, "RDATA of \(DNSType.name(type))")
        var data: RData
        do {
            data = try RData.decode(type: type, bytes: r.bytes, start: start, end: start + length)
        } catch let fault as DNSFault {
            badData = fault
            data = .unknown(rdata)
        }
        return DNSRecord(name: name, type: type, rclass: rclass, ttl: ttl, rdata: rdata, data: data)
    }

    private static func parseOptions(_ rdata: ArraySlice<UInt8>, _ faults: inout [DNSFault]) -> [EDNSOption] {
        var r = DNSReader(Array(rdata))
        var out: [EDNSOption] = []
        while r.remaining > 0 {
            do {
                let code = try r.u16("option code")
                let length = Int(try r.u16("option length"))
                out.append(EDNSOption(code: code, data: Array(try r.take(length, "option data"))))
            } catch {
                faults.append(.malformed("OPT option cut short"))
                break
            }
        }
        return out
    }
}

extension DNSMessage {
    var header: DNSHeader { parsed.header }
    var questionSection: DNSSection { parsed.sections.question }
    var answerSection: DNSSection { parsed.sections.answer }
    var authoritySection: DNSSection { parsed.sections.authority }
    /// Including OPT records (which `additionals` leaves out).
    var additionalSection: DNSSection { parsed.sections.additional }
    var edns: EDNS? { parsed.edns }
    /// Why parsing stopped early, or a rule the message broke (several OPT, bad RDATA).
    var faults: [DNSFault] { parsed.faults }
    /// The RDATA of every record read decodes (no "bad RDATA" fault): the event writer then
    /// reads it where it is, without checking it again (`RDataView.read`).
    var dataDecodes: Bool { parsed.dataDecodes }

    /// Size of the message in bytes.
    var size: Int { bytes.count }

    /// The response code with the EDNS extension (RFC 6891 §6.1.3).
    var rcode: Int { Int(edns?.extendedRcode ?? 0) << 4 | header.rcode }
}

extension DNSMessage {
    /// Calls `body` with each record of `section`, in order (read again: `parse` checked them).
    @inline(__always)
    func forEachRecord(in section: DNSSection, _ body: (DNSRecord) -> Void) {
        var r = DNSReader(bytes, position: section.start)
        var ignored: DNSFault?
        for _ in 0..<section.count {
            guard let rr = try? DNSMessage.record(&r, badData: &ignored) else { return }
            body(rr)
        }
    }

    private func records(_ section: DNSSection) -> [DNSRecord] {
        var out: [DNSRecord] = []
        forEachRecord(in: section) { out.append($0) }
        return out
    }

    // The sections as arrays (tests, dig text); events are written from the bytes (`RDataView`).
    var answers: [DNSRecord] { records(answerSection) }
    var authorities: [DNSRecord] { records(authoritySection) }
    /// Additional records other than OPT.
    var additionals: [DNSRecord] { records(additionalSection).filter { $0.type != DNSType.OPT } }

    /// The first question, if any.
    var firstQuestion: DNSQuestion? {
        firstQuestionPlace.map { DNSQuestion(name: DNSName(message: bytes, start: $0.start), type: $0.type, qclass: $0.qclass) }
    }

    /// Where the first question is, if any, with its type and class and its name's
    /// `uncompressedLength` (found in the same walk): no name holding the bytes (a retain and
    /// a release per event).
    var firstQuestionPlace: DNSQuestionPlace? {
        guard questionSection.count > 0 else { return nil }
        // Checked by `parse`: its name ends at a zero length or after its first pointer, and
        // type and class follow (no reader, no checks again).
        return bytes.withUnsafeBufferPointer { b in
            let start = questionSection.start
            var i = start
            while b[i] != 0 && b[i] & 0xC0 == 0 { i += 1 + Int(b[i]) }
            let plain = b[i] == 0
            let length: Int? = plain ? i + 1 - start : nil
            i += plain ? 1 : 2
            return DNSQuestionPlace(start: start, type: UInt16(b[i]) << 8 | UInt16(b[i + 1]),
                                    qclass: UInt16(b[i + 2]) << 8 | UInt16(b[i + 3]), nameLength: length)
        }
    }

    var questions: [DNSQuestion] {
        var r = DNSReader(bytes, position: questionSection.start)
        return (0..<questionSection.count).compactMap { _ in try? DNSMessage.question(&r) }
    }
}
