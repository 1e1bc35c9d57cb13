import WirebeatCore

/// EDNS options as event fields (`dns.opt.*`) and as dig prints them.
extension EDNS {
    /// (field suffix under `dns.opt.`, value — nil for an empty option whose value is a
    /// number, dig label, dig text), in message order.
    var decodedOptions: [(key: String, value: JSONValue?, label: String, text: String)] {
        options.map { option in
            let d = option.data
            switch option.code {
            case 3:
                return ("nsid", d.isEmpty ? nil : .string(hex(d)), "NSID", hex(d))
            case 5, 6, 7:
                let key = ["dau", "dhu", "n3u"][Int(option.code) - 5]
                let list = d.map(String.init).joined(separator: " ")
                return (key, .string(list), key.uppercased(), list)
            case 8:
                let text = EDNS.clientSubnet(d) ?? hex(d)
                return ("ecs", .string(text), "CLIENT-SUBNET", text)
            case 9:
                if d.count == 4 {
                    let v = Int64(d[0]) << 24 | Int64(d[1]) << 16 | Int64(d[2]) << 8 | Int64(d[3])
                    return ("expire", .int(v), "EXPIRE", String(v))
                }
                return ("expire", d.isEmpty ? nil : .string(hex(d)), "EXPIRE", hex(d))
            case 10:
                return ("cookie", .string(hex(d)), "COOKIE", hex(d))
            case 11:
                if d.count == 2 {
                    let v = Int64(d[0]) << 8 | Int64(d[1])
                    return ("tcp_keepalive", .int(v), "TCP-KEEPALIVE", String(v))
                }
                return ("tcp_keepalive", d.isEmpty ? nil : .string(hex(d)), "TCP-KEEPALIVE", hex(d))
            case 12:
                return ("padding", .int(Int64(d.count)), "PADDING", "\(d.count) bytes")
            case 15:
                guard d.count >= 2 else { return ("ede", .string(hex(d)), "EDE", hex(d)) }
                let code = Int(d[0]) << 8 | Int(d[1])
                let extra = d.count > 2 ? " " + RData.quoted(d.dropFirst(2)) : ""
                return ("ede", .string("\(code)\(extra)"), "EDE", "\(code)\(extra)")
            default:
                return ("option_\(option.code)", .string(hex(d)), "OPT=\(option.code)", hex(d))
            }
        }
    }

    /// `address/source/scope` of an EDNS Client Subnet option (RFC 7871).
    static func clientSubnet(_ d: [UInt8]) -> String? {
        guard d.count >= 4 else { return nil }
        let family = Int(d[0]) << 8 | Int(d[1])
        let source = Int(d[2]), scope = Int(d[3])
        let address = Array(d[4...])
        switch family {
        case 1:
            guard address.count <= 4 else { return nil }
            let b = address + Array(repeating: 0, count: 4 - address.count)
            return "\(b[0]).\(b[1]).\(b[2]).\(b[3])/\(source)/\(scope)"
        case 2:
            guard address.count <= 16 else { return nil }
            let b = address + Array(repeating: 0, count: 16 - address.count)
            var hi: UInt64 = 0, lo: UInt64 = 0
            for x in b.prefix(8) { hi = hi << 8 | UInt64(x) }
            for x in b.suffix(8) { lo = lo << 8 | UInt64(x) }
            return "\(IPAddress(v6High: hi, low: lo))/\(source)/\(scope)"
        default:
            return nil
        }
    }
}

extension DNSMessage {
    /// Header flag mnemonics in dig's order.
    var flagNames: [String] {
        let h = header
        return [(h.isResponse, "qr"), (h.authoritative, "aa"), (h.truncated, "tc"), (h.recursionDesired, "rd"),
                (h.recursionAvailable, "ra"), (h.authenticData, "ad"), (h.checkingDisabled, "cd")]
            .filter(\.0).map(\.1)
    }

    /// The message as dig prints it (`send_request` / `send_response`).
    var digText: String {
        var lines: [String] = []
        lines.append(";; ->>HEADER<<- opcode: \(DNSCodes.opcode(header.opcode)), status: \(DNSCodes.rcode(rcode)), id: \(header.id)")
        lines.append(";; flags: \(flagNames.joined(separator: " ")); QUERY: \(header.questionCount), ANSWER: \(header.answerCount), "
                     + "AUTHORITY: \(header.authorityCount), ADDITIONAL: \(header.additionalCount)")
        if let edns {
            lines.append("")
            lines.append(";; OPT PSEUDOSECTION:")
            lines.append("; EDNS: version: \(edns.version), flags:\(edns.dnssecOK ? " do" : ""); udp: \(edns.udpSize)")
            for option in edns.decodedOptions { lines.append("; \(option.label): \(option.text)") }
        }
        if !questions.isEmpty {
            lines.append("")
            lines.append(";; QUESTION SECTION:")
            for q in questions { lines.append(";\(q.name.absolute)\t\t\(DNSClass.name(q.qclass))\t\(DNSType.name(q.type))") }
        }
        for (title, records) in [("ANSWER", answers), ("AUTHORITY", authorities), ("ADDITIONAL", additionals)] where !records.isEmpty {
            lines.append("")
            lines.append(";; \(title) SECTION:")
            for rr in records { lines.append(rr.digLine) }
        }
        for fault in faults {
            lines.append("")
            lines.append(";; \(fault)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension DNSRecord {
    var digLine: String {
        "\(name.absolute)\t\(ttl)\t\(DNSClass.name(rclass))\t\(DNSType.name(type))\t\(presentationData)"
    }

    var presentationData: String {
        switch data {
        // Structured in events; dig prints the whole RDATA.
        case let .mx(preference, host):
            return "\(preference) \(host.absolute)"
        case let .srv(priority, weight, port, target):
            return "\(priority) \(weight) \(port) \(target.absolute)"
        case let .soa(mname, rname, serial, refresh, retry, expire, minimum):
            return "\(mname.absolute) \(rname.absolute) \(serial) \(refresh) \(retry) \(expire) \(minimum)"
        default:
            return data.presentation
        }
    }

    /// `{name, type, class, ttl, data, ...}` as in `dns.answers`.
    var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("name", .string(name.text)), ("type", .string(DNSType.name(type))), ("class", .string(DNSClass.name(rclass))),
            ("ttl", .int(Int64(ttl))), ("data", .string(data.data)),
        ]
        pairs += data.fields
        return .object(pairs.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) })
    }
}

/// Classes of bytes as DNS text prints them, by table: 0 when the byte is printed as it is,
/// 1 when it is escaped. One literal of "0" and "1" characters, 256 a class, read with no
/// lazy initialisation (a `static let` table costs a `swift_once` check a byte).
enum DNSByteClasses {
    enum Class: Int {
        /// In a name: printable ASCII other than `DNSName.isSpecial`.
        case notPlainInName = 0
        /// In a character-string: printable ASCII other than `"` and `\`.
        case escapedInText = 256
    }

    @inline(__always) static func bit(_ b: UInt8, of c: Class) -> UInt8 {
        let tables: StaticString = """
            1111111111111111111111111111111110101000110000100000000000010000\
            1000000000000000000000000000100000000000000000000000000000000001\
            1111111111111111111111111111111111111111111111111111111111111111\
            1111111111111111111111111111111111111111111111111111111111111111\
            1111111111111111111111111111111100100000000000000000000000000000\
            0000000000000000000000000000100000000000000000000000000000000001\
            1111111111111111111111111111111111111111111111111111111111111111\
            1111111111111111111111111111111111111111111111111111111111111111
            """
        return tables.utf8Start[c.rawValue &+ Int(b)] & 1
    }
}
