import Testing
@testable import WirebeatCore

struct StreamBufferTests {
    static func text(_ s: ArraySlice<UInt8>?) -> String? { s.map { String(decoding: $0, as: UTF8.self) } }

    @Test func readLineCRLFBareLFAndPartial() {
        var b = StreamBuffer(Array("A\r\nB\n\r\nlast".utf8))
        #expect(Self.text(b.readLine()) == "A")
        #expect(Self.text(b.readLine()) == "B")
        #expect(Self.text(b.readLine()) == "")  // empty CRLF line
        #expect(b.readLine() == nil)  // partial: nothing consumed
        #expect(b.readableBytes == 4)
        b.append(contentsOf: Array(" line\r".utf8))
        #expect(b.readLine() == nil)  // CR alone does not end a line
        b.append(contentsOf: [0x0A])
        #expect(Self.text(b.readLine()) == "last line")
        #expect(b.isEmpty)
        #expect(b.readLine() == nil)
    }

    @Test func readLineKeepsInnerCarriageReturns() {
        var b = StreamBuffer(Array("a\rb\r\r\n\n".utf8))
        #expect(Self.text(b.readLine()) == "a\rb\r")  // only the CR right before LF is dropped
        #expect(Self.text(b.readLine()) == "")
        #expect(b.isEmpty)
    }

    @Test func lineSplitAcrossManyAppends() {
        var b = StreamBuffer()
        var lines: [String] = []
        for byte in Array("EHLO x\r\nMAIL FROM:<a@b>\r\nQUIT\n".utf8) {
            b.append(contentsOf: [byte])
            while let line = b.readLine() { lines.append(String(decoding: line, as: UTF8.self)) }
        }
        #expect(lines == ["EHLO x", "MAIL FROM:<a@b>", "QUIT"])
        #expect(b.isEmpty)
    }

    @Test func offsetOfLineFeedRespectsLimit() {
        var b = StreamBuffer(Array("xx0123456789\n".utf8))
        b.skip(2)
        #expect(b.offsetOfLineFeed() == 10)
        #expect(b.offsetOfLineFeed(limit: 10) == nil)
        #expect(b.offsetOfLineFeed(limit: 11) == 10)
        #expect(b.offsetOfLineFeed(limit: 0) == nil)
        #expect(b.offsetOfLineFeed(limit: .max) == 10)
    }

    @Test func readBytes() {
        var b = StreamBuffer(Array("HEADERbody".utf8))
        #expect(b.readBytes(100) == nil)
        #expect(b.readableBytes == 10)  // nothing consumed
        #expect(b.readBytes(-1) == nil)
        #expect(b.readBytes(0).map(Array.init) == [])
        #expect(Self.text(b.readBytes(6)) == "HEADER")
        #expect(b.byte(at: 0) == UInt8(ascii: "b"))
        #expect(b.byte(at: 4) == nil)
        #expect(Self.text(b.readBytes(4)) == "body")
        #expect(b.isEmpty)
        #expect(b.readBytes(1) == nil)
    }

    @Test func skipClamps() {
        var b = StreamBuffer([1, 2, 3])
        b.skip(-5)
        #expect(b.readableBytes == 3)
        b.skip(1)
        #expect(Array(b.readable) == [2, 3])
        b.skip(Int.max)
        #expect(b.isEmpty)
        b.append(contentsOf: [9])
        #expect(Array(b.readable) == [9])
    }

