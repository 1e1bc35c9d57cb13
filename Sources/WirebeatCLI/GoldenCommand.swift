import ArgumentParser
import Foundation
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

/// Options shared by the commands that work on the corpus.
struct CorpusOptions: ParsableArguments {
    @Option(name: .long, help: "Repository root holding Captures/ and Golden/ (default: found from the current directory).")
    var root: String?

    @Option(name: .long, help: "Directory of the public sample captures (default: $WIREBEAT_PUBLIC_CAPTURES or ../shared/captures/public).")
    var publicCaptures: String?

    @Option(name: .long, help: "Only captures of this plugin.")
    var plugin: String?

    @Argument(help: "Captures to act on, by name (smtp/plain-mail), file name or path (default: all).")
    var captures: [String] = []

    func corpus() throws -> Corpus {
        let cwd = FileManager.default.currentDirectoryPath
        guard let root = root ?? Corpus.findRoot(from: cwd) else {
            throw fail("no repository root (Package.swift and Captures/) above \(cwd); pass --root")
        }
        do { return try Corpus(root: root, publicDirectory: publicCaptures) } catch { throw fail("\(error)") }
    }

    func selection(_ corpus: Corpus) throws -> [CorpusEntry] {
        let chosen = corpus.select(plugin: plugin, names: captures)
        if chosen.isEmpty { throw fail("no capture matches \(captures.isEmpty ? "plugin \(plugin ?? "")" : captures.joined(separator: " "))") }
        return chosen
    }
}

public struct GoldenCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "golden",
        abstract: "Check captures against their golden events, or regenerate goldens on purpose.",
        subcommands: [Verify.self, Update.self]
    )
    public init() {}

    // Named here, not derived from the type: that goes through `String(describing:)` of a
    // nested type (the runtime's demangler), ~4 M instructions at every start.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "verify", abstract: "Replay captures and compare with their goldens (non-zero exit on any difference).")
        @OptionGroup var options: CorpusOptions

        func run() throws {
            let corpus = try options.corpus()
            var failed = 0
            for entry in try options.selection(corpus) {
                let check: GoldenCheck
                do { check = try GoldenWorkflow.verify(entry, registry: BuiltinPlugins.registry) } catch {
                    print("FAIL \(entry.name): \(error)")
                    failed += 1
                    continue
                }
                print("\(check.passed ? "ok  " : "FAIL") \(entry.name)\(check.passed ? "" : ": " + check.message)")
                if !check.passed { failed += 1 }
            }
            for missing in corpus.unavailable { print("skip \(missing): public sample not found") }
            if failed > 0 { throw fail("\(failed) golden check(s) failed") }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "update", abstract: "Rewrite goldens from fresh replays and print what changed. Read the diff before committing.")
        @OptionGroup var options: CorpusOptions

        func run() throws {
            let corpus = try options.corpus()
            for entry in try options.selection(corpus) {
                do {
                    let change = try GoldenWorkflow.update(entry, registry: BuiltinPlugins.registry)
                    print(change.isEmpty ? "same \(entry.name)" : "CHANGED \(entry.name): \(change)")
                } catch {
                    throw fail("\(entry.name): \(error)")
                }
            }
        }
    }
}
