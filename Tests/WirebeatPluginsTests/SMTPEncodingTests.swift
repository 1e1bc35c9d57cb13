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
