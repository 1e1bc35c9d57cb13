import WirebeatCore

/// Where the DNS writers put text: a byte array (a name's text), a buffer on the stack (the
/// question's name, `DNSTextBuffer`) or, with the JSON members of `DNSJSONOutput`, an event's
/// value being written in place (`JSONOutput`: no scratch array, no copy). The writers are
/// generic over it, specialised for each in this module.
protocol DNSTextOutput {
    /// Bytes written so far (for `JSONOutput`, into the value).
    var count: Int { get }
    subscript(index: Int) -> UInt8 { get set }
    mutating func append(_ byte: UInt8)
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>)
    mutating func append(_ bytes: [UInt8])
    mutating func append(_ text: StaticString)
}

protocol DNSJSONOutput: DNSTextOutput {
    /// Appends again the bytes `range` of what was written.
    mutating func appendCopy(of range: Range<Int>)
    /// A JSON string of valid UTF-8 text, as the core's JSONWriter writes it.
    mutating func writeString(_ s: String)
    mutating func writeInt(_ value: Int64)
    /// An address as `IPAddress.description` prints it, without making the String.
    mutating func writeText(of ip: IPAddress)
}

/// An event's value being written (`JSONOutput`), or a template's field (`FieldOutput`):
/// the text written so far can be read.
protocol DNSValueOutput: DNSJSONOutput {
    func withValueBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R
}

extension JSONOutput: DNSValueOutput {}
/// A value written on its own (`DNSEvents.shapeValues`).
extension Array: DNSValueOutput where Element == UInt8 {
    func withValueBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R { try withUnsafeBufferPointer(body) }
}
extension FieldOutput: DNSValueOutput {}

extension Array: DNSTextOutput, DNSJSONOutput where Element == UInt8 {
    @inline(__always) mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
    @inline(__always) mutating func append(_ bytes: [UInt8]) { append(contentsOf: bytes) }
    @inline(__always) mutating func append(_ text: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
    // Byte by byte: a slice of the array appended to itself would copy the whole buffer.
    mutating func appendCopy(of range: Range<Int>) { for k in range { append(self[k]) } }
    @inline(__always) mutating func writeString(_ s: String) { JSONWriter.writeString(s, into: &self) }
    @inline(__always) mutating func writeInt(_ value: Int64) { JSONWriter.writeInt(value, into: &self) }
    @inline(__always) mutating func writeText(of ip: IPAddress) { ip.writeText(into: &self) }
}

/// Text written into memory the caller provides (the question's name, on the stack: no
/// array to allocate and free per event). Writing past its end is a precondition failure.
struct DNSTextBuffer: DNSTextOutput {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    /// What was written (valid as long as the memory given to `init`).
    var text: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    subscript(index: Int) -> UInt8 {
        get { precondition(index >= 0 && index < count); return base[index] }
        set { precondition(index >= 0 && index < count); base[index] = newValue }
    }

    @inline(__always) mutating func append(_ byte: UInt8) {
        precondition(count < capacity, "DNSTextBuffer overflow")
        base[count] = byte
        count += 1
    }

    @inline(__always) mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let from = bytes.baseAddress else { return }
        precondition(bytes.count <= capacity - count, "DNSTextBuffer overflow")
        (base + count).update(from: from, count: bytes.count)
        count += bytes.count
    }

    @inline(__always) mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { append($0) } }
    @inline(__always) mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
}

/// The DNS values of an event written straight into JSON text: no String, no `JSONValue`
/// tree per value. The output must be byte for byte what the core's JSONWriter prints for
/// the same values (the goldens and the bench outputs check it), so strings and numbers go
/// through JSONWriter itself.
enum DNSJSON {
    static let quote = UInt8(ascii: "\"")

    /// Appends literal JSON text (keys, punctuation).
    @inline(__always)
    static func raw<Out: DNSTextOutput>(_ text: StaticString, into out: inout Out) { out.append(text) }

