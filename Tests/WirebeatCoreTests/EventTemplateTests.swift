import Testing
@testable import WirebeatCore

/// `EventTemplate`: a template writes the line its event would write, for every value of its
/// holes, the plugin's own fields included (`Hole.value(of:number:)`).
struct EventTemplateTests {
    static let connection = ConnectionInfo(id: 0, transport: .udp, client: Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000),
                                           server: Endpoint(ip: IPAddress("10.0.0.53")!, port: 53), vlans: [7])

    /// The event of one transaction with two plugin fields: `proto.name`, a string, and
    /// `proto.detail`, an object written into the event.
    static func event(start: Timestamp, end: Timestamp, request: Int, response: Int, name: String, items: Int) -> Event {
        var e = Event.transaction(type: "proto", connection: connection, start: start, end: end, status: .ok,
                                  requestBytes: request, responseBytes: response)
        e.set("proto.name", name)
        e.set("proto.detail", writingJSONTo: { out in writeDetail(items, into: &out) })
        return e
    }

    /// The same bytes into an event (`JSONOutput`) and into a template's line (`FieldOutput`).
    static func writeDetail<Out: DetailOutput>(_ items: Int, into out: inout Out) {
        out.append(#"{"items":["#)
        for i in 0..<items {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.writeInt(Int64(i * 1_000_003))
        }
        out.append(#"]}"#)
    }

    static let holes: [EventTemplate.Hole] = [
        .init("@timestamp", .start), .init("event.start", .start), .init("event.end", .end),
        .init("event.duration", .duration), .init("client.bytes", .requestBytes), .init("source.bytes", .requestBytes),
        .init("destination.bytes", .responseBytes), .init("server.bytes", .responseBytes), .init("network.bytes", .bytes),
        .value(of: "proto.name", number: 0), .value(of: "proto.detail", number: 1),
    ]

    static func line(_ e: Event) -> [UInt8] {
        var out: [UInt8] = []
        e.writeCompactJSON(into: &out)
        return out
    }

    /// Times a microsecond to a day apart, byte counts of 0 to 9 digits, names that need
    /// escaping, values of a few bytes to ~90 KB: into an output buffer that starts at its
    /// smallest, so that it grows while a field is written (after the start time was, which
    /// `event.start` copies later in the line).
    @Test func writesTheEventsLines() throws {
        let t0 = Timestamp(seconds: 1_700_000_000, nanoseconds: 123_456_000)
        let prototype = Self.event(start: t0, end: t0 + TimeSpan(nanoseconds: 5_000), request: 44, response: 106,
                                   name: "first", items: 2)
        let values = EventTemplate.Values(start: t0, end: t0 + TimeSpan(nanoseconds: 5_000), requestBytes: 44,
                                          responseBytes: 106)
        let template = try #require(EventTemplate(prototype: prototype, holes: Self.holes, values: values))
        #expect(template.flowIdentity == Self.connection.flowIdentity)
        var rng = SeededRandom(seed: 0x7E3A)
        let waits: [Int64] = [1_000, 42_000, 999_999, 1_000_000_000, 86_400_000_000_000]
        let names = ["a", "quote \" and \\ backslash", "tab\there", "é and 日本", String(repeating: "n", count: 300)]
        for i in 0..<300 {
            let start = t0 + TimeSpan(nanoseconds: Int64(i) * 1_234_567_000)
            let end = start + TimeSpan(nanoseconds: waits[i % waits.count])
            let request = [0, 7, 44, 65_535, 123_456_789][Int.random(in: 0..<5, using: &rng)]
            let response = Int.random(in: 0...2_000_000, using: &rng)
            let name = names[i % names.count] + "\(i)"
            let items = i % 50 == 0 ? 10_000 : Int.random(in: 0..<20, using: &rng)
            let expected = Self.line(Self.event(start: start, end: end, request: request, response: response, name: name,
                                                items: items))
            let out = OutputBuffer(capacity: 64)
            var written: [Int: [UInt8]] = [:]
            var startsEmpty = true
            template.write(EventTemplate.Values(start: start, end: end, requestBytes: Int64(request),
                                                responseBytes: Int64(response)), into: out) { number, value in
                // Offsets are from the start of this field's value (as `JSONOutput`'s).
                startsEmpty = startsEmpty && value.count == 0
                if number == 0 { value.writeString(name) } else { Self.writeDetail(items, into: &value) }
                value.withValueBytes { written[number] = Array($0) }
            }
            let same = Array(out.bytes) == expected   // (not in `#expect`: it would print both lines)
            #expect(same, "line \(i) differs")
            // Each value reads back as what was written into it, and nothing before it.
            var nameJSON: [UInt8] = []
            JSONWriter.writeString(name, into: &nameJSON)
            #expect(startsEmpty, "line \(i)")
            #expect(written.count == 2 && written[0] == nameJSON, "line \(i)")
        }
    }

    /// Text holes (`Kind.text`): the values' text at each, twice in one value and once in
    /// another, of any length (the line's room grows with it); a prototype whose text is not
    /// at a hole makes no template.
    @Test func writesTheTextAtEachTextHole() throws {
        let t0 = Timestamp(seconds: 1_700_000_000)
        func event(_ name: String) -> Event {
            var e = Event.transaction(type: "proto", connection: Self.connection, start: t0, end: t0, status: .ok)
            e.set("proto.pair", "\(name) and \(name)")
            e.set("proto.name", name)
            return e
        }
        let prototype = event("first")
        let holes: [EventTemplate.Hole] = [.init("proto.pair", part: 1..<6, .text), .init("proto.pair", part: 11..<16, .text),
                                           .init("proto.name", part: 1..<6, .text)]
        let template = try "first".utf8CString.withUnsafeBufferPointer { c in
            try c.withMemoryRebound(to: UInt8.self) { text in
                try #require(EventTemplate(prototype: prototype, holes: holes,
                                           values: .init(start: t0, end: t0, text: UnsafeBufferPointer(rebasing: text.dropLast()))))
            }
        }
        for name in ["", "x", "second", String(repeating: "long", count: 2_000)] {
            let out = OutputBuffer(capacity: 16)
            Array(name.utf8).withUnsafeBufferPointer { template.write(.init(start: t0, end: t0, text: $0), into: out) }
            #expect(Array(out.bytes) == Self.line(event(name)), "name of \(name.count) bytes")
        }
        let other = Array("other".utf8)
        other.withUnsafeBufferPointer { text in
            #expect(EventTemplate(prototype: prototype, holes: holes, values: .init(start: t0, end: t0, text: text)) == nil)
        }
    }

    /// A hole whose field the prototype does not have, or values that are not the
    /// prototype's, make no template.
    @Test func refusesWhatItCannotWriteBack() {
        let t0 = Timestamp(seconds: 1_700_000_000)
        let prototype = Self.event(start: t0, end: t0 + TimeSpan(nanoseconds: 5_000), request: 44, response: 106,
                                   name: "first", items: 2)
        let values = EventTemplate.Values(start: t0, end: t0 + TimeSpan(nanoseconds: 5_000), requestBytes: 44,
                                          responseBytes: 106)
        #expect(EventTemplate(prototype: prototype, holes: Self.holes + [.value(of: "proto.absent", number: 2)],
                              values: values) == nil)
        var wrong = values
        wrong.responseBytes = 107
        #expect(EventTemplate(prototype: prototype, holes: Self.holes, values: wrong) == nil)
        #expect(EventTemplate(prototype: prototype, holes: [EventTemplate.Hole("proto.name", part: 0..<1, .field)],
                              values: values) == nil)
    }
}

/// What `writeDetail` needs of a value's output: the calls `JSONOutput` and `FieldOutput` share.
protocol DetailOutput {
    mutating func append(_ text: StaticString)
    mutating func append(_ byte: UInt8)
    mutating func writeInt(_ value: Int64)
}

extension JSONOutput: DetailOutput {}
extension FieldOutput: DetailOutput {}