    @Test func offsetOfPattern() {
        var b = StreamBuffer(Array("--abc\r\n\r\nbody\r\n\r\n".utf8))
        let crlf2 = Array("\r\n\r\n".utf8)
        #expect(b.offset(of: crlf2) == 5)
        #expect(b.offset(of: crlf2, from: 5) == 5)
        #expect(b.offset(of: crlf2, from: 6) == 13)
        #expect(b.offset(of: crlf2, from: 14) == nil)
        #expect(b.offset(of: crlf2, from: 1000) == nil)
        #expect(b.offset(of: crlf2, from: -3) == 5)
        #expect(b.offset(of: Array("--".utf8)) == 0)
        #expect(b.offset(of: Array("\r\n\r\n\r".utf8)) == nil)
        #expect(b.offset(of: []) == nil)
        #expect(b.offset(of: Array(repeating: 0x2D, count: 100)) == nil)  // longer than the buffer
        b.skip(3)  // offsets are from the reader position
        #expect(b.offset(of: crlf2) == 2)
        #expect(b.offset(of: Array("bc".utf8)) == 0)
        #expect(b.offset(of: Array("--".utf8)) == nil)
        // A pattern at the very end, and one whose first byte repeats.
        var c = StreamBuffer(Array("aaab".utf8))
        #expect(c.offset(of: Array("aab".utf8)) == 1)
        #expect(c.offset(of: Array("b".utf8)) == 3)
        c.skip(4)
        #expect(c.offset(of: Array("b".utf8)) == nil)
    }

    @Test func appendRawBufferAndRemoveAll() {
        var b = StreamBuffer()
        [UInt8](arrayLiteral: 1, 2, 3).withUnsafeBytes { b.append($0) }
        #expect(Array(b.readable) == [1, 2, 3])
        b.removeAll()
        #expect(b.isEmpty && b.readableBytes == 0)
        b.append(contentsOf: [4])
        #expect(Array(b.readable) == [4])
    }

    /// Many appends, reads and skips against a plain array model: the content is always
    /// right, and consumed space is reclaimed so the storage stays bounded.
    @Test func compactionKeepsContent() {
        var rng = SplitMix64(seed: 1234)
        var b = StreamBuffer()
        var model: [UInt8] = []
        var maxStorage = 0
        var total = 0
        for step in 0..<20_000 {
            let chunk = rng.bytes(Int.random(in: 0...700, using: &rng))
            b.append(contentsOf: chunk)
            model += chunk
            total += chunk.count
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:
                let n = Int.random(in: 0...model.count, using: &rng)
                b.skip(n)
                model.removeFirst(n)
            case 1:
                let n = Int.random(in: 0...(model.count + 10), using: &rng)
                let read = b.readBytes(n)
                if n <= model.count {
                    #expect(read.map(Array.init) == Array(model.prefix(n)))
                    model.removeFirst(n)
                } else {
                    #expect(read == nil)
                }
            case 2:
                if let line = b.readLine() {
                    let lf = model.firstIndex(of: 0x0A)!
                    var expected = Array(model[..<lf])
                    if expected.last == 0x0D { expected.removeLast() }
                    #expect(Array(line) == expected)
                    model.removeFirst(lf + 1)
                } else {
                    #expect(!model.contains(0x0A))
                }
            default:
                break  // let it grow
            }
            if model.count > 20_000 { b.skip(model.count - 100); model.removeFirst(model.count - 100) }
            #expect(b.readableBytes == model.count)
            if b.readableBytes != model.count || step % 97 == 0 && Array(b.readable) != model {
                Issue.record("diverged at step \(step)")
                return
            }
            maxStorage = max(maxStorage, b.storage.count)
        }
        #expect(Array(b.readable) == model)
        #expect(total > 5_000_000)
        // Without reclaiming, storage would hold every byte ever appended.
        #expect(maxStorage < 50_000)
    }

    @Test func fullyConsumedBufferIsReclaimedOnAppend() {
        var b = StreamBuffer()
        for _ in 0..<1000 {
            b.append(contentsOf: [UInt8](repeating: 7, count: 100))
            _ = b.readBytes(100)
        }
        b.append(contentsOf: [1, 2])
        // The consumed bytes' room is written over, not added to.
        #expect(b.end == 2)
        #expect(b.storage.count == 100)
        #expect(b.readerIndex == 0)
        #expect(Array(b.readable) == [1, 2])
    }
}
