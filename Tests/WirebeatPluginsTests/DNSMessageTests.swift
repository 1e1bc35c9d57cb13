import Testing
@testable import WirebeatPlugins
import WirebeatCore

/// RDATA decoding of every supported type, names, compression and malformed messages.
struct DNSMessageTests {
    static func n(_ s: String) -> [UInt8] { DNSBuilder.name(s) }
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// (type, rdata, expected `data`, expected extra fields)
    static let rdataCases: [(UInt16, [UInt8], String, [String: JSONValue])] = [
        (DNSType.A, [192, 0, 2, 1], "192.0.2.1", [:]),
        (DNSType.AAAA, [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1], "2001:db8::1", [:]),
        (DNSType.CNAME, n("web.example.test"), "web.example.test", [:]),
        (DNSType.NS, n("ns1.example.test"), "ns1.example.test", [:]),
        (DNSType.PTR, n("example.test"), "example.test", [:]),
        (DNSType.MX, [0, 10] + n("mail.example.test"), "mail.example.test", ["preference": 10]),
        (DNSType.SOA, n("ns1.example.test") + n("hostmaster.example.test") + [0, 0, 0, 1, 0, 0, 0x1c, 0x20, 0, 0, 3, 0x84,
                                                                            0, 0x12, 0x75, 0, 0, 0, 1, 0x2c],
         "ns1.example.test", ["rname": "hostmaster.example.test", "serial": 1, "refresh": 7200, "retry": 900,
                              "expire": 1_209_600, "minimum": 300]),
        (DNSType.TXT, [5] + b("hello") + [3] + b("a\"b") + [0] + [2, 0xC3, 0xA9],
         "\"hello\" \"a\\\"b\" \"\" \"\\195\\169\"", [:]),
        (DNSType.SRV, [0, 10, 0, 60, 0x13, 0xC4] + n("sip.example.test"), "sip.example.test",
         ["priority": 10, "weight": 60, "port": 5060]),
        (DNSType.CAA, [0, 5] + b("issue") + b("letsencrypt.org"), "0 issue \"letsencrypt.org\"", [:]),
        (DNSType.NAPTR, [0, 100, 0, 10, 1] + b("S") + [7] + b("SIP+D2U") + [0] + n("_sip._udp.example.test"),
         "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.test.", [:]),
        (DNSType.DS, [0x30, 0x39, 13, 2, 0xAB, 0xCD], "12345 13 2 ABCD", [:]),
        (DNSType.DNSKEY, [1, 1, 3, 13, 1, 2, 3], "257 3 13 AQID", [:]),
        (DNSType.RRSIG, [0, 1, 13, 2, 0, 0, 0x0e, 0x10, 0x65, 0x53, 0xf1, 0x00, 0x65, 0x44, 0xae, 0xc0, 0x30, 0x39]
         + n("example.test") + [1, 2, 3],
         "A 13 2 3600 20231114221320 20231103082640 12345 example.test. AQID", [:]),
        (DNSType.NSEC, n("host.example.test") + [0, 6, 0x40, 0x01, 0, 0, 0, 0x03], "host.example.test. A MX RRSIG NSEC", [:]),
        (DNSType.NSEC3, [1, 0, 0, 10, 4, 0xAA, 0xBB, 0xCC, 0xDD, 20] + Array(repeating: 0, count: 20) + [0, 1, 0x40],
         "1 0 10 AABBCCDD 00000000000000000000000000000000 A", [:]),
        (DNSType.SVCB, [0, 1] + n("web.example.test") + [0, 1, 0, 3, 2] + b("h2") + [0, 3, 0, 2, 0x01, 0xBB]
         + [0, 4, 0, 4, 192, 0, 2, 1] + [0, 6, 0, 16, 0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1],
         "1 web.example.test. alpn=\"h2\" port=443 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1", [:]),
        (DNSType.HTTPS, [0, 0, 0], "0 .", [:]),
        (65280, [0x0A, 0, 0, 1], "\\# 4 0A000001", [:]),
        (DNSType.NSEC3PARAM, [1, 0, 0, 0, 0], "1 0 0 -", [:]),
        (DNSType.TLSA, [3, 1, 1, 0xDE, 0xAD], "3 1 1 DEAD", [:]),
    ]

