import ArgumentParser
import Foundation
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

public struct ConformanceCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Replay every capture under every mutation (split, reorder, duplicate, gap, fin, rst, timeout, truncate, corrupt, drop) and judge the events against the goldens."
    )

    @OptionGroup var corpusOptions: CorpusOptions

    @Option(name: .long, help: "Directory of captures (default: <root>/Captures).")
    var captures: String?

    @Option(name: .long, parsing: .upToNextOption, help: "Modes to run (default: all).")
    var modes: [String] = []

    @Option(name: .long, help: "Seed for random cuts and corruption.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "quick (default, as in swift test) or full (nightly).")
    var budget: String = "quick"

    @Option(name: .long, help: "Captures replayed in parallel.")
    var jobs: Int = 1

    @Option(name: .long, help: "Write a JUnit XML report to this file.")
    var junit: String?

    @Option(name: .long, help: "Save each failing mutated capture as a pcap in this directory.")
    var saveFailures: String?

    public init() {}

    public func run() throws {
        var options = ConformanceOptions()
        guard let b = Budget(rawValue: budget) else { throw fail("--budget: expected quick or full, got '\(budget)'") }
        options.budget = b
        options.seed = seed
        options.saveFailuresTo = saveFailures
        if !modes.isEmpty {
            options.modes = try modes.flatMap { $0.split(separator: ",") }.map { name in
                guard let m = MutationMode(rawValue: String(name)) else {
                    throw fail("--modes: unknown mode '\(name)' (known: \(MutationMode.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return m
            }
        }
        guard jobs >= 1 else { throw fail("--jobs: expected 1 or more, got \(jobs)") }
        var corpus = try corpusOptions.corpus()
        if let captures {
            do {
                corpus = try Corpus(root: corpus.root, publicDirectory: corpus.publicDirectory, capturesDirectory: captures)
            } catch { throw fail("\(error)") }
        }
        let entries = try corpusOptions.selection(corpus)
        let suite = ConformanceSuite(registry: BuiltinPlugins.registry, options: options)

        var results: [[ConformanceResult]] = Array(repeating: [], count: entries.count)
        var errors: [String?] = Array(repeating: nil, count: entries.count)
        let lock = NSLock()
        let work = { (i: Int) in
            do {
                let r = try suite.run(entries[i])
                lock.lock(); results[i] = r; lock.unlock()
            } catch {
                lock.lock(); errors[i] = "\(entries[i].name): \(error)"; lock.unlock()
            }
        }
        if jobs == 1 {
            for i in entries.indices { work(i) }
        } else {
            let queue = OperationQueue()
            queue.maxConcurrentOperationCount = jobs
            for i in entries.indices { queue.addOperation { work(i) } }
            queue.waitUntilAllOperationsAreFinished()
        }
        let flat = results.flatMap { $0 }
        print(ConformanceReport.table(flat))
        let failures = flat.flatMap(\.failures)
        for f in failures { print("FAIL \(f)\n") }
        for e in errors.compactMap({ $0 }) { print("ERROR \(e)") }
        if let junit {
            do { try ConformanceReport.junit(flat).write(toFile: junit, atomically: true, encoding: .utf8) } catch {
                throw fail("\(junit): \(error)")
            }
        }
        // The independent dissector's view of the same captures.
        var disagreements = 0
        if TsharkCrossCheck.tsharkPath == nil {
            print("tshark cross-check: skipped (tshark not installed)")
        } else {
            for entry in entries {
                do {
                    guard let outcome = try TsharkCrossCheck.run(entry, registry: BuiltinPlugins.registry) else { continue }
                    print("tshark cross-check \(outcome)")
                    if !outcome.agrees { disagreements += 1 }
                } catch {
                    print("tshark cross-check \(entry.name): \(error)")
                    disagreements += 1
                }
            }
        }
        let failedRuns = flat.map(\.failedCount).reduce(0, +)
        let errorCount = errors.compactMap { $0 }.count
        if failedRuns > 0 || errorCount > 0 || disagreements > 0 {
            throw fail("\(failedRuns) mutated replay(s) failed, \(errorCount) capture(s) could not run, \(disagreements) disagreement(s) with tshark")
        }
    }
}
