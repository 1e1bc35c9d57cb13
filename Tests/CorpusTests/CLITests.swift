import Foundation
import Testing
import WirebeatCore

/// The `wirebeat` binary as a user runs it: bad input is one line on stderr and a non-zero
/// exit, never a crash; good input prints NDJSON.
struct CLITests {
    static let root = CorpusTests.root
    static let binary: String? = {
        // Beside the test bundle first: the build these tests belong to, whatever its
        // --scratch-path (a stale .build/debug/wirebeat would be tested instead otherwise).
        let bundleDirectory = (CommandLine.arguments.first.map { ($0 as NSString).deletingLastPathComponent } ?? "")
        let beside = (bundleDirectory as NSString).appendingPathComponent("wirebeat")
        if !bundleDirectory.isEmpty, FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for candidate in [".build/debug/wirebeat", ".build/x86_64-unknown-linux-gnu/debug/wirebeat",
                          ".build/aarch64-unknown-linux-gnu/debug/wirebeat"] {
            let path = (root as NSString).appendingPathComponent(candidate)
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    struct Outcome { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ arguments: [String], cwd: String? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(binary, "build the wirebeat binary first"))
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: cwd ?? root)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                       stderr: String(decoding: stderr, as: UTF8.self))
    }

    static func temp(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "wirebeat-cli-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    /// One line on stderr, starting "wirebeat: error:", exit status 1.
    static func expectOneLineError(_ o: Outcome, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(o.status == 1, sourceLocation: sourceLocation)
        let lines = o.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(o.stderr)", sourceLocation: sourceLocation)
        #expect(o.stderr.hasPrefix("wirebeat: error: ") && o.stderr.contains(text), "stderr: \(o.stderr)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: binary != nil)) func replaysAShippedCapture() throws {
        let o = try Self.run(["-I", "Captures/smtp/plain-mail.pcap"])
        #expect(o.status == 0)
        let lines = o.stdout.split(separator: "\n")
        #expect(lines.count == 7)
        #expect(lines.allSatisfy { (try? JSONParser.parse(String($0))) != nil })
    }

    /// An idle live capture still stops on --duration (reads never block past 100 ms).
    @Test(.enabled(if: binary != nil && getuid() == 0, "live capture needs root"))
    func liveCaptureStopsOnDuration() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary!)
        process.arguments = ["-i", "lo", "--duration", "1s", "--filter", "tcp port 9", "--stats"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        let killer = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 15, execute: killer)
        process.waitUntilExit()
        killer.cancel()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(Date().timeIntervalSince(started) < 10, "an idle capture must stop on --duration")
        #expect(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("\"packets\""))
    }

    @Test(.enabled(if: binary != nil)) func missingFile() throws {
        Self.expectOneLineError(try Self.run(["-I", "/nonexistent/x.pcap"]), mentioning: "No such file")
    }

    @Test(.enabled(if: binary != nil)) func textFileIsNotACapture() throws {
        Self.expectOneLineError(try Self.run(["-I", "README.md"]), mentioning: "not a pcap or pcapng capture")
    }

    @Test(.enabled(if: binary != nil)) func truncatedCapturePublishesWhatItCanThenFails() throws {
        let data = try #require(FileManager.default.contents(atPath: Self.root + "/Captures/smtp/plain-mail.pcap"))
        let path = Self.temp("truncated.pcap")
        try data.prefix(data.count - 30).write(to: URL(fileURLWithPath: path))
        let o = try Self.run(["-I", path])
        Self.expectOneLineError(o, mentioning: "truncated")
        #expect(o.stdout.split(separator: "\n").count >= 5)
    }

    @Test(.enabled(if: binary != nil)) func garbagePacketsAreCountedNotFatal() throws {
        let path = Self.temp("garbage.pcap")
        let writer = try PcapWriter(path: path, linkType: LinkType.ethernet)
        var seed: UInt64 = 42
        for i in 0..<500 {
            var frame: [UInt8] = []
            for _ in 0..<(i % 120) {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                frame.append(UInt8(truncatingIfNeeded: seed >> 33))
            }
            if i % 3 == 0 && frame.count > 14 { frame[12] = 0x08; frame[13] = 0x00 }  // claim IPv4
            frame.withUnsafeBytes { writer.write(timestamp: Timestamp(seconds: Int64(i)), frame: $0, wireLength: frame.count) }
        }
        writer.close()
        let o = try Self.run(["-I", path, "--stats"])
        #expect(o.status == 0)
        #expect(o.stderr.contains("\"packets\":500"))
        #expect(o.stderr.contains("malformed") || o.stderr.contains("truncated") || o.stderr.contains("not_ip"))
    }

    @Test(.enabled(if: binary != nil)) func badConfigNamesTheKey() throws {
        let path = Self.temp("bad.yml")
        try "protocols:\n  smtp:\n    transaction_timeout: soon\n".write(toFile: path, atomically: true, encoding: .utf8)
        Self.expectOneLineError(try Self.run(["-I", "Captures/smtp/plain-mail.pcap", "-c", path]),
                                mentioning: "protocols.smtp.transaction_timeout")
        try "protocols:\n  gopher: {}\n".write(toFile: path, atomically: true, encoding: .utf8)
        Self.expectOneLineError(try Self.run(["-I", "Captures/smtp/plain-mail.pcap", "-c", path]),
                                mentioning: "protocols.gopher")
        try "protocols:\n  smtp:\n    ports: [25, 25]\n".write(toFile: path, atomically: true, encoding: .utf8)
        Self.expectOneLineError(try Self.run(["-I", "Captures/smtp/plain-mail.pcap", "-c", path]),
                                mentioning: "protocols.smtp.ports")
    }

    /// A full disk (`/dev/full`) is an error, not a silent success with the events lost: in
    /// one-thread replay, in parallel replay (the merge writes with writev), and on stdout.
    @Test(.enabled(if: binary != nil && FileManager.default.fileExists(atPath: "/dev/full")),
          arguments: [["-o", "/dev/full", "--workers", "1"], ["-o", "/dev/full", "--workers", "2"], ["-o", "-", "--workers", "2"]])
    func aFailedWriteIsAnError(output: [String]) throws {
        let arguments = ["-I", "Captures/smtp/plain-mail.pcap"] + output
        let o: Outcome
        if output[1] == "-" {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary!)
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: Self.root)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
            let err = Pipe()
            process.standardError = err
            try process.run()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            o = Outcome(status: process.terminationStatus, stdout: "", stderr: String(decoding: stderr, as: UTF8.self))
        } else {
            o = try Self.run(arguments)
        }
        Self.expectOneLineError(o, mentioning: "write failed: No space left on device")
        #expect(o.stderr.contains(output[1] == "-" ? "stdout" : "/dev/full"))
    }

    @Test(.enabled(if: binary != nil)) func bulkFormatPairsActionAndDocument() throws {
        let o = try Self.run(["-I", "Captures/smtp/plain-mail.pcap", "--format", "bulk"])
        let lines = o.stdout.split(separator: "\n")
        #expect(lines.count == 14)
        #expect(lines[0] == #"{"index":{"_index":"wirebeat"}}"#)
    }

    @Test(.enabled(if: binary != nil)) func goldenVerifyFailsOnAHandEditedGolden() throws {
        // Copy the repository's corpus layout for one capture into a scratch root and edit its golden.
        let scratch = Self.temp("root")
        let fm = FileManager.default
        try? fm.removeItem(atPath: scratch)
        try fm.createDirectory(atPath: scratch + "/Captures/smtp", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: scratch + "/Golden/smtp", withIntermediateDirectories: true)
        try fm.copyItem(atPath: Self.root + "/Package.swift", toPath: scratch + "/Package.swift")
        try fm.copyItem(atPath: Self.root + "/Captures/smtp/plain-mail.pcap", toPath: scratch + "/Captures/smtp/plain-mail.pcap")
        let golden = try String(contentsOfFile: Self.root + "/Golden/smtp/plain-mail.json", encoding: .utf8)
        try golden.replacingOccurrences(of: "bob@wirebeat.test", with: "mallory@wirebeat.test")
            .write(toFile: scratch + "/Golden/smtp/plain-mail.json", atomically: true, encoding: .utf8)

        let verify = try Self.run(["golden", "verify", "--root", scratch])
        #expect(verify.status != 0)
        let lines = verify.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("-") && $0.contains("mallory@wirebeat.test") }
                && lines.contains { $0.hasPrefix("+") && $0.contains("bob@wirebeat.test") },
                "a readable diff: \(verify.stdout)")
        let update = try Self.run(["golden", "update", "--root", scratch])
        #expect(update.status == 0 && update.stdout.contains("CHANGED smtp/plain-mail"))
        #expect(try String(contentsOfFile: scratch + "/Golden/smtp/plain-mail.json", encoding: .utf8) == golden)
        #expect(try Self.run(["golden", "verify", "--root", scratch]).status == 0)
    }
}
