import WirebeatCore

/// Type, class, opcode and rcode numbers and names.
enum DNSType {
    static let A: UInt16 = 1, NS: UInt16 = 2, CNAME: UInt16 = 5, SOA: UInt16 = 6, PTR: UInt16 = 12, HINFO: UInt16 = 13
    static let MX: UInt16 = 15, TXT: UInt16 = 16, AAAA: UInt16 = 28, SRV: UInt16 = 33, NAPTR: UInt16 = 35
    static let DNAME: UInt16 = 39, OPT: UInt16 = 41, DS: UInt16 = 43, SSHFP: UInt16 = 44, RRSIG: UInt16 = 46
    static let NSEC: UInt16 = 47, DNSKEY: UInt16 = 48, NSEC3: UInt16 = 50, NSEC3PARAM: UInt16 = 51, TLSA: UInt16 = 52
    static let CDS: UInt16 = 59, CDNSKEY: UInt16 = 60, SVCB: UInt16 = 64, HTTPS: UInt16 = 65, CAA: UInt16 = 257

    static let names: [UInt16: String] = [
        1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL", 11: "WKS",
        12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY",
        28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL",
        43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3",
        51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY",
        62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY",
        250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA",
        32768: "TA", 32769: "DLV",
    ]

    /// Mnemonic, or `TYPEnnn` (RFC 3597).
    static func name(_ type: UInt16) -> String { names[type] ?? "TYPE\(type)" }

    static func number(_ name: String) -> UInt16? {
        if let n = reverse[name] { return n }
        if name.hasPrefix("TYPE") { return UInt16(name.dropFirst(4)) }
        return nil
    }
    private static let reverse: [String: UInt16] = Dictionary(uniqueKeysWithValues: names.map { ($1, $0) })
}

enum DNSClass {
    static func name(_ c: UInt16) -> String {
        switch c {
        case 1: return "IN"
        case 3: return "CH"
        case 4: return "HS"
        case 254: return "NONE"
        case 255: return "ANY"
        default: return "CLASS\(c)"
        }
    }
}

enum DNSCodes {
    static func opcode(_ op: Int) -> String {
        switch op {
        case 0: return "QUERY"
        case 1: return "IQUERY"
        case 2: return "STATUS"
        case 4: return "NOTIFY"
        case 5: return "UPDATE"
        case 6: return "DSO"
        default: return "OPCODE\(op)"
        }
    }

    static let rcodes: [Int: String] = [
        0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
        7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI", 16: "BADVERS", 17: "BADKEY",
        18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
    ]

    static func rcode(_ code: Int) -> String { rcodes[code] ?? "RCODE\(code)" }
}

