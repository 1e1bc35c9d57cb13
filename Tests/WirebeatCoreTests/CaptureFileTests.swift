import Foundation
import Testing
@testable import WirebeatCore

/// Opening and replaying capture files that are missing, not captures, empty, cut short or
/// full of garbage: one-line `CaptureError`s, never a crash, and work done up to the damage.
struct CaptureFileTests {
    static func write(_ frames: [[UInt8]], to path: String, linkType: Int32 = LinkType.raw, start: Int64 = 1_700_000_000) throws {
        let writer = try PcapWriter(path: path, linkType: linkType)
        for (i, frame) in frames.enumerated() {
            frame.withUnsafeBytes {
                writer.write(timestamp: Timestamp(seconds: start + Int64(i), nanoseconds: 123_456_789), frame: $0,
                             wireLength: frame.count)
            }
        }
        writer.close()
    }

    static func captureError(_ body: () throws -> Void) -> CaptureError? {
        do { try body() } catch let e as CaptureError { return e } catch { Issue.record("not a CaptureError: \(error)") }
        return nil
    }

    static func recorderSniffer() throws -> (Sniffer, RecordingPlugin) {
        var registry = PluginRegistry()
        registry.register(RecordingPlugin.self)
        let plugins = try registry.load(nil)
        return (Sniffer(plugins: plugins, publisher: CollectingPublisher()), plugins[0].instance as! RecordingPlugin)
    }

    static let conversation = Conversation()
    /// Handshake, one request, one reply: 5 records of 40 + 5 bytes-ish.
    static var conversationFrames: [[UInt8]] {
        let t = conversation
        return (t.handshake + [t.c(0, "HELLO", ack: 0), t.s(0, "WORLD", ack: 5)]).map(t.packet)
    }