    /// Appends a literal JSON string, or with `inside` only what is between its quotes.
    @inline(__always)
    static func raw<Out: DNSTextOutput>(_ quoted: StaticString, inside: Bool, into out: inout Out) {
        let skip = inside ? 1 : 0
        out.append(UnsafeBufferPointer(start: quoted.utf8Start + skip, count: quoted.utf8CodeUnitCount - 2 * skip))
    }

    /// Appends a quoted JSON string from a table, or with `inside` only what is between its quotes.
    @inline(__always)
    static func quotedText<Out: DNSTextOutput>(_ quoted: [UInt8], inside: Bool, into out: inout Out) {
        if !inside { out.append(quoted); return }
        quoted.withUnsafeBufferPointer { out.append(UnsafeBufferPointer(rebasing: $0.dropFirst().dropLast())) }
    }

    /// A JSON string of valid UTF-8 text, as the core's JSONWriter writes it.
    @inline(__always)
    static func string<Out: DNSJSONOutput>(_ s: String, into out: inout Out) { out.writeString(s) }

    /// A JSON string for text known to need no escaping (type, class and code names).
    static func quoted(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        string(s, into: &out)
        return out
    }

    /// A non-negative integer in decimal. One digit (most counts) is one append here: through
    /// `writeInt`, not inlined, it cost ~25 instructions more.
    @inline(__always)
    static func int<Out: DNSJSONOutput>(_ value: UInt32, into out: inout Out) {
        if value < 10 { out.append(0x30 &+ UInt8(truncatingIfNeeded: value)) } else { out.writeInt(Int64(value)) }
    }

    /// An address in quotes, as `IPAddress.description` prints it (without making the String).
    @inline(__always)
    static func quotedIP<Out: DNSJSONOutput>(_ ip: IPAddress, into out: inout Out) {
        out.append(quote)
        out.writeText(of: ip)
        out.append(quote)
    }
}

/// Values that recur in every event, as JSON text built once.
enum DNSEncoded {

    /// By number up to CAA (257), the highest common one; a lookup instead of hashing the
    /// number into `DNSType.names` for every record.
    private static let types: [[UInt8]] = (0...257).map { DNSJSON.quoted(DNSType.name(UInt16($0))) }
    static func type(_ t: UInt16) -> [UInt8] { t <= 257 ? types[Int(t)] : DNSJSON.quoted(DNSType.name(t)) }

    private static let internet = DNSJSON.quoted(DNSClass.name(1))
    static func `class`(_ c: UInt16) -> [UInt8] { c == 1 ? internet : DNSJSON.quoted(DNSClass.name(c)) }

    private static let opcodes: [[UInt8]] = (0..<16).map { DNSJSON.quoted(DNSCodes.opcode($0)) }
    static func opcode(_ op: Int) -> [UInt8] { opcodes[op & 0xF] }

    private static let rcodes: [[UInt8]] = (0..<24).map { DNSJSON.quoted(DNSCodes.rcode($0)) }
    static func rcode(_ code: Int) -> [UInt8] { code < 24 ? rcodes[code] : DNSJSON.quoted(DNSCodes.rcode(code)) }

    /// AA is flag bit 0x0400, TC 0x0200, RD 0x0100, RA 0x0080, (Z 0x0040), AD 0x0020, CD 0x0010.
    private static func headerBits(_ h: DNSHeader) -> Int { Int(h.flags >> 5 & 0x3C) | Int(h.flags >> 4 & 0x3) }