/// Decoded RDATA: the presentation text (as dig prints it) plus structured fields for the
/// types Packetbeat gives them to.
///
/// The common types keep their parts (names point into the message, TXT strings are a
/// slice of it): their text is written straight into the event when it is published, and
/// decoding a record allocates nothing.
enum RData: Equatable {
    case address(IPAddress)
    case name(DNSName)
    case mx(preference: UInt16, host: DNSName)
    case soa(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    /// TXT, HINFO, SPF: character-strings (already checked to be whole), printed quoted.
    case strings(ArraySlice<UInt8>)
    /// Other types: their presentation text.
    case text(String)
    /// Unknown type, or RDATA that could not be decoded: RFC 3597 `\# len hex`.
    case unknown(ArraySlice<UInt8>)

    /// The value of `dns.answers[].data`: names without the final dot (as Packetbeat),
    /// other types in dig's presentation format.
    var data: String {
        switch self {
        case .address(let ip): return ip.description
        case .name(let n), .mx(_, let n), .soa(let n, _, _, _, _, _, _), .srv(_, _, _, let n): return n.text
        case .strings(let bytes):
            var out: [UInt8] = []
            RData.writeStrings(bytes, into: &out, json: false)
            return String(decoding: out, as: UTF8.self)
        case .text(let s): return s
        case .unknown(let bytes): return RData.generic(bytes)
        }
    }

    /// As dig prints it (names absolute).
    var presentation: String {
        switch self {
        case .name(let n): return n.absolute
        default: return data
        }
    }

    /// The extra fields of MX, SOA and SRV in `dns.answers`, sorted by key.
    var fields: [(String, JSONValue)] {
        switch self {
        case let .mx(preference, _):
            return [("preference", .int(Int64(preference)))]
        case let .soa(_, rname, serial, refresh, retry, expire, minimum):
            return [("expire", .int(Int64(expire))), ("minimum", .int(Int64(minimum))), ("refresh", .int(Int64(refresh))),
                    ("retry", .int(Int64(retry))), ("rname", .string(rname.text)), ("serial", .int(Int64(serial)))]
        case let .srv(priority, weight, port, _):
            return [("port", .int(Int64(port))), ("priority", .int(Int64(priority))), ("weight", .int(Int64(weight)))]
        default:
            return []
        }
    }

    static func generic(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.isEmpty ? "\\# 0" : "\\# \(bytes.count) " + hex(bytes, upper: true)
    }

    /// Decodes the RDATA at `start..<end` of `message` (names may be compressed).
    static func decode(type: UInt16, bytes message: [UInt8], start: Int, end: Int) throws -> RData {
        var r = DNSReader(message, position: start, end: end)
        let length = end - start
        // Sliced only by the types that keep it: a slice costs a retain and a release.
        var rdata: ArraySlice<UInt8> { message[start..<end] }
        func name() throws -> DNSName { try r.name() }
        // `consuming`: the value is handed back, not copied (with a retain of each name).
        func finish(_ value: consuming RData) throws -> RData {
            guard r.position == end else { throw DNSFault.malformed("\(end - r.position) bytes left over") }
            return value
        }
        switch type {
        case DNSType.A:
            guard length == 4 else { throw DNSFault.malformed("length \(length), expected 4") }
            return .address(IPAddress(v4: UInt32(try r.u32("address"))))
        case DNSType.AAAA:
            guard length == 16 else { throw DNSFault.malformed("length \(length), expected 16") }
            let hi = UInt64(try r.u32("address")) << 32 | UInt64(try r.u32("address"))
            let lo = UInt64(try r.u32("address")) << 32 | UInt64(try r.u32("address"))
            return .address(IPAddress(v6High: hi, low: lo))
        case DNSType.NS, DNSType.CNAME, DNSType.PTR, DNSType.DNAME:
            return try finish(.name(try name()))
        case DNSType.MX:
            let preference = try r.u16("preference")
            let host = try name()
            return try finish(.mx(preference: preference, host: host))
        case DNSType.SOA:
            let mname = try name(), rname = try name()
            let serial = try r.u32("serial"), refresh = try r.u32("refresh"), retry = try r.u32("retry")
            let expire = try r.u32("expire"), minimum = try r.u32("minimum")
            return try finish(.soa(mname: mname, rname: rname, serial: serial, refresh: refresh, retry: retry,
                                   expire: expire, minimum: minimum))
        case DNSType.TXT, DNSType.HINFO, 99:
            // Checked here, printed from the bytes when published.
            var count = 0
            while r.position < end { _ = try characterString(&r); count += 1 }
            if type == DNSType.HINFO && count != 2 { throw DNSFault.malformed("HINFO needs 2 strings") }
            return .strings(rdata)
        case DNSType.SRV:
            let priority = try r.u16("priority"), weight = try r.u16("weight"), port = try r.u16("port")
            let target = try name()
            return try finish(.srv(priority: priority, weight: weight, port: port, target: target))
        case DNSType.NAPTR:
            let order = try r.u16("order"), preference = try r.u16("preference")
            let flags = try characterString(&r), services = try characterString(&r), regexp = try characterString(&r)
            let replacement = try name()
            return try finish(.text("\(order) \(preference) \(quoted(flags)) \(quoted(services)) \(quoted(regexp)) \(replacement.absolute)"))
        case DNSType.CAA:
            let flags = try r.u8("flags")
            let tagLength = Int(try r.u8("tag length"))
            guard tagLength > 0 else { throw DNSFault.malformed("empty CAA tag") }
            let tag = try r.take(tagLength, "tag")
            let value = try r.take(end - r.position, "value")
            return .text("\(flags) \(String(decoding: tag, as: UTF8.self)) \(quoted(value))")
        case DNSType.DS, DNSType.CDS, 32769:
            let keyTag = try r.u16("key tag"), algorithm = try r.u8("algorithm"), digestType = try r.u8("digest type")
            let digest = try r.take(end - r.position, "digest")
            return .text("\(keyTag) \(algorithm) \(digestType) \(hex(digest, upper: true))")
        case DNSType.DNSKEY, DNSType.CDNSKEY, 25:
            let flags = try r.u16("flags"), proto = try r.u8("protocol"), algorithm = try r.u8("algorithm")
            let key = try r.take(end - r.position, "key")
            return .text("\(flags) \(proto) \(algorithm) \(base64(key))")
        case DNSType.RRSIG, 24:
            let covered = try r.u16("type covered"), algorithm = try r.u8("algorithm"), labels = try r.u8("labels")
            let originalTTL = try r.u32("original TTL"), expiration = try r.u32("expiration")
            let inception = try r.u32("inception"), keyTag = try r.u16("key tag")
            let signer = try name()
            let signature = try r.take(end - r.position, "signature")
            return .text("\(DNSType.name(covered)) \(algorithm) \(labels) \(originalTTL) \(rrsigTime(expiration)) "
                         + "\(rrsigTime(inception)) \(keyTag) \(signer.absolute) \(base64(signature))")
        case DNSType.NSEC:
            let next = try name()
            let types = try typeBitmap(&r, end: end)
            return .text(([next.absolute] + types).joined(separator: " "))
        case DNSType.NSEC3:
            let algorithm = try r.u8("algorithm"), flags = try r.u8("flags"), iterations = try r.u16("iterations")
            let salt = try r.take(Int(try r.u8("salt length")), "salt")
            let hash = try r.take(Int(try r.u8("hash length")), "next hash")
            let types = try typeBitmap(&r, end: end)
            let saltText = salt.isEmpty ? "-" : hex(salt, upper: true)
            return .text(([String(algorithm), String(flags), String(iterations), saltText, base32hex(hash)] + types)
                .joined(separator: " "))
        case DNSType.NSEC3PARAM:
            let algorithm = try r.u8("algorithm"), flags = try r.u8("flags"), iterations = try r.u16("iterations")
            let salt = try r.take(Int(try r.u8("salt length")), "salt")
            return try finish(.text("\(algorithm) \(flags) \(iterations) \(salt.isEmpty ? "-" : hex(salt, upper: true))"))
        case DNSType.SSHFP:
            let algorithm = try r.u8("algorithm"), fpType = try r.u8("fingerprint type")
            return .text("\(algorithm) \(fpType) \(hex(try r.take(end - r.position, "fingerprint"), upper: true))")
        case DNSType.TLSA, 53:
            let usage = try r.u8("usage"), selector = try r.u8("selector"), matching = try r.u8("matching type")
            return .text("\(usage) \(selector) \(matching) \(hex(try r.take(end - r.position, "data"), upper: true))")
        case DNSType.SVCB, DNSType.HTTPS:
            return .text(try svcb(&r, end: end))
        default:
            return .unknown(rdata)
        }
    }

    private static func characterString(_ r: inout DNSReader) throws -> ArraySlice<UInt8> {
        try r.take(Int(try r.u8("string length")), "character string")
    }

    /// A character-string in double quotes, escaped as dig does.
    static func quoted<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = "\""
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): s += "\\" + String(UnicodeScalar(b))
            case 0x20...0x7E: s.unicodeScalars.append(UnicodeScalar(b))
            default: s += DNSName.decimalEscape(b)
            }
        }
        return s + "\""
    }

    /// Character-strings (whole, as `decode` checked) as dig prints them: each quoted and
    /// escaped as `quoted` does, separated by spaces. With `json`, each `\\` and `"` written
    /// is escaped again for a JSON string (the text is printable ASCII).
    static func writeStrings<Bytes: RandomAccessCollection<UInt8>, Out: DNSTextOutput>(_ rdata: Bytes, into out: inout Out,
                                                                                     json: Bool) where Bytes.Index == Int {
        if rdata.withContiguousStorageIfAvailable({ writeStrings($0, into: &out, json: json) }) == nil {
            Array(rdata).withUnsafeBufferPointer { writeStrings($0, into: &out, json: json) }
        }
    }

    /// `writeStrings` of bytes in a buffer. Runs of bytes printed as they are go in one append
    /// (byte by byte, a TXT record cost ~12 instructions a byte).
    static func writeStrings<Out: DNSTextOutput>(_ rdata: UnsafeBufferPointer<UInt8>, into out: inout Out, json: Bool) {
        let backslash = UInt8(ascii: "\\"), quote = UInt8(ascii: "\"")
        @inline(__always) func special(_ b: UInt8) {
            if json { out.append(backslash) }
            out.append(b)
        }
        var i = 0
        while i < rdata.count {
            let end = i + 1 + Int(rdata[i])
            if i > 0 { out.append(UInt8(ascii: " ")) }
            special(quote)
            var k = i + 1
            while k < end {
                var run = k
                while run < end && RData.escapedBit(rdata[run]) == 0 { run += 1 }
                if run > k { out.append(UnsafeBufferPointer(rebasing: rdata[k..<run])) }
                guard run < end else { break }
                let b = rdata[run]
                if b == quote || b == backslash {
                    special(backslash)
                    special(b)
                } else {
                    special(backslash)
                    out.append(0x30 + b / 100)
                    out.append(0x30 + b / 10 % 10)
                    out.append(0x30 + b % 10)
                }
                k = run + 1
            }
            special(quote)
            i = end
        }
    }

    /// 0 when `b` is printed as it is in a character-string (printable ASCII but `"` and `\`),
    /// else 1 (a test checks it).
    @inline(__always) static func escapedBit(_ b: UInt8) -> UInt8 { DNSByteClasses.bit(b, of: .escapedInText) }

    /// Type bit maps of NSEC/NSEC3 (RFC 4034 §4.1.2).
    private static func typeBitmap(_ r: inout DNSReader, end: Int) throws -> [String] {
        var out: [String] = []
        var lastWindow = -1
        while r.position < end {
            let window = Int(try r.u8("window"))
            let length = Int(try r.u8("bitmap length"))
            guard window > lastWindow, (1...32).contains(length) else { throw DNSFault.malformed("bad type bitmap window") }
            lastWindow = window
            let bits = try r.take(length, "bitmap")
            for (i, byte) in bits.enumerated() {
                for bit in 0..<8 where byte & (0x80 >> bit) != 0 {
                    out.append(DNSType.name(UInt16(window * 256 + i * 8 + bit)))
                }
            }
        }
        return out
    }

    static let svcKeys: [UInt16: String] = [0: "mandatory", 1: "alpn", 2: "no-default-alpn", 3: "port", 4: "ipv4hint",
                                            5: "ech", 6: "ipv6hint", 7: "dohpath", 8: "ohttp"]

    /// SVCB/HTTPS (RFC 9460): priority, target, then key=value pairs.
    private static func svcb(_ r: inout DNSReader, end: Int) throws -> String {
        let priority = try r.u16("priority")
        let target = try r.name()
        var parts = [String(priority), target.absolute]
        while r.position < end {
            let key = try r.u16("SvcParamKey"), length = Int(try r.u16("SvcParam length"))
            let value = Array(try r.take(length, "SvcParam value"))
            let keyName = svcKeys[key] ?? "key\(key)"
            var v = DNSReader(value)
            switch key {
            case 0:
                guard length % 2 == 0 else { throw DNSFault.malformed("bad mandatory list") }
                var keys: [String] = []
                while v.remaining > 0 { let k = try v.u16("key"); keys.append(svcKeys[k] ?? "key\(k)") }
                parts.append("mandatory=" + keys.joined(separator: ","))
            case 1:
                var ids: [String] = []
                while v.remaining > 0 {
                    let id = try v.take(Int(try v.u8("alpn length")), "alpn id")
                    ids.append(String(quoted(id).dropFirst().dropLast()).replacingOccurrences(of: ",", with: "\\\\,"))
                }
                parts.append("alpn=\"" + ids.joined(separator: ",") + "\"")
            case 2:
                guard length == 0 else { throw DNSFault.malformed("no-default-alpn with a value") }
                parts.append("no-default-alpn")
            case 3:
                guard length == 2 else { throw DNSFault.malformed("bad port") }
                parts.append("port=\(try v.u16("port"))")
            case 4:
                guard length > 0, length % 4 == 0 else { throw DNSFault.malformed("bad ipv4hint") }
                var ips: [String] = []
                while v.remaining > 0 { ips.append(IPAddress(v4: try v.u32("ipv4")).description) }
                parts.append("ipv4hint=" + ips.joined(separator: ","))
            case 6:
                guard length > 0, length % 16 == 0 else { throw DNSFault.malformed("bad ipv6hint") }
                var ips: [String] = []
                while v.remaining > 0 {
                    let b = try v.take(16, "ipv6")
                    var hi: UInt64 = 0, lo: UInt64 = 0
                    for x in b.prefix(8) { hi = hi << 8 | UInt64(x) }
                    for x in b.suffix(8) { lo = lo << 8 | UInt64(x) }
                    ips.append(IPAddress(v6High: hi, low: lo).description)
                }
                parts.append("ipv6hint=" + ips.joined(separator: ","))
            case 5:
                parts.append("ech=" + base64(value[...]))
            default:
                parts.append(value.isEmpty ? keyName : keyName + "=" + quoted(value))
            }
        }
        return parts.joined(separator: " ")
    }

    static func rrsigTime(_ t: UInt32) -> String {
        // YYYYMMDDHHmmSS in UTC (RFC 4034 §3.2), from days since the epoch (civil-from-days).
        let secs = Int64(t)
        let days = secs / 86400, rem = secs % 86400
        let z = days + 719468
        let era = z / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(year)\(two(month))\(two(day))\(two(rem / 3600))\(two(rem % 3600 / 60))\(two(rem % 60))"
    }
}