    @Test func missingFileNamesThePath() throws {
        let dir = try makeTemporaryDirectory("missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("no-such.pcap").path
        let e = Self.captureError { _ = try PcapSource.open(file: path) }
        #expect(e?.description.contains(path) == true)
        #expect(e?.description.contains("No such file") == true)
        #expect(e?.description.contains("\n") == false)
        let (sniffer, _) = try Self.recorderSniffer()
        let r = Self.captureError { try Replay.run(file: path, into: sniffer) }
        #expect(r?.description.contains(path) == true)
        #expect(sniffer.stats.packets == 0)
    }

    @Test func directoryIsNotACapture() throws {
        let dir = try makeTemporaryDirectory("dir")
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = Self.captureError { _ = try PcapSource.open(file: dir.path) }
        #expect(e?.description == "\(dir.path): not a regular file")
    }

    @Test(arguments: ["This is a text file, not a capture.\nIt has several lines of text in it.\n",
                      String(repeating: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", count: 20)])
    func textFileIsNotACapture(_ text: String) throws {
        let dir = try makeTemporaryDirectory("text")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("notes.txt").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let e = Self.captureError { _ = try PcapSource.open(file: path) }
        #expect(e?.description.hasPrefix("\(path): not a pcap or pcapng capture") == true, "\(String(describing: e))")
        #expect(e?.description.contains("\n") == false)
    }

    @Test func emptyFileIsAnError() throws {
        let dir = try makeTemporaryDirectory("empty")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("empty.pcap").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let e = Self.captureError { _ = try PcapSource.open(file: path) }
        #expect(e != nil)
        #expect(e?.description.hasPrefix(path + ": ") == true, "\(String(describing: e))")
        #expect(e?.description.contains("\n") == false)
    }

    @Test func headerOnlyCaptureReplaysNothing() throws {
        let dir = try makeTemporaryDirectory("headeronly")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("none.pcap").path
        try Self.write([], to: path)
        let (events, stats) = try Replay.collect(file: path, plugins: [])
        #expect(events.isEmpty)
        #expect(stats.packets == 0)
    }

    @Test func writerAndSourceRoundTrip() throws {
        let dir = try makeTemporaryDirectory("roundtrip")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rt.pcap").path
        let frames = Self.conversationFrames.map { PacketBuilder.ethernet($0) }
        try Self.write(frames, to: path, linkType: LinkType.ethernet)
        let source = try PcapSource.open(file: path)
        #expect(source.linkType == LinkType.ethernet)
        #expect(source.name == path)
        var read: [([UInt8], Timestamp, Int)] = []
        while try source.next({ ts, frame, wire in read.append((Array(frame), ts, wire)) }) == .packet {}
        #expect(read.map(\.0) == frames)
        #expect(read.map(\.1) == frames.indices.map { Timestamp(seconds: 1_700_000_000 + Int64($0), nanoseconds: 123_456_789) })
        #expect(read.map(\.2) == frames.map(\.count))
        // After the end, it stays at the end.
        #expect(try source.next { _, _, _ in Issue.record("packet after end") } == .end)
    }

    /// Reading in rounds (a parallel replay's turns): every packet once, in order, whatever the
    /// round's size and wherever a round is stopped, then the end, and the end again.
    @Test(arguments: [1, 2, 3, 7])
    func roundsWithStopsReadEveryPacketOnce(_ limit: Int) throws {
        let dir = try makeTemporaryDirectory("rounds")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rounds.pcap").path
        let frames = (0..<11).flatMap { _ in Self.conversationFrames }
        try Self.write(frames, to: path)
        let source = try PcapSource.open(file: path)
        var read: [[UInt8]] = []
        var rounds = 0
        // Stops after every third packet, and in the round after a stop, at its first packet.
        var stopAtFirst = false
        while true {
            var inRound = 0
            let more = try source.forSomePackets(limit: limit) { _, frame, _ in
                read.append(Array(frame))
                inRound += 1
                if read.count % 3 == 0 || (stopAtFirst && inRound == 1) { source.stopReading() }
            }
            #expect(inRound <= limit)
            stopAtFirst = inRound > 0 && read.count % 3 == 0
            rounds += 1
            if !more { break }
            try #require(rounds < 10 * frames.count, "reads never end")
        }
        #expect(read == frames)
        #expect(try source.forSomePackets(limit: limit) { _, _, _ in Issue.record("packet after end") } == false)
    }

    /// A capture cut short, read in rounds: the packets before the damage, then its error.
    @Test func roundsStopAtTheDamageWithItsError() throws {
        let dir = try makeTemporaryDirectory("rounds-cut")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cut.pcap").path
        let frames = Self.conversationFrames
        try Self.write(frames, to: path)
        try Self.chop(path, 3)
        let source = try PcapSource.open(file: path)
        var count = 0
        let e = Self.captureError {
            while try source.forSomePackets(limit: 2, { _, _, _ in count += 1 }) {}
        }
        #expect(e?.description.contains("truncated") == true, "\(String(describing: e))")
        #expect(count == frames.count - 1)
    }

    /// Cuts `count` bytes off the end of the file.
    static func chop(_ path: String, _ count: Int) throws {
        let data = try #require(FileManager.default.contents(atPath: path))
        #expect(FileManager.default.createFile(atPath: path, contents: data.prefix(data.count - count)))
    }

    struct Cut: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: Int  // cut off the end of the file (the last record is 16 + 45 bytes)
        var testDescription: String { name }
    }

    @Test(arguments: [Cut(name: "in the last record's data", bytes: 3),
                      Cut(name: "one byte of data left", bytes: 44),
                      Cut(name: "in the last record's header", bytes: 16 + 45 - 5)])
    func truncatedRecordProcessesWhatCameBefore(_ cut: Cut) throws {
        let dir = try makeTemporaryDirectory("truncated")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cut.pcap").path
        let frames = Self.conversationFrames
        #expect(frames.last?.count == 45)
        try Self.write(frames, to: path)
        try Self.chop(path, cut.bytes)
        let (sniffer, recorder) = try Self.recorderSniffer()
        let e = Self.captureError { try Replay.run(file: path, into: sniffer) }
        #expect(e?.description.contains("truncated") == true, "\(String(describing: e))")
        #expect(e?.description.contains(path) == true)
        #expect(e?.description.contains("\n") == false)
        #expect(sniffer.stats.packets == frames.count - 1)
        // The request before the damage was delivered, and the sniffer was finished.
        #expect(recorder.log == ["C:HELLO", "close endOfInput"])
    }

    @Test func cutAtARecordBoundaryIsAShorterCapture() throws {
        let dir = try makeTemporaryDirectory("boundary")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("short.pcap").path
        try Self.write(Self.conversationFrames, to: path)
        try Self.chop(path, 16 + 45)
        let (sniffer, recorder) = try Self.recorderSniffer()
        try Replay.run(file: path, into: sniffer)
        #expect(recorder.log == ["C:HELLO", "close endOfInput"])
    }

    @Test func truncatedFileHeader() throws {
        let dir = try makeTemporaryDirectory("fileheader")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("hdr.pcap").path
        try Self.write(Self.conversationFrames, to: path)
        let data = try #require(FileManager.default.contents(atPath: path))
        #expect(FileManager.default.createFile(atPath: path, contents: data.prefix(10)))
        let e = Self.captureError { _ = try PcapSource.open(file: path) }
        #expect(e?.description.hasPrefix(path + ": ") == true, "\(String(describing: e))")
        #expect(e?.description.contains("\n") == false)
    }

    @Test func garbageCaptureReplaysWithMalformedCounters() throws {
        let dir = try makeTemporaryDirectory("garbage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("garbage.pcap").path
        var rng = SplitMix64(seed: 2024)
        let frames = (0..<1000).map { _ in rng.bytes(Int.random(in: 0...300, using: &rng)) }
        try Self.write(frames, to: path, linkType: LinkType.ethernet)
        var registry = PluginRegistry()
        registry.register(RecordingPlugin.self)
        registry.register(UDPRecorder.self)
        let (events, stats) = try Replay.collect(file: path, plugins: try registry.load(nil))
        #expect(events.isEmpty)
        #expect(stats.packets == frames.count)
        #expect(stats.bytes == frames.map(\.count).reduce(0, +))
        #expect(stats.malformedPackets > 0)
        #expect(stats.skipped.values.reduce(0, +) + stats.tcpSegments + stats.udpDatagrams == frames.count)
    }

    @Test func replayFeedsEveryPacketAndFinishes() throws {
        let dir = try makeTemporaryDirectory("replay")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ok.pcap").path
        try Self.write(Self.conversationFrames.map { PacketBuilder.sll($0) }, to: path, linkType: LinkType.linuxSLL)
        let (sniffer, recorder) = try Self.recorderSniffer()
        try Replay.run(file: path, into: sniffer)
        #expect(sniffer.stats.packets == 5)
        #expect(sniffer.stats.tcpSegments == 5)
        #expect(recorder.log == ["C:HELLO", "S:WORLD", "close endOfInput"])
        sniffer.finish()  // idempotent
        #expect(recorder.log.count == 3)
    }
}

/// Capture files written byte by byte (not by libpcap): microsecond pcap in both byte
/// orders and pcapng, to check the file formats and the timestamp conversion to nanoseconds.
struct HandWrittenCaptureTests {
    static func le32(_ v: UInt32) -> [UInt8] { PacketBuilder.be32(v.byteSwapped) }
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }

    static let frame = Conversation().packet(Conversation().c(0, "HELLO", ack: 0))
    static let seconds: UInt32 = 1_700_000_000
    static let micros: UInt32 = 123_456

    static func classicPcap(bigEndian: Bool) -> [UInt8] {
        let u32: (UInt32) -> [UInt8] = bigEndian ? PacketBuilder.be32 : le32
        let u16: (UInt16) -> [UInt8] = bigEndian ? PacketBuilder.be16 : le16
        var file = u32(0xA1B2_C3D4) + u16(2) + u16(4) + u32(0) + u32(0) + u32(65_535) + u32(UInt32(LinkType.rawLinktype))
        file += u32(seconds) + u32(micros) + u32(UInt32(frame.count)) + u32(UInt32(frame.count + 10))
        return file + frame
    }

    static func pcapng() -> [UInt8] {
        var file = le32(0x0A0D_0D0A) + le32(28) + le32(0x1A2B_3C4D) + le16(1) + le16(0) + [UInt8](repeating: 0xFF, count: 8) + le32(28)
        file += le32(1) + le32(20) + le16(UInt16(LinkType.rawLinktype)) + le16(0) + le32(65_535) + le32(20)
        let padded = frame + [UInt8](repeating: 0, count: (4 - frame.count % 4) % 4)
        let ts = UInt64(seconds) * 1_000_000 + UInt64(micros)  // default if_tsresol: microseconds
        let length = UInt32(32 + padded.count)
        file += le32(6) + le32(length) + le32(0) + le32(UInt32(ts >> 32)) + le32(UInt32(ts & 0xFFFF_FFFF))
        file += le32(UInt32(frame.count)) + le32(UInt32(frame.count + 10)) + padded + le32(length)
        return file
    }

    @Test(arguments: ["pcap-le", "pcap-be", "pcapng"])
    func readsFormatAndTimestamp(_ format: String) throws {
        let dir = try makeTemporaryDirectory(format)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("capture.\(format)").path
        let bytes = format == "pcapng" ? Self.pcapng() : Self.classicPcap(bigEndian: format == "pcap-be")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let source = try PcapSource.open(file: path)
        // libpcap maps the file's LINKTYPE_RAW (101) to the platform's DLT_RAW (12 on Linux).
        #expect([LinkType.raw, LinkType.rawOpenBSD, LinkType.rawLinktype].contains(source.linkType))
        var packets: [(Timestamp, [UInt8], Int)] = []
        while try source.next({ packets.append(($0, Array($1), $2)) }) == .packet {}
        #expect(packets.count == 1)
        #expect(packets.first?.0 == Timestamp(seconds: Int64(Self.seconds), nanoseconds: Int64(Self.micros) * 1000))
        #expect(packets.first?.1 == Self.frame)
        #expect(packets.first?.2 == Self.frame.count + 10)
        let (sniffer, recorder) = try CaptureFileTests.recorderSniffer()
        try Replay.run(file: path, into: sniffer)
        #expect(recorder.log == ["C:HELLO", "close endOfInput"])
    }
}
