import Testing
@testable import WirebeatPlugins
import WirebeatCore

/// Pairing, timeouts, TCP framing and gaps, malformed input and fuzzing of the DNS plugin.
struct DNSPluginTests {
    // MARK: UDP pairing

    @Test func queryAndResponsePair() throws {
        let h = DNSHarness(["send_request": .scalar("true"), "send_response": .scalar("true")])
        h.udp(DNSBuilder.query(id: 1, "example.test", DNSType.A, edns: true), .original)
        h.udp(DNSBuilder.response(id: 1, "example.test", addresses: [[192, 0, 2, 1], [192, 0, 2, 2]]), .reverse)
        let e = try #require(h.events.first)
        #expect(h.events.count == 1)
        #expect(e.string("status") == "OK")
        #expect(e.string("type") == "dns")
        #expect(e.string("dns.question.name") == "example.test")
        #expect(e.string("dns.question.type") == "A")
        #expect(e.string("dns.response_code") == "NOERROR")
        #expect(e.value(at: "dns.resolved_ip") == .array(["192.0.2.1", "192.0.2.2"]))
        #expect(e.value(at: "dns.answers_count") == 2)
        #expect(e.value(at: "dns.flags.authoritative") == true)
        #expect(e.value(at: "dns.query_opt.do") == true)
        #expect(e.string("client.ip") == "10.0.0.1" && e.string("server.ip") == "10.0.0.53")
        #expect(e.string("@timestamp") == e.string("event.start"))
        #expect(e.string("request")?.contains(";example.test.\t\tIN\tA") == true)
        #expect(e.string("response")?.contains("example.test.\t300\tIN\tA\t192.0.2.2") == true)
        #expect(e.value(at: "error") == nil)
    }

    @Test func nxdomainIsAnError() throws {
        let h = DNSHarness()
        h.udp(DNSBuilder.query(id: 2, "nothere.test", DNSType.A), .original)
        h.udp(DNSBuilder.response(id: 2, "nothere.test", addresses: [], rcode: 3), .reverse)
        #expect(h.events.first?.string("dns.response_code") == "NXDOMAIN")
        #expect(h.events.first?.string("status") == "Error")
    }

    @Test func pairingNeedsTheSameIDAndEndpoints() throws {
        let h = DNSHarness()
        h.udp(DNSBuilder.query(id: 3, "a.test", DNSType.A), .original)
        h.udp(DNSBuilder.response(id: 4, "a.test"), .reverse)
        #expect(h.events.count == 1)
        #expect(h.events[0].string("error.message") == "unmatched response; possible packet loss")
        #expect(h.events[0].string("status") == "Error")
        h.plugin.finish(publisher: h.publisher)
        #expect(h.events.count == 2)
        #expect(h.events[1].string("error.message") == "no response; possible packet loss")
        #expect(h.events[1].string("dns.question.name") == "a.test")
        #expect(h.events[1].value(at: "event.end") == nil)
    }

    @Test func unansweredQueryExpiresOnThePacketClock() throws {
        let h = DNSHarness(["transaction_timeout": .scalar("2s")])
        h.udp(DNSBuilder.query(id: 5, "slow.test", DNSType.A), .original)
        h.plugin.advanceClock(to: h.time + .seconds(1), publisher: h.publisher)
        #expect(h.events.isEmpty)
        h.plugin.advanceClock(to: h.time + .seconds(3), publisher: h.publisher)
        #expect(h.events.count == 1)
        #expect(h.events[0].string("error.message")?.hasPrefix("no response") == true)
        // The late response no longer has a query.
        h.udp(DNSBuilder.response(id: 5, "slow.test"), .reverse, after: 3)
        #expect(h.events.count == 2)
        #expect(h.events[1].string("error.message")?.contains("unmatched response") == true)
        h.plugin.finish(publisher: h.publisher)
        #expect(h.events.count == 2)
    }

    @Test func secondQueryWithTheSameIDClosesTheFirst() throws {
        let h = DNSHarness()
        h.udp(DNSBuilder.query(id: 6, "first.test", DNSType.A), .original)
        h.udp(DNSBuilder.query(id: 6, "second.test", DNSType.A), .original)
        #expect(h.events.count == 1)
        #expect(h.events[0].string("dns.question.name") == "first.test")
        #expect(h.events[0].string("error.message") == DNSPlugin.duplicateIDNote)
        h.udp(DNSBuilder.response(id: 6, "second.test"), .reverse)
        #expect(h.events.count == 2)
        #expect(h.events[1].string("dns.question.name") == "second.test")
        #expect(h.events[1].string("status") == "OK")
    }

    @Test func repeatedResponseIsNoted() throws {
        let h = DNSHarness()
        h.udp(DNSBuilder.query(id: 7, "dup.test", DNSType.A), .original)
        h.udp(DNSBuilder.response(id: 7, "dup.test"), .reverse)
        h.udp(DNSBuilder.response(id: 7, "dup.test"), .reverse)
        #expect(h.events.count == 2)
        #expect(h.events[0].string("status") == "OK")
        #expect(h.events[1].string("error.message") == "duplicate response")
    }