    /// `"flags":{…},"header_flags":[…],"id":`, the members of `dns` from `flags` to the key of
    /// `id` in one piece, for every combination of AA TC RD RA AD CD (bits 5…0, as
    /// `headerBits`) and DO (bit 6): `flags` with its keys in byte order, `header_flags` in
    /// dig's order, as JSONWriter prints them. Built from literal bytes: through `JSONValue`
    /// and JSONWriter the table cost ~3 M instructions at the first event.
    private static let flagMembers: [[UInt8]] = {
        // Built at the first event: each entry in one array of the right size, the mnemonics'
        // list made once (grown append by append, with a list per entry, the table cost
        // ~560,000 instructions).
        let mnemonics: [(StaticString, Int)] = [(#""AA""#, 5), (#""TC""#, 4), (#""RD""#, 3), (#""RA""#, 2), (#""AD""#, 1),
                                                (#""CD""#, 0), (#""DO""#, 6)]
        var table: [[UInt8]] = []
        table.reserveCapacity(128)
        for bits in 0..<128 {
            func isSet(_ bit: Int) -> Bool { bits >> bit & 1 != 0 }
            var out: [UInt8] = []
            out.reserveCapacity(224)
            func add(_ text: StaticString) { DNSJSON.raw(text, into: &out) }
            func flag(_ key: StaticString, _ bit: Int, last: Bool = false) {
                add(key)
                if isSet(bit) { add("true") } else { add("false") }
                if !last { add(",") }
            }
            add(#""flags":{"#)
            flag(#""authentic_data":"#, 1)
            flag(#""authoritative":"#, 5)
            flag(#""checking_disabled":"#, 0)
            flag(#""recursion_available":"#, 2)
            flag(#""recursion_desired":"#, 3)
            flag(#""truncated_response":"#, 4, last: true)
            add(#"},"header_flags":["#)
            var first = true
            for (name, bit) in mnemonics where isSet(bit) {
                if !first { add(",") }
                first = false
                add(name)
            }
            add(#"],"id":"#)
            table.append(out)
        }
        return table
    }()

    static func flagMembers(_ h: DNSHeader, dnssecOK: Bool) -> [UInt8] {
        flagMembers[headerBits(h) | (dnssecOK ? 64 : 0)]
    }

    /// Appends `flagMembers(h, dnssecOK:)`, after a comma when `comma`: the commonest flags (a query's RD; a recursive
    /// answer's RD RA, with AD; an authoritative one's AA, with RD) from literals, which
    /// cost one copy, where the table behind its lazy global cost ~100 instructions more
    /// (a test checks they agree).
    @inline(__always)
    static func writeFlagMembers<Out: DNSTextOutput>(_ h: DNSHeader, dnssecOK: Bool, comma: Bool, into out: inout Out) {
        let text: StaticString
        switch headerBits(h) | (dnssecOK ? 64 : 0) {
        case 0b001000:
            text = #","flags":{"authentic_data":false,"authoritative":false,"checking_disabled":false,"recursion_available":false,"recursion_desired":true,"truncated_response":false},"header_flags":["RD"],"id":"#
        case 0b001100:
            text = #","flags":{"authentic_data":false,"authoritative":false,"checking_disabled":false,"recursion_available":true,"recursion_desired":true,"truncated_response":false},"header_flags":["RD","RA"],"id":"#
        case 0b001110:
            text = #","flags":{"authentic_data":true,"authoritative":false,"checking_disabled":false,"recursion_available":true,"recursion_desired":true,"truncated_response":false},"header_flags":["RD","RA","AD"],"id":"#
        case 0b101000:
            text = #","flags":{"authentic_data":false,"authoritative":true,"checking_disabled":false,"recursion_available":false,"recursion_desired":true,"truncated_response":false},"header_flags":["AA","RD"],"id":"#
        case 0b100000:
            text = #","flags":{"authentic_data":false,"authoritative":true,"checking_disabled":false,"recursion_available":false,"recursion_desired":false,"truncated_response":false},"header_flags":["AA"],"id":"#
        default:
            if comma { out.append(UInt8(ascii: ",")) }
            out.append(flagMembers(h, dnssecOK: dnssecOK))
            return
        }
        let skip = comma ? 0 : 1
        out.append(UnsafeBufferPointer(start: text.utf8Start + skip, count: text.utf8CodeUnitCount - skip))
    }

    // The commonest values written from literals (the tables above sit behind lazy globals,
    // checked at every use); anything else from the tables. With `inside`, without the quotes.

    static func writeType<Out: DNSTextOutput>(_ t: UInt16, inside: Bool = false, into out: inout Out) {
        let text: StaticString
        switch t {
        case 1: text = #""A""#
        case 2: text = #""NS""#
        case 5: text = #""CNAME""#
        case 6: text = #""SOA""#
        case 12: text = #""PTR""#
        case 15: text = #""MX""#
        case 16: text = #""TXT""#
        case 28: text = #""AAAA""#
        case 33: text = #""SRV""#
        default:
            DNSJSON.quotedText(type(t), inside: inside, into: &out)
            return
        }
        DNSJSON.raw(text, inside: inside, into: &out)
    }

    /// `","type":"A"}` and the like for the common types: the member whole, from the closing
    /// quote of the string before it to the closing brace (one literal: each append costs
    /// about as much as a short literal).
    @inline(__always)
    static func commonTypeMember(_ t: UInt16) -> StaticString? {
        switch t {
        case 1: return #"","type":"A"}"#
        case 2: return #"","type":"NS"}"#
        case 5: return #"","type":"CNAME"}"#
        case 6: return #"","type":"SOA"}"#
        case 12: return #"","type":"PTR"}"#
        case 15: return #"","type":"MX"}"#
        case 16: return #"","type":"TXT"}"#
        case 28: return #"","type":"AAAA"}"#
        case 33: return #"","type":"SRV"}"#
        default: return nil
        }
    }

    /// `,"type":` and the type as `writeType` writes it, after the closing quote of a string
    /// when `afterQuote` and followed by `}` when `close`.
    @inline(__always)
    static func writeTypeMember<Out: DNSTextOutput>(_ t: UInt16, afterQuote: Bool, close: Bool, into out: inout Out) {
        guard let text = commonTypeMember(t) else {
            DNSJSON.raw(afterQuote ? #"","type":"# : #","type":"#, into: &out)
            DNSJSON.quotedText(type(t), inside: false, into: &out)
            if close { out.append(UInt8(ascii: "}")) }
            return
        }
        let skip = afterQuote ? 0 : 1
        out.append(UnsafeBufferPointer(start: text.utf8Start + skip, count: text.utf8CodeUnitCount - skip - (close ? 0 : 1)))
    }

    /// `","type":"A"}`: what ends the question, after its name (`writeTypeMember` with
    /// `afterQuote` and `close`, a common type's literal whole: one copy of a known length).
    @inline(__always)
    static func writeQuestionEnd<Out: DNSTextOutput>(type t: UInt16, into out: inout Out) {
        guard let text = commonTypeMember(t) else {
            writeTypeMember(t, afterQuote: true, close: true, into: &out)
            return
        }
        out.append(text)
    }

    /// `"class IN, type A, `: the value of `query` up to the name. Class IN with a common
    /// type in one literal (each append costs about as much as a short literal).
    @inline(__always)
    static func writeQueryStart<Out: DNSTextOutput>(qclass: UInt16, type t: UInt16, into out: inout Out) {
        if qclass == 1 {
            let text: StaticString
            switch t {
            case 1: text = #""class IN, type A, "#
            case 2: text = #""class IN, type NS, "#
            case 5: text = #""class IN, type CNAME, "#
            case 6: text = #""class IN, type SOA, "#
            case 12: text = #""class IN, type PTR, "#
            case 15: text = #""class IN, type MX, "#
            case 16: text = #""class IN, type TXT, "#
            case 28: text = #""class IN, type AAAA, "#
            case 33: text = #""class IN, type SRV, "#
            default:
                DNSJSON.raw(#""class IN, type "#, into: &out)
                writeType(t, inside: true, into: &out)
                DNSJSON.raw(", ", into: &out)
                return
            }
            out.append(text)
            return
        }
        DNSJSON.raw(#""class "#, into: &out)
        writeClass(qclass, inside: true, into: &out)
        DNSJSON.raw(", type ", into: &out)
        writeType(t, inside: true, into: &out)
        DNSJSON.raw(", ", into: &out)
    }

    static func writeClass<Out: DNSTextOutput>(_ c: UInt16, inside: Bool = false, into out: inout Out) {
        if c == 1 { DNSJSON.raw(#""IN""#, inside: inside, into: &out); return }
        DNSJSON.quotedText(`class`(c), inside: inside, into: &out)
    }

    @inline(__always)
    static func writeOpcode<Out: DNSTextOutput>(_ op: Int, into out: inout Out) {
        if op == 0 { DNSJSON.raw(#""QUERY""#, into: &out) } else { out.append(opcode(op)) }
    }

    static func writeRcode<Out: DNSTextOutput>(_ code: Int, into out: inout Out) {
        switch code {
        case 0: DNSJSON.raw(#""NOERROR""#, into: &out)
        case 2: DNSJSON.raw(#""SERVFAIL""#, into: &out)
        case 3: DNSJSON.raw(#""NXDOMAIN""#, into: &out)
        case 5: DNSJSON.raw(#""REFUSED""#, into: &out)
        default: out.append(rcode(code))
        }
    }
}

/// RDATA as the event writer reads it: where its parts are in the message (names by
/// offset), so that a record is written with no value built. Decoding the records again
/// into `DNSRecord` and `RData` to write them cost ~900 instructions a record, mostly in
/// retains and releases of the message's array.
///
/// A plain value, with nothing to release: the value of `.other` goes beside it (see
/// `RDataView`). With that value inside, every record's view was destroyed through the
/// enum's value witnesses (~40 instructions a record) and returned through memory.
enum RDataPlace {
    case address(IPAddress)
    case name(Int)
    case mx(preference: UInt16, host: Int)
    case soa(mname: Int, rname: Int, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: Int)
    /// TXT, HINFO, SPF: the character-strings.
    case strings(Range<Int>)
    /// Other types, and RDATA that could not be decoded: the decoded value (given beside
    /// it), printed as text.
    case other

    /// The RDATA `start..<end` of a record of type `type` in a message whose every RDATA
    /// decodes (`DNSMessage.dataDecodes`: checked by `parse`, not again); nil for the types
    /// decoded into text, which `RData.decode` makes.
    @inline(__always)
    static func read(_ b: UnsafeBufferPointer<UInt8>, type: UInt16, start: Int, end: Int) -> RDataPlace? {
        @inline(__always) func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        @inline(__always) func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        switch type {
        case DNSType.A:
            return .address(IPAddress(v4: u32(start)))
        case DNSType.AAAA:
            return .address(IPAddress(v6High: UInt64(u32(start)) << 32 | UInt64(u32(start + 4)),
                                      low: UInt64(u32(start + 8)) << 32 | UInt64(u32(start + 12))))
        case DNSType.NS, DNSType.CNAME, DNSType.PTR, DNSType.DNAME:
            return .name(start)
        case DNSType.MX:
            return .mx(preference: u16(start), host: start + 2)
        case DNSType.SOA:
            let rname = DNSName.end(in: b, at: start)
            let f = DNSName.end(in: b, at: rname)
            return .soa(mname: start, rname: rname, serial: u32(f), refresh: u32(f + 4), retry: u32(f + 8),
                        expire: u32(f + 12), minimum: u32(f + 16))
        case DNSType.SRV:
            return .srv(priority: u16(start), weight: u16(start + 2), port: u16(start + 4), target: start + 6)
        case DNSType.TXT, DNSType.HINFO, 99:
            return .strings(start..<end)
        default:
            return nil
        }
    }
}

/// The RDATA of a record as `DNSRecord.writeJSON` takes it: where it is, or the decoded
/// value of the types printed as text.
enum RDataView {
    case place(RDataPlace)
    case other(RData)

    /// The view of `data`, whose names and RDATA are in the message `record` read it from.
    init(_ data: RData) {
        switch data {
        case .address(let ip): self = .place(.address(ip))
        case .name(let n): self = .place(.name(n.start))
        case let .mx(preference, host): self = .place(.mx(preference: preference, host: host.start))
        case let .soa(mname, rname, serial, refresh, retry, expire, minimum):
            self = .place(.soa(mname: mname.start, rname: rname.start, serial: serial, refresh: refresh, retry: retry,
                               expire: expire, minimum: minimum))
        case let .srv(priority, weight, port, target):
            self = .place(.srv(priority: priority, weight: weight, port: port, target: target.start))
        case .strings(let bytes): self = .place(.strings(bytes.startIndex..<bytes.endIndex))
        case .text, .unknown: self = .other(data)
        }
    }

    /// See `RDataPlace.read`.
    static func read(_ b: UnsafeBufferPointer<UInt8>, type: UInt16, start: Int, end: Int) -> RDataView? {
        RDataPlace.read(b, type: type, start: start, end: end).map { .place($0) }
    }
}

extension DNSMessage {
    /// The RDATA of the record `rr` of this message (`b`: its bytes): read where it is when
    /// every RDATA of the message decodes, else decoded again as `record` does (kept as
    /// unknown data when it cannot be).
    func dataView(of rr: DNSMessage.RecordSpan, in b: UnsafeBufferPointer<UInt8>) -> RDataView {
        let rdata = rr.rdata
        if dataDecodes, let view = RDataView.read(b, type: rr.type, start: rdata.lowerBound, end: rdata.upperBound) {
            return view
        }
        let data = try? RData.decode(type: rr.type, bytes: bytes, start: rdata.lowerBound, end: rdata.upperBound)
        return RDataView(data ?? .unknown(bytes[rdata]))
    }
}

extension DNSRecord {
    /// Appends the record as `json` prints through JSONWriter (see `writeJSON(_:…)`).
    /// Returns where the value of `data` is in `out`.
    @discardableResult
    func writeJSON<Out: DNSJSONOutput>(into out: inout Out, nameAt12: UnsafeBufferPointer<UInt8>? = nil) -> Range<Int> {
        name.message.withUnsafeBufferPointer { b in
            DNSRecord.writeJSON(b, owner: name.start, rclass: rclass, ttl: ttl, type: type, data: RDataView(data),
                                nameAt12: nameAt12, into: &out)
        }
    }

    /// Appends the record of the message `b` whose owner name is at `owner`, as `json` prints
    /// through JSONWriter: the same members, keys in byte order (class, data, …, name, …,
    /// ttl, type, …), written directly. Returns where the value of `data` is in `out`.
    /// `nameAt12`: the text (as in a JSON string) of the name at offset 12 of the message, the
    /// question's, which most answers point to.
    static func writeJSON<Out: DNSJSONOutput>(_ b: UnsafeBufferPointer<UInt8>, owner: Int, rclass: UInt16, ttl: UInt32,
                                              type: UInt16, data: RDataView, nameAt12: UnsafeBufferPointer<UInt8>?,
                                              into out: inout Out) -> Range<Int> {
        switch data {
        case .place(let place):
            return writeJSON(b, owner: owner, rclass: rclass, ttl: ttl, type: type, data: place, other: nil,
                             nameAt12: nameAt12, into: &out)
        case .other(let value):
            return writeJSON(b, owner: owner, rclass: rclass, ttl: ttl, type: type, data: .other, other: value,
                             nameAt12: nameAt12, into: &out)
        }
    }

    /// `writeJSON(_:owner:…)` of RDATA where it is (`data`), or of the value `other` for
    /// `.other`.
    static func writeJSON<Out: DNSJSONOutput>(_ b: UnsafeBufferPointer<UInt8>, owner: Int, rclass: UInt16, ttl: UInt32,
                                              type: UInt16, data: RDataPlace, other: RData?,
                                              nameAt12: UnsafeBufferPointer<UInt8>?, into out: inout Out) -> Range<Int> {
        if rclass == 1 {
            DNSJSON.raw(#"{"class":"IN","data":"#, into: &out)   // nearly always
        } else {
            DNSJSON.raw(#"{"class":"#, into: &out)
            out.append(DNSEncoded.class(rclass))
            DNSJSON.raw(#","data":"#, into: &out)
        }
        let dataStart = out.count
        // The question's name's text, for the names that end with a pointer to it (not the
        // root's: a name's labels then end it).
        let text12 = nameAt12 != nil && b[12] != 0 ? nameAt12 : nil
        writeDataJSON(data, other, b, text12: text12, into: &out)
        let dataEnd = out.count
        /// `,"name":"` and the name, without the closing quote.
        @inline(__always) func writeName() {
            DNSJSON.raw(#","name":""#, into: &out)
            if let nameAt12, b[owner] == 0xC0, b[owner + 1] == 12 {
                out.append(nameAt12)
            } else {
                DNSName.write(b, at: owner, into: &out, json: true, text12: text12)
            }
        }
        // The extra fields of MX, SOA and SRV go where their keys sort.
        // (The name's closing quote goes with the key after it: one append less.)
        switch data {
        case let .soa(_, rname, serial, refresh, retry, expire, minimum):
            DNSJSON.raw(#","expire":"#, into: &out); DNSJSON.int(expire, into: &out)
            DNSJSON.raw(#","minimum":"#, into: &out); DNSJSON.int(minimum, into: &out)
            writeName()
            DNSJSON.raw(#"","refresh":"#, into: &out); DNSJSON.int(refresh, into: &out)
            DNSJSON.raw(#","retry":"#, into: &out); DNSJSON.int(retry, into: &out)
            DNSJSON.raw(#","rname":""#, into: &out); DNSName.write(b, at: rname, into: &out, json: true, text12: text12)
            DNSJSON.raw(#"","serial":"#, into: &out); DNSJSON.int(serial, into: &out)
            DNSJSON.raw(#","ttl":"#, into: &out)
        case let .mx(preference, _):
            writeName()
            DNSJSON.raw(#"","preference":"#, into: &out); DNSJSON.int(UInt32(preference), into: &out)
            DNSJSON.raw(#","ttl":"#, into: &out)
        case let .srv(priority, _, port, _):
            writeName()
            DNSJSON.raw(#"","port":"#, into: &out); DNSJSON.int(UInt32(port), into: &out)
            DNSJSON.raw(#","priority":"#, into: &out); DNSJSON.int(UInt32(priority), into: &out)
            DNSJSON.raw(#","ttl":"#, into: &out)
        default:
            writeName()
            DNSJSON.raw(#"","ttl":"#, into: &out)
        }
        DNSJSON.int(ttl, into: &out)
        if case let .srv(_, weight, _, _) = data {
            DNSEncoded.writeTypeMember(type, afterQuote: false, close: false, into: &out)
            DNSJSON.raw(#","weight":"#, into: &out); DNSJSON.int(UInt32(weight), into: &out)
            out.append(UInt8(ascii: "}"))
        } else {
            DNSEncoded.writeTypeMember(type, afterQuote: false, close: true, into: &out)
        }
        return dataStart..<dataEnd
    }

    /// `data.data` as a JSON string.
    @inline(__always)
    private static func writeDataJSON<Out: DNSJSONOutput>(_ data: RDataPlace, _ other: RData?,
                                                         _ b: UnsafeBufferPointer<UInt8>,
                                                         text12: UnsafeBufferPointer<UInt8>?, into out: inout Out) {
        switch data {
        case .address(let ip):
            DNSJSON.quotedIP(ip, into: &out)
        case .name(let n), .mx(_, let n), .soa(let n, _, _, _, _, _, _), .srv(_, _, _, let n):
            out.append(DNSJSON.quote); DNSName.write(b, at: n, into: &out, json: true, text12: text12); out.append(DNSJSON.quote)
        case .strings(let range):
            out.append(DNSJSON.quote)
            RData.writeStrings(UnsafeBufferPointer(rebasing: b[range]), into: &out, json: true)
            out.append(DNSJSON.quote)
        case .other:
            DNSJSON.string(other?.data ?? "", into: &out)
        }
    }
}