    @Test(arguments: 0..<rdataCases.count)
    func rdataOfEveryType(_ index: Int) throws {
        let (type, rdata, data, fields) = Self.rdataCases[index]
        var m = DNSBuilder(id: 7, flags: 0x8400, counts: (1, 1, 0, 0))
        m.question("example.test", type)
        m.record([0xC0, 12], type, rdata: rdata)
        let message = try DNSMessage.parse(m.bytes)
        #expect(message.faults.isEmpty, "\(message.faults)")
        let answer = try #require(message.answers.first)
        #expect(answer.data.data == data)
        let json = answer.json
        #expect(json.string("type") == DNSType.name(type))
        #expect(json.string("name") == "example.test")
        for (key, value) in fields { #expect(json[key] == value, "\(key)") }
        // Events get the record written straight into bytes: the same text JSONWriter prints.
        var direct: [UInt8] = [], viaTree: [UInt8] = []
        answer.writeJSON(into: &direct)
        JSONWriter.write(json, into: &viaTree, indent: nil, level: 0)
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: viaTree, as: UTF8.self))
        // Events read the RDATA where it is in the message (`RDataView.read`): the same text.
        #expect(message.dataDecodes)
        var inPlace: [UInt8] = []
        message.bytes.withUnsafeBufferPointer { b in
            let rr = DNSMessage.RecordSpan(checkedAt: message.answerSection.start, in: b)
            let view = RDataView.read(b, type: rr.type, start: rr.rdata.lowerBound, end: rr.rdata.upperBound)
                ?? RDataView(answer.data)
            _ = DNSRecord.writeJSON(b, owner: rr.owner, rclass: rr.rclass(in: b), ttl: rr.ttl(in: b), type: rr.type,
                                    data: view, nameAt12: nil, into: &inPlace)
        }
        #expect(String(decoding: inPlace, as: UTF8.self) == String(decoding: direct, as: UTF8.self))
        // Every record also prints as a dig line.
        #expect(answer.digLine.hasPrefix("example.test.\t300\tIN\t\(DNSType.name(type))\t"))
    }

    /// Names that end with a pointer to one of the question name's labels reuse its text
    /// (`DNSName.suffixStart`): the same as walking them, also when that text has escapes.
    @Test(arguments: ["www.example.test", "w\"w.ex\\ample.test", "w w.example.test"])
    func namesPointingIntoTheQuestionReuseItsText(_ question: String) throws {
        var m = DNSBuilder(id: 7, flags: 0x8400, counts: (1, 1, 0, 0))
        m.question(question, DNSType.CNAME)
        let second = 12 + 1 + Int(m.bytes[12])   // the question's second label
        let third = second + 1 + Int(m.bytes[second])
        m.record([0xC0, 12], DNSType.CNAME, rdata: [3] + Self.b("web") + [0xC0, UInt8(second)])
        let message = try DNSMessage.parse(m.bytes)
        #expect(message.faults.isEmpty, "\(message.faults)")
        message.bytes.withUnsafeBufferPointer { b in
            var text12: [UInt8] = []
            DNSName.write(b, at: 12, into: &text12, json: true)
            text12.withUnsafeBufferPointer { text12 in
                let data = DNSMessage.RecordSpan(checkedAt: message.answerSection.start, in: b).rdata.lowerBound
                for (start, target) in [(data, second), (second, second), (third, third), (12, 12)] {
                    var walked: [UInt8] = [], reused: [UInt8] = []
                    DNSName.write(b, at: start, into: &walked, json: true)
                    DNSName.write(b, at: start, into: &reused, json: true, text12: text12)
                    #expect(reused == walked, "\(start)")
                    let plain = !question.contains("\"") && !question.contains("\\") && !question.contains(" ")
                    // The whole text is reused whatever it holds; a part of it only without escapes.
                    #expect((DNSName.suffixStart(of: text12, in: b, at: target) != nil) == (plain || target == 12))
                }
            }
        }
    }

    @Test func mxSoaSrvPrintAsDigDoes() throws {
        var m = DNSBuilder(id: 7, flags: 0x8400, counts: (0, 2, 0, 0))
        m.record("example.test", DNSType.MX, rdata: [0, 10] + Self.n("mail.example.test"))
        m.record("_sip._udp.example.test", DNSType.SRV, rdata: [0, 1, 0, 2, 0, 3] + Self.n("sip.example.test"))
        let message = try DNSMessage.parse(m.bytes)
        #expect(message.answers.map(\.presentationData) == ["10 mail.example.test.", "1 2 3 sip.example.test."])
    }

    @Test func ednsOptions() throws {
        var m = DNSBuilder(id: 9, flags: 0x0100, counts: (1, 0, 0, 1))
        m.question("example.test", DNSType.A)
        let ecs: [UInt8] = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100]
        let cookie: [UInt8] = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]
        let nsid: [UInt8] = [0, 3, 0, 2, 0x6e, 0x73]
        let unknown: [UInt8] = [0xFD, 0xE9, 0, 2, 0xCA, 0xFE]
        m.record([0], DNSType.OPT, ttl: 0x0100_8000, rclass: 1232, rdata: ecs + cookie + nsid + unknown)
        let message = try DNSMessage.parse(m.bytes)
        let edns = try #require(message.edns)
        #expect(edns.udpSize == 1232 && edns.dnssecOK && edns.version == 0 && edns.extendedRcode == 1)
        #expect(message.rcode == 16)
        let options = Dictionary(uniqueKeysWithValues: edns.decodedOptions.map { ($0.key, $0.value ?? .null) })
        #expect(options["ecs"] == "198.51.100.0/24/0")
        #expect(options["cookie"] == "0102030405060708")
        #expect(options["nsid"] == "6e73")
        #expect(options["option_65001"] == "cafe")
        #expect(message.additionals.isEmpty)
        #expect(message.digText.contains("; EDNS: version: 0, flags: do; udp: 1232"))
        #expect(EDNS.clientSubnet([0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0xab, 0xcd]) == "2001:db8:abcd::/48/0")
    }

    /// The table of bytes printed as they are in a name agrees with its definition.
    @Test func plainNameBytes() {
        for b in 0...255 {
            let byte = UInt8(b)
            #expect(DNSName.isPlain(byte) == (byte > 0x20 && byte < 0x7F && !DNSName.isSpecial(byte)), "byte \(b)")
        }
    }

    /// The table of bytes printed as they are in a character-string agrees with its definition.
    @Test func plainStringBytes() {
        for b in 0...255 {
            let byte = UInt8(b)
            let plain = byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
            #expect((RData.escapedBit(byte) == 0) == plain, "byte \(b)")
        }
    }

    /// The flags written from literals are the table's.
    @Test func flagMembersLiterals() {
        let masks: [UInt16] = [0x0010, 0x0020, 0x0080, 0x0100, 0x0200, 0x0400]   // CD AD RA RD TC AA: bits 0…5
        for bits in 0..<128 {
            var flags: UInt16 = 0
            for (i, mask) in masks.enumerated() where bits >> i & 1 != 0 { flags |= mask }
            let h = DNSHeader(id: 0, flags: flags, questionCount: 0, answerCount: 0, authorityCount: 0, additionalCount: 0)
            let table = DNSEncoded.flagMembers(h, dnssecOK: bits & 64 != 0)
            for comma in [false, true] {
                var out: [UInt8] = []
                DNSEncoded.writeFlagMembers(h, dnssecOK: bits & 64 != 0, comma: comma, into: &out)
                #expect(out == (comma ? [UInt8(ascii: ",")] : []) + table, "bits \(bits)")
            }
        }
    }

    /// The plugin writes addresses itself: the text must be `IPAddress.description`'s.
    @Test func addressTextIsTheCoresText() {
        var addresses: [IPAddress] = [IPAddress(v4: 0), IPAddress(v4: 0xFFFF_FFFF), IPAddress(v4: 0x0A00_6401),
                                      IPAddress(v4: 0xC000_0201), IPAddress(v6High: 0, low: 0),
                                      IPAddress(v6High: 0, low: 1), IPAddress(v6High: 0, low: 0x0000_FFFF_C000_0201),
                                      IPAddress(v6High: 0x2001_0DB8_0000_0000, low: 1),
                                      IPAddress(v6High: 0x2001_0DB8_0000_0001, low: 0x0000_0000_0001_0000),
                                      IPAddress(v6High: 0xFE80_0000_0000_0000, low: 0x0202_B3FF_FE1E_8329),
                                      IPAddress(v6High: 0x2001_0DB8_0001_0000, low: 0x0000_0001_0000_0000)]
        // Every pattern of zero and non-zero groups, with values of each width.
        let values: [UInt64] = [0, 0x1, 0xAB, 0xABC, 0xF00D]
        for pattern in 0..<256 {
            var high: UInt64 = 0, low: UInt64 = 0
            for g in 0..<8 {
                let v = pattern >> g & 1 == 0 ? 0 : values[1 + (g + pattern) % 4]
                if g < 4 { high |= v << UInt64(48 - 16 * g) } else { low |= v << UInt64(48 - 16 * (g - 4)) }
            }
            addresses.append(IPAddress(v6High: high, low: low))
        }
        for b in 0...255 { addresses.append(IPAddress(v4: UInt32(b) << 24 | UInt32(b) << 8 | UInt32(255 - b))) }
        for ip in addresses {
            var out: [UInt8] = []
            DNSJSON.quotedIP(ip, into: &out)
            #expect(String(decoding: out, as: UTF8.self) == "\"\(ip.description)\"")
        }
    }

    @Test func namesAreEscapedAsDigDoes() throws {
        var m = DNSBuilder(id: 1, flags: 0x0100, counts: (1, 0, 0, 0))
        m.bytes += [10] + Array("odd name.x".utf8) + [3, 0x5C, 0xFF, 0x22] + Self.n("test")
        m.u16(1); m.u16(1)
        let message = try DNSMessage.parse(m.bytes)
        #expect(message.questions.first?.name.text == "odd\\032name\\.x.\\\\\\255\\\".test")
        #expect(DNSName.root.text == "." && DNSName.root.absolute == ".")
    }

    @Test func compressionPointersAreFollowed() throws {
        var m = DNSBuilder(id: 1, flags: 0x8000, counts: (1, 1, 0, 0))
        m.question("www.example.test", DNSType.CNAME)
        // "web" + pointer to "example.test" inside the question (offset 16).
        m.record([0xC0, 12], DNSType.CNAME, rdata: [3] + Array("web".utf8) + [0xC0, 16])
        let message = try DNSMessage.parse(m.bytes)
        #expect(message.faults.isEmpty)
        #expect(message.answers.first?.data.data == "web.example.test")
        #expect(message.answers.first?.name.text == "www.example.test")
    }

    @Test func pointerLoopsAndForwardPointersAreRejected() throws {
        // A pointer to itself.
        var selfLoop = DNSBuilder(id: 1, flags: 0x0100, counts: (1, 0, 0, 0))
        selfLoop.bytes += [0xC0, 12, 0, 1, 0, 1]
        // Two names pointing at each other: the first points forward.
        var pair = DNSBuilder(id: 1, flags: 0x0100, counts: (2, 0, 0, 0))
        pair.bytes += [1, 0x61, 0xC0, 20, 0, 1, 0, 1] + [1, 0x62, 0xC0, 12, 0, 1, 0, 1]
        for bytes in [selfLoop.bytes, pair.bytes] {
            let message = try DNSMessage.parse(bytes)
            #expect(message.faults.first?.kind == .malformed)
            #expect(message.faults.first?.detail.contains("pointer") == true)
        }
    }

    @Test func pointerChainsAndLongNamesAreBounded() throws {
        // 70 names, each a pointer to the one before: the last needs 70 jumps.
        var m = DNSBuilder(id: 1, flags: 0x0100, counts: (71, 0, 0, 0))
        m.question("a", 1)
        var previous = 12
        for _ in 0..<70 {
            let here = m.bytes.count
            m.bytes += [0xC0 | UInt8(previous >> 8), UInt8(previous & 0xFF), 0, 1, 0, 1]
            previous = here
        }
        let chain = try DNSMessage.parse(m.bytes)
        #expect(chain.faults.first?.detail.contains("more than 64 name pointers") == true)
        #expect(chain.questions.count == 65)

        var long = DNSBuilder(id: 1, flags: 0x0100, counts: (1, 0, 0, 0))
        long.bytes += Array(repeating: [63] + Array(repeating: UInt8(ascii: "x"), count: 63), count: 5).flatMap { $0 } + [0, 0, 1, 0, 1]
        #expect(try DNSMessage.parse(long.bytes).faults.first?.detail.contains("longer than 255") == true)
    }

    @Test func malformedMessagesKeepWhatWasParsed() throws {
        // Counts larger than the message.
        var big = DNSBuilder(id: 5, flags: 0x8180, counts: (1, 40, 0, 0))
        big.question("example.test", 1)
        big.record([0xC0, 12], DNSType.A, rdata: [192, 0, 2, 1])
        let m1 = try DNSMessage.parse(big.bytes)
        #expect(m1.answers.count == 1)
        #expect(m1.faults.first?.kind == .truncated)

        // RDLENGTH past the end.
        var rd = DNSBuilder(id: 5, flags: 0x8180, counts: (1, 1, 0, 0))
        rd.question("example.test", 1)
        rd.bytes += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 200, 1, 2]
        #expect(try DNSMessage.parse(rd.bytes).faults.first?.kind == .truncated)

        // An A record of 3 bytes: the record is kept as hex, with a fault.
        var bad = DNSBuilder(id: 5, flags: 0x8180, counts: (1, 1, 0, 0))
        bad.question("example.test", 1)
        bad.record([0xC0, 12], DNSType.A, rdata: [1, 2, 3])
        let m3 = try DNSMessage.parse(bad.bytes)
        #expect(m3.answers.first?.data.data == "\\# 3 010203")
        #expect(m3.faults.first?.detail.contains("bad RDATA of A") == true)

        // A name inside RDATA running past RDLENGTH.
        var cname = DNSBuilder(id: 5, flags: 0x8180, counts: (1, 1, 0, 0))
        cname.question("example.test", 5)
        cname.bytes += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 3, 5, 0x61, 0x62]
        cname.bytes += [0x63, 0x64, 0x65, 0]
        #expect(try DNSMessage.parse(cname.bytes).faults.isEmpty == false)

        // Shorter than a header.
        #expect(throws: (any Error).self) { try DNSMessage.parse([1, 2, 3]) }
    }
}