    /// A pair answered from the render cache takes its response's fingerprint from the
    /// stored pair: a copy of that response must still read as a duplicate, and another
    /// response with the same key must not.
    @Test func repeatedResponseOfACachedPairIsNoted() throws {
        let h = DNSHarness()
        for id: UInt16 in 1...3 {
            h.udp(DNSBuilder.query(id: id, "cached.test", DNSType.A), .original)
            h.udp(DNSBuilder.response(id: id, "cached.test"), .reverse)
        }
        #expect(h.plugin.rendered?.hits == 1, "the third pair is answered from the cache")
        h.udp(DNSBuilder.response(id: 3, "cached.test"), .reverse)
        h.udp(DNSBuilder.response(id: 3, "cached.test", addresses: [[192, 0, 2, 9]]), .reverse)
        #expect(h.events.count == 5)
        #expect(h.events[2].string("status") == "OK")
        #expect(h.events[3].string("error.message") == "duplicate response")
        #expect(h.events[4].string("error.message")?.hasPrefix("unmatched response") == true)
    }

    @Test func malformedDatagramsArePublishedWithANote() throws {
        let h = DNSHarness()
        h.udp([1, 2, 3], .original)
        #expect(h.events.count == 1)
        #expect(h.events[0].string("error.message")?.contains("shorter than a DNS header") == true)
        // A response cut short (as by a snap length) still pairs, with notes.
        h.udp(DNSBuilder.query(id: 8, "cut.test", DNSType.A), .original)
        let response = DNSBuilder.response(id: 8, "cut.test")
        h.udp(Array(response.prefix(response.count - 3)), .reverse)
        #expect(h.events.count == 2)
        let message = try #require(h.events[1].string("error.message"))
        #expect(message.contains("truncated message") && message.contains("packet loss"))
        #expect(h.events[1].string("dns.question.name") == "cut.test")
    }

    // MARK: TCP

    /// Two queries and their responses, pipelined, on one connection.
    static let clientStream = framed(DNSBuilder.query(id: 10, "one.test", DNSType.A, edns: true))
        + framed(DNSBuilder.query(id: 11, "two.test", DNSType.AAAA))
    static let serverStream = framed(DNSBuilder.response(id: 11, "two.test", addresses: [[192, 0, 2, 2]]))
        + framed(DNSBuilder.response(id: 10, "one.test"))

    /// Feeds both directions in chunks cut at `cuts`, client first.
    static func runTCP(clientCuts: [Int], serverCuts: [Int], gapAt: (Direction, Int, Int)? = nil) -> DNSHarness {
        let h = DNSHarness()
        var state = h.plugin.makeConnectionState(for: h.context(.tcp).connection)
        for (direction, bytes, cuts) in [(Direction.original, clientStream, clientCuts), (.reverse, serverStream, serverCuts)] {
            var stream = StreamBuffer()
            let points = [0] + cuts.filter { $0 > 0 && $0 < bytes.count } + [bytes.count]
            for k in 0..<(points.count - 1) {
                var chunk = Array(bytes[points[k]..<points[k + 1]])
                if let (d, start, length) = gapAt, d == direction, start >= points[k], start < points[k + 1] {
                    let lost = min(length, chunk.count - (start - points[k]))
                    stream.append(contentsOf: chunk[..<(start - points[k])])
                    h.plugin.parse(&stream, direction: direction, state: &state, context: h.context(.tcp))
                    _ = h.plugin.gapInStream(direction: direction, byteCount: lost, stream: &stream, state: &state,
                                             context: h.context(.tcp))
                    chunk = Array(chunk[(start - points[k] + lost)...])
                }
                stream.append(contentsOf: chunk)
                h.plugin.parse(&stream, direction: direction, state: &state, context: h.context(.tcp))
            }
        }
        h.plugin.connectionClosed(reason: .closed, state: &state, context: h.context(.tcp))
        return h
    }

    @Test func tcpFramingSplitAtEveryByte() throws {
        let whole = Self.runTCP(clientCuts: [], serverCuts: []).events
        #expect(whole.count == 2)
        #expect(whole.map { $0.string("dns.question.name") } == ["two.test", "one.test"])
        #expect(whole.allSatisfy { $0.string("status") == "OK" && $0.string("network.transport") == "tcp" })
        for cut in 1..<Self.clientStream.count {
            #expect(Self.runTCP(clientCuts: [cut], serverCuts: []).events == whole, "client cut at \(cut)")
        }
        for cut in 1..<Self.serverStream.count {
            #expect(Self.runTCP(clientCuts: [], serverCuts: [cut]).events == whole, "server cut at \(cut)")
        }
        let bytewise = Self.runTCP(clientCuts: Array(1..<Self.clientStream.count), serverCuts: Array(1..<Self.serverStream.count))
        #expect(bytewise.events == whole)
    }

