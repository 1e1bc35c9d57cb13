import ArgumentParser
import WirebeatCore
import WirebeatPlugins
#if canImport(Glibc)
import Glibc
#endif

/// `wirebeat`: replay a capture or sniff an interface, publish protocol events as JSON.
public struct WirebeatCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "wirebeat",
        abstract: "Turns network traffic into structured protocol events, one plugin per protocol.",
        subcommands: [RunCommand.self, GoldenCommand.self, ConformanceCommand.self],
        defaultSubcommand: RunCommand.self
    )
    public init() {}
}

/// Prints a one-line error and exits non-zero.
func fail(_ message: String) -> ExitCode {
    fputs("wirebeat: error: \(message)\n", stderr)
    return ExitCode(1)
}

public struct RunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Replay a capture file (-I) or capture live (-i) and print events (the default command)."
    )

    @Option(name: [.customShort("I"), .customLong("input")], help: "Capture file to replay (pcap or pcapng).")
    var inputFile: String?

    @Option(name: [.customShort("i"), .customLong("interface")], help: "Interface to capture on live (e.g. lo, any).")
    var interface: String?

    @Option(name: [.customShort("c"), .customLong("config")], help: "YAML config (default: ./wirebeat.yml if present).")
    var configPath: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write events to this file (default: stdout).")
    var outputPath: String?

    @Option(name: .long, help: "Output format: ndjson, or bulk for Elasticsearch/OpenSearch _bulk.")
    var format: String = "ndjson"

    @Option(name: .long, help: "Index named in bulk action lines.")
    var index: String = "wirebeat"

    @Option(name: [.customShort("d"), .customLong("debug")], help: "Debug logging for components, e.g. smtp,tcp (or *).")
    var debugSelectors: String?

    @Flag(name: [.customShort("e")], help: "Log to stderr at info level.")
    var logToStderr = false

    @Flag(name: .long, help: "Print counters (packets, drops by reason, gaps, connections, events) to stderr at the end.")
    var stats = false

    @Flag(name: .long, help: "List the available plugins and exit.")
    var listPlugins = false

    @Option(name: .long, help: """
        Replay: worker threads, each handling its share of the flows (default: one per core, \
        at most 4; 1 runs on the calling thread). The output is the same for any number.
        """)
    var workers: Int?

    @Option(name: .long, help: "Live capture: BPF filter (default: built from the configured ports).")
    var filter: String?

    @Option(name: .long, help: "Live capture: stop after this many packets.")
    var count: Int?

    @Option(name: .long, help: "Live capture: stop after this long (e.g. 10s, 2m).")
    var duration: String?

    public init() {}

    public func run() throws {
        let registry = BuiltinPlugins.registry
        if listPlugins {
            for name in registry.names {
                let entry = registry.entries[name]!
                print("\(name)\t\(entry.transports)\tports \(entry.defaultPorts.map(String.init).joined(separator: ","))")
            }
            return
        }
        guard let outputFormat = OutputFormat(rawValue: format) else {
            throw fail("--format: expected ndjson or bulk, got '\(format)'")
        }
        guard (inputFile == nil) != (interface == nil) else {
            throw fail("give exactly one of -I FILE (replay a capture) or -i INTERFACE (capture live)")
        }
        var stopAfter: TimeSpan?
        if let duration {
            guard let d = ConfigParsing.duration(duration), d.nanoseconds > 0 else {
                throw fail("--duration: expected a duration such as 10s, got '\(duration)'")
            }
            stopAfter = d
        }
        if let count, count <= 0 { throw fail("--count: expected a positive number, got \(count)") }
        if let workers, workers <= 0 { throw fail("--workers: expected a positive number, got \(workers)") }

        let logging = LoggingSetup(
            selectors: Set((debugSelectors ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }),
            verbose: logToStderr)
        let config: ConfigFile
        let plugins: [LoadedPlugin]
        do {
            config = try loadConfig()
            plugins = try registry.load(config.protocols, logging: logging)
        } catch let error as ConfigError {
            throw fail(error.description)
        }
        guard !plugins.isEmpty else { throw fail("config: no protocol is enabled") }

        let writer: LineWriter
        do { writer = try LineWriter(path: outputPath, format: outputFormat, index: index) } catch {
            throw fail("\(error)")
        }
        let threads = inputFile == nil ? 1 : workers ?? min(RunCommand.cores, 4)
        if let inputFile, threads > 1, ParallelReplay.idleLimits(of: plugins) != nil {
            let result: ParallelReplay.Result
            do {
                result = try ParallelReplay.run(
                    file: inputFile, workers: threads,
                    makePlugins: { try registry.load(config.protocols, logging: logging) },
                    tcpOptions: config.tcp, logging: logging,
                    formatLine: writer.formatLine, formatTemplated: .init(writer.formatTemplated),
                    write: writer.gather(formatted:), release: writer.writeGathered)
            } catch {
                writer.close()
                throw fail("\(error)")
            }
            writer.close()
            if stats { printStats(result.stats) }
            if let failure = result.failure { throw fail("\(failure)") }
            if let failure = writer.failure { throw fail(failure) }
            return
        }

        let sniffer = Sniffer(plugins: plugins, publisher: writer, tcpOptions: config.tcp, logging: logging)
        var failure: String?
        do {
            if let inputFile {
                try Replay.run(file: inputFile, into: sniffer)
            } else if let interface {
                try capture(interface: interface, sniffer: sniffer, plugins: plugins, config: config, stopAfter: stopAfter)
            }
        } catch {
            failure = "\(error)"
        }
        writer.close()
        if stats { printStats(sniffer.stats) }
        if let failure { throw fail(failure) }
        if let failure = writer.failure { throw fail(failure) }
    }

    /// Cores this process may run on.
    static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    private func loadConfig() throws -> ConfigFile {
        if let configPath { return try ConfigFile.load(path: configPath) }
        if access("wirebeat.yml", R_OK) == 0 { return try ConfigFile.load(path: "wirebeat.yml") }
        return ConfigFile()
    }

    private func capture(interface: String, sniffer: Sniffer, plugins: [LoadedPlugin], config: ConfigFile,
                         stopAfter: TimeSpan?) throws {
        let built = LiveCapture.filter(for: plugins)
        let source: PcapSource
        if let chosen = filter ?? config.captureFilter {
            source = try PcapSource.open(interface: interface, filter: chosen)
        } else {
            source = try PcapSource.open(interface: interface, filter: built.filter, fallbackFilter: built.untagged)
        }
        try LiveCapture.run(source: source, sniffer: sniffer, maxPackets: count, stopAfter: stopAfter)
    }

    private func printStats(_ stats: SnifferStats) {
        fputs("wirebeat stats: " + JSONWriter.compact(stats.json) + "\n", stderr)
    }
}
