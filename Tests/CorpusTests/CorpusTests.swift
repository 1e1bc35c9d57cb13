import Foundation
import Testing
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

/// Every capture under Captures/ (and every public sample in Captures/public.tsv) replayed
/// through its plugin must give exactly its golden events.
///
/// `WIREBEAT_RECORD=missing` writes goldens that do not exist yet; `WIREBEAT_RECORD=all`
/// rewrites every golden (read `git diff Golden/` afterwards). CI never sets it.
struct CorpusTests {
    static let root: String = Corpus.findRoot(from: #filePath) ?? FileManager.default.currentDirectoryPath
    static let corpus: Corpus? = try? Corpus(root: root)
    static let entries: [CorpusEntry] = corpus?.entries ?? []
    static let record = ProcessInfo.processInfo.environment["WIREBEAT_RECORD"] ?? "never"

    @Test func corpusLoads() throws {
        _ = try Corpus(root: Self.root)
        #expect(!Self.entries.isEmpty)
    }

    /// Public samples are part of the corpus: a machine without them must say so loudly.
    @Test func publicSamplesArePresent() throws {
        let corpus = try Corpus(root: Self.root)
        let allowMissing = ProcessInfo.processInfo.environment["WIREBEAT_ALLOW_MISSING_PUBLIC"] == "1"
        #expect(allowMissing || corpus.unavailable.isEmpty,
                "public samples not found (set WIREBEAT_PUBLIC_CAPTURES): \(corpus.unavailable.joined(separator: ", "))")
    }

    @Test(arguments: entries)
    func replayMatchesGolden(_ entry: CorpusEntry) throws {
        let registry = BuiltinPlugins.registry
        let exists = FileManager.default.fileExists(atPath: entry.goldenPath)
        if Self.record == "all" || (Self.record == "missing" && !exists) {
            let change = try GoldenWorkflow.update(entry, registry: registry)
            if !change.isEmpty { print("recorded \(entry.name): \(change)") }
            return
        }
        let check = try GoldenWorkflow.verify(entry, registry: registry)
        #expect(check.passed, "\(entry.name): \(check.message)")
    }

    /// The streaming writer used for output prints exactly the canonical JSON of the event.
    @Test(arguments: entries)
    func streamedJSONEqualsCanonicalJSON(_ entry: CorpusEntry) throws {
        let plugins = try entry.loadPlugins(registry: BuiltinPlugins.registry)
        for event in try Replay.collect(file: entry.capturePath, plugins: plugins).events {
            var bytes: [UInt8] = []
            event.writeCompactJSON(into: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == JSONWriter.compact(event.json))
        }
    }

    /// Same input, same bytes out: two replays print identical NDJSON.
    @Test(arguments: entries)
    func replayIsDeterministic(_ entry: CorpusEntry) throws {
        let registry = BuiltinPlugins.registry
        let first = try entry.replay(registry: registry).map(JSONWriter.compact)
        let second = try entry.replay(registry: registry).map(JSONWriter.compact)
        #expect(first == second)
    }
}

/// The conformance harness over the corpus: each capture × mode is a named test case.
struct CorpusConformanceTests {
    static let modes: [MutationMode] = MutationMode.allCases

    @Test(arguments: CorpusTests.entries, modes)
    func mutatedReplays(_ entry: CorpusEntry, _ mode: MutationMode) throws {
        guard FileManager.default.fileExists(atPath: entry.goldenPath) else { return }  // reported by replayMatchesGolden
        let suite = ConformanceSuite(registry: BuiltinPlugins.registry)
        let (capture, golden, timeout) = try suite.prepare(entry)
        guard let result = suite.run(entry, mode: mode, capture: capture, golden: golden, timeout: timeout) else {
            return  // the mode does not apply to this capture (e.g. drop without UDP)
        }
        #expect(result.failedCount == 0,
                "\(result.failedCount) of \(result.runs) failed:\n\(result.failures.map(\.description).joined(separator: "\n\n"))")
    }
}

/// Where tshark is installed, what each plugin extracts agrees with tshark's dissection.
struct CrossCheckTests {
    @Test(.enabled(if: TsharkCrossCheck.tsharkPath != nil, "tshark is not installed"), arguments: CorpusTests.entries)
    func agreesWithTshark(_ entry: CorpusEntry) throws {
        guard let outcome = try TsharkCrossCheck.run(entry, registry: BuiltinPlugins.registry) else { return }
        #expect(outcome.agrees, "\(outcome)")
    }
}

/// Secrets never reach events, even with the raw request/response text turned on: the
/// passwords of the recorded AUTH and Basic-auth sessions, in clear and in base64.
struct SecretsTests {
    static let secrets = [
        "s3cret-Passw0rd", "czNjcmV0LVBhc3N3MHJk", "AGFsaWNlAHMzY3JldC1QYXNzdzByZA", "YWxpY2U6czNjcmV0LVBhc3N3MHJk",
        "punjab@123", "cHVuamFiQDEyMw",  // the Wireshark SMTP sample's AUTH LOGIN password
    ]

    @Test(arguments: CorpusTests.entries.filter { $0.plugin != "dns" })
    func noSecretInEvents(_ entry: CorpusEntry) throws {
        let plugins = try BuiltinPlugins.registry.load([(entry.plugin, ["send_request": .scalar("true"),
                                                                         "send_response": .scalar("true")])])
        let text = try Replay.collect(file: entry.capturePath, plugins: plugins).events
            .map { JSONWriter.compact($0.json) }.joined(separator: "\n")
        for secret in Self.secrets {
            #expect(!text.contains(secret), "\(entry.name) leaks \(secret)")
        }
    }
}