    @Test func tcpQueryWithoutResponseIsPublishedAtClose() throws {
        let h = DNSHarness()
        var state = h.plugin.makeConnectionState(for: h.context(.tcp).connection)
        var stream = StreamBuffer(framed(DNSBuilder.query(id: 12, "lonely.test", DNSType.A)))
        h.plugin.parse(&stream, direction: .original, state: &state, context: h.context(.tcp))
        #expect(h.events.isEmpty)
        h.plugin.connectionClosed(reason: .timeout, state: &state, context: h.context(.tcp))
        #expect(h.events.count == 1)
        #expect(h.events[0].string("error.message") == "no response")
    }

    /// Every byte of the server stream lost in turn (10 bytes at a time): events equal the
    /// undamaged ones or carry `packet loss`, and framing is found again.
    @Test func tcpGapResynchronises() throws {
        let whole = Self.runTCP(clientCuts: [], serverCuts: []).events
        for start in 0..<Self.serverStream.count {
            let events = Self.runTCP(clientCuts: [], serverCuts: [], gapAt: (.reverse, start, 10)).events
            for e in events where !whole.contains(e) {
                #expect(e.string("error.message")?.contains("packet loss") == true, "gap at \(start): \(e)")
            }
            #expect(events.count <= 2 + 1)
        }
        // Loss inside the first response: the second is still found and paired.
        let events = Self.runTCP(clientCuts: [], serverCuts: [], gapAt: (.reverse, 5, 4)).events
        #expect(events.contains(whole[1]))
        #expect(events.contains { $0.string("dns.question.name") == "two.test" && $0.string("error.message") == "no response; packet loss" })
        // Loss in the client stream: the response to the lost query is unmatched, with a note.
        let lostQuery = Self.runTCP(clientCuts: [], serverCuts: [], gapAt: (.original, 3, 5)).events
        #expect(lostQuery.contains(whole[0]))
        #expect(lostQuery.contains { $0.string("error.message") == "unmatched response; packet loss" })
    }

    @Test func tcpBadFrameLengthResynchronises() throws {
        let h = DNSHarness()
        var state = h.plugin.makeConnectionState(for: h.context(.tcp).connection)
        var stream = StreamBuffer([0, 3, 1, 2, 3, 0xFF] + Self.clientStream)
        h.plugin.parse(&stream, direction: .original, state: &state, context: h.context(.tcp))
        var server = StreamBuffer(Self.serverStream)
        h.plugin.parse(&server, direction: .reverse, state: &state, context: h.context(.tcp))
        #expect(h.events.count == 3)
        #expect(h.events[0].string("error.message")?.contains("bad TCP frame length 3") == true)
        #expect(h.events[1...].allSatisfy { $0.string("status") == "OK" })
    }

    // MARK: rendered values