func hex<C: Collection>(_ bytes: C, upper: Bool = false) -> String where C.Element == UInt8 {
    let digits = Array((upper ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}

func base64<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    let b = Array(bytes)
    var out: [UInt8] = []
    var i = 0
    while i < b.count {
        let n = min(3, b.count - i)
        let v = UInt32(b[i]) << 16 | (n > 1 ? UInt32(b[i + 1]) << 8 : 0) | (n > 2 ? UInt32(b[i + 2]) : 0)
        out.append(table[Int(v >> 18 & 63)])
        out.append(table[Int(v >> 12 & 63)])
        out.append(n > 1 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "="))
        out.append(n > 2 ? table[Int(v & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}

/// Base32 with the extended hex alphabet, no padding (NSEC3 hashes, RFC 5155).
func base32hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let table = Array("0123456789ABCDEFGHIJKLMNOPQRSTUV".utf8)
    var out: [UInt8] = []
    var buffer: UInt64 = 0, bits = 0
    for b in bytes {
        buffer = buffer << 8 | UInt64(b)
        bits += 8
        while bits >= 5 {
            out.append(table[Int(buffer >> UInt64(bits - 5) & 31)])
            bits -= 5
        }
    }
    if bits > 0 { out.append(table[Int(buffer << UInt64(5 - bits) & 31)]) }
    return String(decoding: out, as: UTF8.self)
}

import Foundation  // replacingOccurrences
