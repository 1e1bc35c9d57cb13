import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Debug selectors in the manner of Packetbeat's `-d smtp,tcp`: the named components log at
/// debug level, the rest at warning (or info with `-e`). Logs always go to stderr, so they
/// never mix with events on stdout.
public struct LoggingSetup: Sendable {
    public var selectors: Set<String>
    public var verbose: Bool

    public init(selectors: Set<String> = [], verbose: Bool = false) {
        self.selectors = selectors
        self.verbose = verbose
    }

    public func logger(for component: String) -> Logger {
        let level: Logger.Level = selectors.contains(component) || selectors.contains("*")
            ? .debug : (verbose ? .info : .warning)
        var logger = Logger(label: component) { label in StderrLogHandler(label: label) }
        logger.logLevel = level
        return logger
    }
}

/// One line per message: `level component: message key=value…`.
struct StderrLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "\(event.level) \(label): \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() { line += " \(key)=\(merged[key]!)" }
        line += "\n"
        fputs(line, stderr)
    }
}