    /// Writes events as the output does (`LineWriter`): one given as a template from the
    /// template (`EventPublisher.publish(_:_:build:)`), any other from the event.
    final class LineWritingPublisher: EventPublisher {
        var lines: [String] = []
        var fromTemplates = 0
        func publish(_ event: consuming Event) {
            var line: [UInt8] = []
            event.writeCompactJSON(into: &line)
            lines.append(String(decoding: line, as: UTF8.self))
        }
        func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                     fields: (Int, inout FieldOutput) -> Void, build: () -> Event) {
            let out = OutputBuffer()
            template.write(values, into: out, fields: fields)
            lines.append(String(decoding: out.bytes, as: UTF8.self))
            fromTemplates += 1
        }
    }

    /// The same traffic into three plugins: with its caches, without (the reference), and
    /// with its caches into a publisher that writes templates as lines.
    static func threeWays(_ settings: [String: ConfigValue])
        -> (cached: DNSHarness, plain: DNSHarness, templated: DNSHarness, lineWriter: LineWritingPublisher) {
        let cached = DNSHarness(settings), plain = DNSHarness(settings, cachesRenderedValues: false)
        let templated = DNSHarness(settings)
        let lineWriter = LineWritingPublisher()
        templated.sink = lineWriter
        return (cached, plain, templated, lineWriter)
    }

    /// The cached plugin's events and the template lines are the reference's, line for line.
    static func expectSameLines(cached: DNSHarness, plain: DNSHarness, fromTemplates lineWriter: LineWritingPublisher,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        let a = cached.lines, b = plain.lines, c = lineWriter.lines
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        #expect(c.count == b.count, sourceLocation: sourceLocation)
        for (i, (x, y)) in zip(a, b).enumerated() where x != y {
            Issue.record("event \(i) differs:\n\(x)\n\(y)", sourceLocation: sourceLocation)
            break
        }
        for (i, (x, y)) in zip(c, b).enumerated() where x != y {
            Issue.record("event \(i) written from its template differs:\n\(x)\n\(y)", sourceLocation: sourceLocation)
            break
        }
    }

    /// Pairs that differ only in the name asked (`DNSRenderCache`, "Shapes") change no byte
    /// either: every name is new (no exact hit), on three flows, as events and as lines from
    /// the flows' templates, against a plugin without caches. Shapes whose name shows up in
    /// more than the question (an answer's owner, a CNAME to `www.` and the name, an MX
    /// exchange), names of several lengths, NXDOMAIN with an SOA, EDNS, with and without the
    /// optional sections. Pairs that must never be answered from a shape: a pointer to a
    /// suffix of the name (its text is not the name's), a name with a byte printed escaped,
    /// a response whose name differs from the query's in case (DNS 0x20), a response cut short.
    @Test(arguments: [false, true]) func shapesChangeNoByte(optionalSections: Bool) throws {
        let settings: [String: ConfigValue] = optionalSections
            ? ["include_authorities": .scalar("true"), "include_additionals": .scalar("true")] : [:]
        let (cached, plain, templated, lineWriter) = Self.threeWays(settings)
        let pointerTo12: [UInt8] = [0xC0, 12]
        // A response to `name` of family `k`; the query asks `name` (with EDNS for family 3).
        func pair(_ k: Int, _ name: String, id: UInt16) -> ([UInt8], [UInt8]) {
            let query = DNSBuilder.query(id: id, name, k == 6 ? DNSType.MX : DNSType.A, edns: k == 3)
            switch k {
            case 0, 3:   // A answers, owner a pointer to the question
                var m = DNSBuilder(id: id, flags: 0x8580, counts: (1, 2, 1, k == 3 ? 2 : 1))
                m.question(name, DNSType.A)
                m.record(pointerTo12, DNSType.A, rdata: [192, 0, 2, 1])
                m.record(pointerTo12, DNSType.A, rdata: [192, 0, 2, 2])
                m.record("shape.test", DNSType.NS, rdata: DNSBuilder.name("ns1.shape.test"))
                m.record("ns1.shape.test", DNSType.A, rdata: [192, 0, 2, 53])
                if k == 3 { m.record([0], DNSType.OPT, rclass: 1232, rdata: []) }
                return (query, m.bytes)
            case 1:      // CNAME to www.<name>, then its address
                var m = DNSBuilder(id: id, flags: 0x8580, counts: (1, 2, 0, 0))
                m.question(name, DNSType.A)
                m.record(pointerTo12, DNSType.CNAME, rdata: [3] + Array("www".utf8) + pointerTo12)
                m.record([3] + Array("www".utf8) + pointerTo12, DNSType.A, rdata: [192, 0, 2, 9])
                return (query, m.bytes)
            case 2:      // NXDOMAIN, an SOA in the authority
                var m = DNSBuilder(id: id, flags: 0x8583, counts: (1, 0, 1, 0))
                m.question(name, DNSType.A)
                m.record("shape.test", DNSType.SOA, rdata: DNSBuilder.name("ns1.shape.test") + DNSBuilder.name("admin.shape.test")
                         + [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5])
                return (query, m.bytes)
            case 6:      // MX, its exchange the name itself
                var m = DNSBuilder(id: id, flags: 0x8580, counts: (1, 1, 0, 0))
                m.question(name, DNSType.MX)
                m.record(pointerTo12, DNSType.MX, rdata: [0, 10] + pointerTo12)
                return (query, m.bytes)
            case 4:      // never a shape: an answer owned by a pointer to the name's suffix (after its first label)
                var m = DNSBuilder(id: id, flags: 0x8580, counts: (1, 2, 0, 0))
                m.question(name, DNSType.A)
                m.record(pointerTo12, DNSType.A, rdata: [192, 0, 2, 1])
                m.record([0xC0, UInt8(12 + 1 + name.split(separator: ".")[0].utf8.count)], DNSType.A, rdata: [192, 0, 2, 3])
                return (query, m.bytes)
            case 5:      // a plain answer; or never from a shape: its name in other case (0x20), or cut short
                var r = DNSBuilder.response(id: id, name)
                if id % 3 == 0 { r[13] ^= 0x20 } else if id % 3 == 1 { r.removeLast(2) }
                return (query, r)
            default:
                fatalError()
            }
        }
        var rng = SeededRandom(seed: 0x54A9E)
        var serial = 0
        for i in 0..<3000 {
            let k = Int.random(in: 0..<7, using: &rng)
            // New names of one shape: the same labels' lengths, new bytes; names of a few lengths.
            serial += 1
            let digits = [6, 6, 6, 2, 9][i % 5]
            var label = String(serial, radix: 36)
            label = String(repeating: "z", count: max(0, digits - label.count)) + label
            // (The second label too: a pointer to the name's suffix must not find one text.)
            let name = (k == 5 && i % 4 == 0 ? "sp ce" : "h") + label + ".v" + label + ".shape.test"
            let (q, r) = pair(k, name, id: UInt16(truncatingIfNeeded: i &* 7919))
            let port = UInt16(40000 + i % 3)
            for h in [cached, plain, templated] {
                h.client = Endpoint(ip: h.client.ip, port: port)
                h.udp(q, .original)
                h.udp(r, .reverse, after: [0.000003, 0.0004, 0.02][i % 3])
            }
        }
        for h in [cached, plain, templated] { h.plugin.finish(publisher: h.sink ?? h.publisher) }
        Self.expectSameLines(cached: cached, plain: plain, fromTemplates: lineWriter)
        let shapes = try #require(cached.plugin.shapes)
        // Most answers of the five families that have shapes, from them, without a parse.
        #expect(shapes.unparsedAnswers > 1500)
        #expect(lineWriter.fromTemplates > 1000)
        // Shapes asked often on a flow get a template of their own (their name a text hole).
        #expect(try #require(templated.plugin.answerTemplates).made >= 3)
        #expect(try #require(cached.plugin.rendered).hits == 0)

        // The families that must have none, alone: nothing stored.
        let never = DNSHarness(settings)
        for i in 0..<400 {
            let k = [4, 5][i % 2]
            let label = String(100_000 + i)
            // (Family 5: by the ID, a response in other case, one cut short, or a name with a space.)
            let id = UInt16(k == 5 ? 3 * i + (i / 2) % 3 : i)
            let (q, r) = pair(k, (id % 3 == 2 ? "sp ce" : "h") + label + ".v" + label + ".shape.test", id: id)
            never.udp(q, .original)
            never.udp(r, .reverse)
        }
        #expect(try #require(never.plugin.shapes).stores == 0)
        #expect(try #require(never.plugin.shapes).hits == 0)
    }

    /// A flow's plain answers written from its template (`DNSEvents.publishAnswer`) are the
    /// lines their events write: names of every length (so every size of message), answers
    /// of status OK and Error (a template each), one to three addresses, waits of a
    /// microsecond to a minute, IDs of one to five digits, client addresses of two lengths,
    /// with and without the optional sections. A flow whose answers stop short of the sightings makes none.
    @Test(arguments: [false, true]) func flowTemplatesWriteTheEventsLines(optionalSections: Bool) throws {
        let settings: [String: ConfigValue] = optionalSections
            ? ["include_authorities": .scalar("true"), "include_additionals": .scalar("true")] : [:]
        let plain = DNSHarness(settings, cachesRenderedValues: false), templated = DNSHarness(settings)
        let lineWriter = LineWritingPublisher()
        templated.sink = lineWriter
        var rng = SeededRandom(seed: 0xF10E)
        let waits: [Double] = [0.000001, 0.000042, 0.0009, 0.0123, 0.25, 61]
        let short = Int(DNSEvents.flowTemplateSightings) - 1
        // Port 40000: many answers; 40001: one short of a template; 40002: many, from a v6 address.
        for (port, count, v6) in [(UInt16(40000), 600, false), (40001, short, false), (40002, 400, true)] {
            for i in 0..<count {
                let id = UInt16.random(in: [0...9, 10...999, 1_000...65_535][i % 3], using: &rng)
                let name = String(repeating: "n", count: 1 + i % 40) + "\(i).example.test"
                let addresses = (0..<(1 + i % 3)).map { k in [192, 0, 2, UInt8(k)] }
                let rcode: UInt16 = i % 5 == 0 ? 3 : 0
                for h in [plain, templated] {
                    h.client = Endpoint(ip: IPAddress(v6 ? "2001:db8::1" : "10.0.0.1")!, port: port)
                    h.udp(DNSBuilder.query(id: id, name, DNSType.A), .original)
                    h.udp(DNSBuilder.response(id: id, name, addresses: rcode == 0 ? addresses : [], rcode: rcode), .reverse,
                          after: waits[i % waits.count])
                }
            }
        }
        let expected = plain.lines, got = lineWriter.lines
        #expect(got.count == expected.count)
        for (i, (x, y)) in zip(got, expected).enumerated() where x != y {
            Issue.record("event \(i) written from its flow's template differs:\n\(x)\n\(y)")
            break
        }
        // OK and Error on the two long flows, none on the short one.
        let templates = try #require(templated.plugin.flowTemplates)
        #expect(templates.made == 4)
        // All but the answers before each template (and the odd one the render cache has).
        #expect(lineWriter.fromTemplates >= 600 + 400 - 4 * Int(DNSEvents.flowTemplateSightings) - 8)
    }

    /// The cache of rendered values (`DNSRenderCache`) changes no byte: the same traffic
    /// through a plugin without it gives the same events, and so do the answers an output
    /// writes from their templates (`DNSAnswerTemplates`: of a cached pair, or of a flow's
    /// plain answers, whose DNS values are written into them). Pairs come back with other IDs
    /// (hits), copies with one byte changed (which must not hit), queries and responses
    /// alone, over UDP on three flows and TCP, with and without the optional sections, with
    /// IDs of one to five digits and answers after a microsecond to over a minute.
    @Test(arguments: [false, true]) func renderCacheChangesNoByte(optionalSections: Bool) throws {
        let settings: [String: ConfigValue] = optionalSections
            ? ["include_authorities": .scalar("true"), "include_additionals": .scalar("true")] : [:]
        let (cached, plain, templated, lineWriter) = Self.threeWays(settings)
        var pairs: [([UInt8], [UInt8])] = [
            (DNSBuilder.query(id: 0, "example.test", DNSType.A, edns: true),
             DNSBuilder.response(id: 0, "example.test", addresses: [[192, 0, 2, 1], [192, 0, 2, 2]])),
            (DNSBuilder.query(id: 0, "example.test", DNSType.A),
             DNSBuilder.response(id: 0, "example.test")),
            (DNSBuilder.query(id: 0, "nothere.test", DNSType.A),
             DNSBuilder.response(id: 0, "nothere.test", addresses: [], rcode: 3)),
        ]
        // Responses that repeat with a fault (bytes after the last record; cut short) or an
        // RCODE only EDNS gives (BADVERS, 16): a hit must not skip what their parse says.
        let answer = DNSBuilder.response(id: 0, "example.test")
        pairs.append((DNSBuilder.query(id: 0, "example.test", DNSType.A), answer + [1, 2, 3]))
        pairs.append((DNSBuilder.query(id: 0, "example.test", DNSType.A), Array(answer.dropLast(2))))
        var badVersion = DNSBuilder(id: 0, flags: 0x8400, counts: (1, 0, 0, 1))
        badVersion.question("example.test", DNSType.A)
        badVersion.record([0], DNSType.OPT, ttl: 0x0100_0000, rclass: 1232, rdata: [])
        pairs.append((DNSBuilder.query(id: 0, "example.test", DNSType.A, edns: true), badVersion.bytes))
        for (type, rdata, _, _) in DNSMessageTests.rdataCases {
            var m = DNSBuilder(id: 0, flags: 0x8400, counts: (1, 1, 1, 1))
            m.question("example.test", type)
            m.record([0xC0, 12], type, rdata: rdata)
            m.record("test", DNSType.NS, rdata: DNSBuilder.name("ns.test"))
            m.record([0], DNSType.OPT, rclass: 1232, rdata: [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100])
            pairs.append((DNSBuilder.query(id: 0, "example.test", type), m.bytes))
        }
        func withID(_ m: [UInt8], _ id: UInt16) -> [UInt8] {
            var m = m
            m[0] = UInt8(id >> 8)
            m[1] = UInt8(id & 0xFF)
            return m
        }
        var rng = SeededRandom(seed: 0xCAC4E)
        // First names never seen again: past `idleLookups` of them the cache looks up one
        // event in `idleSampling`, and must find the repeated pairs after them all the same.
        let unique = DNSRenderCache.idleLookups + 500
        for i in 0..<unique {
            let id = UInt16(i)
            for h in [cached, plain, templated] {
                h.udp(DNSBuilder.query(id: id, "u\(i).test", DNSType.A), .original)
                h.udp(DNSBuilder.response(id: id, "u\(i).test"), .reverse)
            }
        }
        let ids: [ClosedRange<UInt16>] = [0...9, 10...99, 100...999, 1_000...9_999, 10_000...65_535]
        let waits: [Double] = [0.000001, 0.000042, 0.0009, 0.0123, 0.25, 0.999999, 1.5, 61]
        var clientStream: [UInt8] = [], serverStream: [UInt8] = []
        for i in unique..<unique + 4000 {
            let id = i % 2 == 0 ? UInt16(i) : UInt16.random(in: ids[Int.random(in: 0..<ids.count, using: &rng)], using: &rng)
            let wait = waits[Int.random(in: 0..<waits.count, using: &rng)]
            // Three busy flows, and 61 that come now and then: a rare flow's lookup lands,
            // every hundred or so, in a set holding a busy flow's template of the same pair,
            // which it must not take.
            let port = UInt16(40000 + (Int.random(in: 0..<4, using: &rng) == 0 ? Int.random(in: 3..<64, using: &rng)
                                                                                : Int.random(in: 0..<3, using: &rng)))
            var (q, r) = pairs[Int.random(in: 0..<pairs.count, using: &rng)]
            q = withID(q, id)
            r = withID(r, id)
            if Int.random(in: 0..<4, using: &rng) == 0 {
                // A byte changed after the ID: another message, the same length.
                let k = Int.random(in: 2..<r.count, using: &rng)
                r[k] = r[k] &+ UInt8.random(in: 1...255, using: &rng)
            }
            let shape = Int.random(in: 0..<10, using: &rng)
            for h in [cached, plain, templated] {
                h.client = Endpoint(ip: h.client.ip, port: port)
                if shape != 0 { h.udp(q, .original) }
                if shape != 1 { h.udp(r, .reverse, after: wait) }
            }
            if i % 4 == 0 {
                clientStream += framed(q)
                serverStream += framed(r)
            }
        }
        for h in [cached, plain, templated] {
            var state = h.plugin.makeConnectionState(for: h.context(.tcp).connection)
            var client = StreamBuffer(), server = StreamBuffer()
            client.append(contentsOf: clientStream)
            server.append(contentsOf: serverStream)
            h.plugin.parse(&client, direction: .original, state: &state, context: h.context(.tcp))
            h.plugin.parse(&server, direction: .reverse, state: &state, context: h.context(.tcp))
            h.plugin.connectionClosed(reason: .endOfInput, state: &state, context: h.context(.tcp))
            h.plugin.finish(publisher: h.sink ?? h.publisher)
        }
        #expect(cached.publisher.events.count > unique + 4000)
        Self.expectSameLines(cached: cached, plain: plain, fromTemplates: lineWriter)
        // Most cached answers written from templates (those of a pair and flow seen twice),
        // and most other plain answers from their flow's (`DNSEvents.publishAnswer`).
        #expect(lineWriter.fromTemplates > 500)
        #expect(templated.plugin.answerTemplates?.made ?? 0 > 10)
        #expect(templated.plugin.flowTemplates?.made ?? 0 >= 2)
        #expect(templated.plugin.flowTemplates?.used ?? 0 > DNSRenderCache.idleLookups)
        let cache = try #require(cached.plugin.rendered)
        // Most events are of a pair seen before.
        #expect(cache.hits > 1000)
        #expect(cache.stores >= pairs.count)
        // Most UDP ones without a parse of their response (`DNSEvents.cachedAnswer`).
        #expect(cache.unparsedAnswers > 500)
        #expect(plain.plugin.rendered == nil)
    }

    /// A name that points into the ID (crafted) reads the ID's bytes: such messages are not
    /// stored, or a copy with another ID would print the first one's name.
    /// Writes each event and drops it, as the output does, and counts whether its storage
    /// went back to this thread's pool (`Event.discard`): it does only if the plugin kept no
    /// other reference to the event.
    final class DiscardingPublisher: EventPublisher {
        var recycled = 0, kept = 0
        func publish(_ event: consuming Event) {
            var line: [UInt8] = []
            event.writeCompactJSON(into: &line)
            if event.discard() { recycled += 1 } else { kept += 1 }
        }
    }

    @Test func publishedEventsKeepNoSecondReference() throws {
        // Every way a UDP pair is published: parsed, from the render cache's stored pair,
        // and the cached response not parsed at all (`DNSEvents.cachedAnswer`).
        let h = DNSHarness()
        let sink = DiscardingPublisher()
        h.sink = sink
        for i in 0..<40 {
            let id = UInt16(i % 3)
            h.udp(DNSBuilder.query(id: id, "repeat.example", DNSType.A), .original)
            h.udp(DNSBuilder.response(id: id, "repeat.example"), .reverse)
        }
        h.plugin.finish(publisher: sink)
        #expect(sink.recycled + sink.kept == 40)
        #expect(sink.kept == 0)
        let cache = try #require(h.plugin.rendered)
        #expect(cache.unparsedAnswers > 30)
    }

    /// Two frequent pairs whose hashes pick the same set both stay (two ways a set).
    /// Direct-mapped, they evicted each other: every other lookup missed.
    @Test func renderCacheKeepsTwoPairsOfOneSet() throws {
        let qa = DNSBuilder.query(id: 1, "a.example", DNSType.A), ra = DNSBuilder.response(id: 1, "a.example")
        let qb = DNSBuilder.query(id: 1, "b.example", DNSType.A), rb = DNSBuilder.response(id: 1, "b.example")
        let flags = DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true)
        func hash(_ q: [UInt8], _ r: [UInt8], _ seed: UInt64) -> UInt64 {
            q.withUnsafeBufferPointer { q in
                r.withUnsafeBufferPointer { r in DNSRenderCache.hash(query: q, response: r, flags: flags, seed: seed) }
            }
        }
        let seeds: ClosedRange<UInt64> = 1...100_000
        let seed = try #require(seeds.first { DNSRenderCache.set(of: hash(qa, ra, $0)) == DNSRenderCache.set(of: hash(qb, rb, $0)) })
        let cache = DNSRenderCache(seed: seed)
        let text = Array("{}".utf8)
        func see(_ q: [UInt8], _ r: [UInt8]) -> Bool {
            q.withUnsafeBufferPointer { q in
                r.withUnsafeBufferPointer { r in
                    let probe = cache.probe(query: q, response: r, flags: flags)
                    if probe.store {
                        cache.begin(probe, query: q, response: r, flags: flags, faultlessAnswer: true, rcodeIsZero: true)
                        text.withUnsafeBufferPointer { t in
                            cache.add(.beforeID, t)
                            cache.add(.afterID, t)
                            cache.add(.method, t)
                        }
                        cache.finish()
                    }
                    return probe.hit
                }
            }
        }
        // Each stored at its second sighting in a row, then asked for in turn.
        for (q, r) in [(qa, ra), (qa, ra), (qb, rb), (qb, rb)] { _ = see(q, r) }
        var hits = 0
        for i in 0..<100 where i % 2 == 0 ? see(qa, ra) : see(qb, rb) { hits += 1 }
        #expect(hits == 100)
        #expect(cache.stores == 2)
    }

    @Test func renderCacheLeavesNamesPointingIntoTheIDAlone() throws {
        let cached = DNSHarness(), plain = DNSHarness(cachesRenderedValues: false)
        for target: UInt8 in [0, 1] {
            var r = DNSBuilder(id: 0, flags: 0x8400, counts: (1, 1, 0, 0))
            r.question("example.test", DNSType.A)
            r.record([0xC0, target], DNSType.A, rdata: [192, 0, 2, 1])
            // IDs whose first or second byte is 0 make the owner the root; others, labels or faults.
            for id: UInt16 in [0x0000, 0x0000, 0x0000, 0x0100, 0x0001, 0x0000, 0x4100, 0x0000] {
                var m = r.bytes
                m[0] = UInt8(id >> 8)
                m[1] = UInt8(id & 0xFF)
                for h in [cached, plain] { h.udp(m, .reverse) }
            }
        }
        #expect(cached.lines == plain.lines)
        // The ID does change what is printed (else this would test nothing).
        let printed = Set(plain.events.map { "\(String(describing: $0.value(at: "dns.answers")))\($0.string("error.message") ?? "")" })
        #expect(printed.count >= 2)
        #expect(cached.plugin.rendered?.stores == 0)
        // Bytes that only look like such a pointer (the address 192.0.2.1 is C0 00 02 01)
        // leave the pair cached.
        let control = DNSHarness()
        for id: UInt16 in [1, 2, 3] {
            control.udp(DNSBuilder.query(id: id, "example.test", DNSType.A), .original)
            control.udp(DNSBuilder.response(id: id, "example.test", addresses: [[192, 0, 2, 1]]), .reverse)
        }
        #expect(control.plugin.rendered?.hits == 1)
    }

    // MARK: fuzz

    /// Thousands of random and mutated messages through the parser and both transports:
    /// no crash, no hang, and every datagram gives at most a bounded number of events.
    @Test func fuzz() throws {
        var rng = SeededRandom(seed: 0xD15EA5E)
        var seeds: [[UInt8]] = [DNSBuilder.query(id: 1, "example.test", DNSType.A, edns: true),
                                DNSBuilder.response(id: 1, "example.test", addresses: [[1, 2, 3, 4], [5, 6, 7, 8]])]
        for (type, rdata, _, _) in DNSMessageTests.rdataCases {
            var m = DNSBuilder(id: 2, flags: 0x8400, counts: (1, 1, 0, 1))
            m.question("example.test", type)
            m.record([0xC0, 12], type, rdata: rdata)
            m.record([0], DNSType.OPT, rclass: 1232, rdata: [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100])
            seeds.append(m.bytes)
        }
        let h = DNSHarness()
        var tcpState = h.plugin.makeConnectionState(for: h.context(.tcp).connection)
        var tcpStream = StreamBuffer()
        for i in 0..<6000 {
            var bytes: [UInt8]
            if i % 5 == 0 {
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1 where !bytes.isEmpty: bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
                    case 2: bytes.insert(contentsOf: [0xC0, UInt8.random(in: 0...255, using: &rng)],
                                         at: Int.random(in: 0...bytes.count, using: &rng))
                    default: if bytes.count > 12 { bytes[Int.random(in: 4..<12, using: &rng)] = 0xFF }
                    }
                }
            }
            _ = try? DNSMessage.parse(bytes)
            let before = h.publisher.events.count
            h.udp(bytes, Bool.random(using: &rng) ? .original : .reverse)
            #expect(h.publisher.events.count - before <= 2)
            tcpStream.append(contentsOf: i % 7 == 0 ? bytes : framed(bytes))
            h.plugin.parse(&tcpStream, direction: Bool.random(using: &rng) ? .original : .reverse, state: &tcpState,
                           context: h.context(.tcp))
            if i % 500 == 0 {
                _ = h.plugin.gapInStream(direction: .original, byteCount: 3, stream: &tcpStream, state: &tcpState, context: h.context(.tcp))
            }
        }
        h.plugin.finish(publisher: h.publisher)
        h.plugin.connectionClosed(reason: .endOfInput, state: &tcpState, context: h.context(.tcp))
        // Every event is valid JSON with a type.
        #expect(h.events.allSatisfy { $0.string("type") == "dns" })
    }
}
