import Testing
import WirebeatCore
@testable import WirebeatPlugins

// The plugin's own fast paths against what they stand for.

@Test func verbsRecognisedInAnyCase() {
    for verb in Verb.allCases where verb != .other {
        for text in [verb.name, verb.name.lowercased(), String(verb.name.prefix(1)) + verb.name.dropFirst().lowercased()] {
            #expect(Array(text.utf8).withUnsafeBufferPointer { Verb($0) } == verb, "\(text)")
        }
    }
    for text in ["", "MAI", "MAILS", "XXXX", "HEL0", "MAIL:", "M@IL", "mail\u{0}", "STARTTLX", "STARTTLSS", "\u{e9}HLO"] {
        #expect(Array(text.utf8).withUnsafeBufferPointer { Verb($0) } == .other, "\(text)")
    }
}

/// The literals events get for verbs and types are the JSON strings of the names.
@Test func verbAndTypeLiteralsAreTheirNamesInJSON() {
    func text(_ s: StaticString) -> [UInt8] { Array(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
    for verb in Verb.allCases {
        #expect(text(verb.json) == SMTPJSON.quoted(verb.name), "\(verb)")
    }
    for (literal, name) in [(SMTPJSON.prompt, "PROMPT"), (SMTPJSON.command, "COMMAND"), (SMTPJSON.mail, "MAIL"),
                            (SMTPJSON.aborted, "ABORTED")] {
        #expect(text(literal) == SMTPJSON.quoted(name))
    }
    // And `type` set from a literal is the event's type, as from an array.
    var e = Event()
    e.set("type", encodedJSON: "\"smtp\"" as StaticString)
    #expect(e.type == "smtp")
}

/// Byte strings of every length up to 40, each with a byte of interest (escaped, non-ASCII,
/// or just past such a class) at each position, and the plain ones.
private func escapeCases() -> [[UInt8]] {
    let special: [UInt8] = [0x00, 0x0a, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xa2, 0xc3, 0xdc, 0xff]
    var cases: [[UInt8]] = []
    for n in 0...40 {
        let plain = (0..<n).map { UInt8(0x61 + $0 % 26) }
        cases.append(plain)
        for i in 0..<n {
            for b in special {
                var c = plain
                c[i] = b
                cases.append(c)
            }
        }
    }
    cases.append(Array("caf\u{e9} \u{1F600}".utf8))
    return cases
}

@Test func jsonStringFastPathMatchesTheCoreWriter() {
    for bytes in escapeCases() {
        var core: [UInt8] = [], ours: [UInt8] = []
        bytes.withUnsafeBufferPointer {
            JSONWriter.writeUTF8String($0, into: &core)
            SMTPJSON.string($0, into: &ours)
        }
        #expect(ours == core, "\(bytes)")

        var viaCore = Event(), viaOutput = Event()
        viaCore.set("v", utf8: bytes)
        viaOutput.set("v", writingJSONTo: { out in bytes.withUnsafeBufferPointer { SMTPJSON.string($0, into: &out) } })
        var a: [UInt8] = [], b: [UInt8] = []
        viaCore.writeCompactJSON(into: &a)
        viaOutput.writeCompactJSON(into: &b)
        #expect(a == b, "\(bytes)")
    }
}

/// Mail after mail, a session reuses the text of repeated MAIL/RCPT arguments and header
/// values: each mail must come out as it does alone in a fresh session.
@Test func repeatedArgumentsAndHeadersAsInAFreshSession() {
    func mail(from: String, rcpts: [(String, String)], headers: String) -> [Step] {
        var steps: [Step] = [.client("MAIL FROM:<\(from)> SIZE=10\r\n"), .server("250 OK\r\n")]
        for (rcpt, reply) in rcpts { steps += [.client("RCPT TO:<\(rcpt)>\r\n"), .server("\(reply)\r\n")] }
        return steps + [.client("DATA\r\n"), .server("354 Go ahead\r\n"), .client(headers + "\r\nbody\r\n.\r\n"),
                        .server("250 OK\r\n")]
    }
    let a = mail(from: "a@x.example", rcpts: [("b@x.example", "250 OK")],
                 headers: "From: a@x.example\r\nTo: b@x.example\r\nSubject: one\r\n")
    let b = mail(from: "a@x.example", rcpts: [("b@x.example", "250 OK"), ("c@x.example", "250 OK"), ("b@x.example", "550 No")],
                 headers: "From: a@x.example\r\nTo: <>\r\nCc: \"C, D\" <c@x.example>, d@x.example\r\n")
    let c = mail(from: "e@x.example", rcpts: [("c@x.example", "550 No"), ("b@x.example", "250 OK")],
                 headers: "From: Eve <e@x.example>\r\nTo: b@x.example\r\nCc: \"C, D\" <c@x.example>, d@x.example\r\n")
    let mails = [a, b, a, c, b, a, b, b, c, a, a]
    let fields = ["smtp.mail_from", "smtp.rcpt_to", "smtp.rcpt_rejected", "email.from.address", "email.to.address",
                  "email.cc.address", "email.subject"]
    func envelope(_ events: [Event]) -> [[String: JSONValue]] {
        events.filter { $0.smtpType == "MAIL" || $0.command == "MAIL" || $0.command == "RCPT" }.map { e in
            var d: [String: JSONValue] = [:]
            for f in fields + ["smtp.request.param", "smtp.type"] { d[f] = e[f] }
            return d
        }
    }
    let together = envelope(runSMTP([greeting] + ehlo + mails.flatMap { $0 } + quit))
    let alone = mails.flatMap { envelope(runSMTP([greeting] + ehlo + $0 + quit)) }
    #expect(together.count == alone.count && together.count == 11 * 2 + 21)
    for (x, y) in zip(together, alone) { #expect(x == y) }
}

/// The message data scan (16 and 64 bytes at a time) finds what a byte loop finds.
@Test func dotLineScanMatchesAByteLoop() {
    func naive(_ b: [UInt8], from: Int) -> Int? {
        guard from < b.count else { return nil }
        for i in from..<(b.count - 1) where b[i] == 0x0a && b[i + 1] == 0x2e { return i }
        return b.last == 0x0a ? b.count - 1 : nil
    }
    var rng = SeededRandom(seed: 5321)
    let alphabet: [UInt8] = [0x61, 0x61, 0x61, 0x61, 0x0a, 0x2e, 0x0d, 0x20]
    for _ in 0..<3000 {
        let n = Int.random(in: 0...300, using: &rng)
        // Mostly plain text, so that hits land anywhere in and between the blocks.
        let density = Int.random(in: 1...40, using: &rng)
        let bytes: [UInt8] = (0..<n).map { _ in
            Int.random(in: 0..<density, using: &rng) == 0 ? alphabet.randomElement(using: &rng)! : 0x61
        }
        for from in [0, 1, n / 3, max(0, n - 17), max(0, n - 1), n] {
            let found = bytes.withUnsafeBufferPointer { SMTPSession.nextDotLine($0, from: from) }
            #expect(found == naive(bytes, from: from), "\(bytes) from \(from)")
        }
    }
}
