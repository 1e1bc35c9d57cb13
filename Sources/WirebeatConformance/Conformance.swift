import Foundation
import WirebeatCore

/// Settings of a conformance run.
public struct ConformanceOptions: Sendable {
    public var modes: [MutationMode] = MutationMode.allCases
    public var budget: Budget = .quick
    public var seed: UInt64 = 1
    /// Where to write the mutated capture of each failure (as a pcap `wirebeat -I` replays).
    public var saveFailuresTo: String?
    /// A replay taking longer than this is reported as a hang (the process is stopped).
    public var hangLimitSeconds: Double = 60
    /// Failures described in detail per capture and mode (the rest are only counted).
    public var detailedFailures = 3
    public init() {}
}

/// One failed mutated replay, with everything needed to reproduce it.
public struct ConformanceFailure: Sendable, CustomStringConvertible {
    public let capture: String
    public let mode: MutationMode
    public let seed: UInt64
    public let parameters: String
    public let message: String
    public var savedCapture: String?

    public var description: String {
        var text = "\(capture) [\(mode)] seed=\(seed) \(parameters): \(message)"
        if let savedCapture { text += "\n  reproduce: wirebeat -I \(savedCapture)" }
        return text
    }
}

/// Runs, passes and failures of one capture under one mode.
public struct ConformanceResult: Sendable {
    public let capture: String
    public let plugin: String
    public let mode: MutationMode
    public var runs = 0
    public var passed = 0
    public var failures: [ConformanceFailure] = []
    public var failedCount: Int { runs - passed }
    /// For loss modes: golden events after the damage that still came out, and how many there were.
    public var recovered = 0
    public var recoverable = 0
}

/// Replays corpus captures under every mutation and judges the output against the goldens.
public struct ConformanceSuite {
    public let registry: PluginRegistry
    public let options: ConformanceOptions

    public init(registry: PluginRegistry, options: ConformanceOptions = ConformanceOptions()) {
        self.registry = registry
        self.options = options
    }

    /// All modes for one corpus entry (its golden must exist and match the capture).
    public func run(_ entry: CorpusEntry) throws -> [ConformanceResult] {
        let (capture, golden, timeout) = try prepare(entry)
        return options.modes.compactMap { mode in
            run(entry, mode: mode, capture: capture, golden: golden, timeout: timeout)
        }
    }

    public func prepare(_ entry: CorpusEntry) throws -> (PacketCapture, [JSONValue], TimeSpan) {
        guard let golden = try Golden.load(path: entry.goldenPath) else {
            throw CorpusError("\(entry.name): no golden file; create it with: wirebeat golden update \(entry.name)")
        }
        let sha = try entry.captureSHA256()
        guard golden.sha256 == sha else {
            throw CorpusError("\(entry.name): golden was made from another capture (sha256 \(golden.sha256), now \(sha))")
        }
        let plugins = try entry.loadPlugins(registry: registry)
        let timeout = plugins.compactMap { plugin -> TimeSpan? in
            (plugin.instance as? any TCPProtocolPlugin).map { $0.connectionTimeout }
        }.max() ?? .seconds(10)
        return (try PacketCapture.load(file: entry.capturePath), golden.events, timeout)
    }

    /// One mode for one entry; nil when the mode does not apply (e.g. `drop` on a TCP-only capture).
    public func run(_ entry: CorpusEntry, mode: MutationMode, capture: PacketCapture, golden: [JSONValue],
                    timeout: TimeSpan) -> ConformanceResult? {
        run(name: entry.name, plugin: entry.plugin, mode: mode, capture: capture, golden: golden, timeout: timeout) {
            try entry.loadPlugins(registry: registry)
        }
    }

    /// One mode over an in-memory capture: `makePlugins` builds fresh plugins for each replay.
    public func run(name: String, plugin: String, mode: MutationMode, capture: PacketCapture, golden: [JSONValue],
                    timeout: TimeSpan, makePlugins: () throws -> [LoadedPlugin]) -> ConformanceResult? {
        let planner = MutationPlanner(capture: capture, budget: options.budget, seed: options.seed, connectionTimeout: timeout)
        let mutations = planner.mutations(mode)
        guard !mutations.isEmpty else { return nil }
        var result = ConformanceResult(capture: name, plugin: plugin, mode: mode)
        for mutation in mutations {
            result.runs += 1
            let events: [JSONValue]
            do {
                let plugins = try makePlugins()
                events = Watchdog.run(seconds: options.hangLimitSeconds,
                                      what: "\(name) [\(mode)] seed=\(mutation.seed) \(mutation.parameters)") {
                    PacketCapture(packets: mutation.packets).replay(plugins: plugins).events
                }
            } catch {
                result.failures.append(failure(name, mutation, "\(error)"))
                continue
            }
            let verdict = Judge.check(mode, golden: golden, actual: events, mutation: mutation)
            if case .lossy = mutation.expectation ?? mode.expectation, let time = mutation.damageTime {
                let (got, total) = Judge.recovery(golden: golden, actual: events, after: time)
                result.recovered += got
                result.recoverable += total
            }
            if let problem = verdict {
                if result.failures.count < options.detailedFailures {
                    var f = failure(name, mutation, problem)
                    f.savedCapture = save(mutation, name: name, index: result.runs)
                    result.failures.append(f)
                }
            } else {
                result.passed += 1
            }
        }
        return result
    }

    private func failure(_ name: String, _ m: Mutation, _ message: String) -> ConformanceFailure {
        ConformanceFailure(capture: name, mode: m.mode, seed: m.seed, parameters: m.parameters, message: message)
    }

    private func save(_ m: Mutation, name: String, index: Int) -> String? {
        guard let dir = options.saveFailuresTo else { return nil }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = name.replacingOccurrences(of: "/", with: "_") + "-\(m.mode)-\(index).pcap"
        let path = (dir as NSString).appendingPathComponent(file)
        do { try PacketCapture(packets: m.packets).write(to: path) } catch { return nil }
        return path
    }
}

/// Judges a mutated replay against the golden.
public enum Judge {
    static let timeFields: Set<String> = ["@timestamp", "start", "end", "duration"]

    /// nil when the output meets the mode's expectation, else a readable reason.
    public static func check(_ mode: MutationMode, golden: [JSONValue], actual: [JSONValue], mutation: Mutation) -> String? {
        switch mutation.expectation ?? mode.expectation {
        case .survives:
            return nil
        case .identical:
            if golden == actual { return nil }
            if mutation.movesTime && golden.map(stripTime) == actual.map(stripTime) { return nil }
            return "output differs from the golden:\n" + EventDiff.describe(expected: golden, actual: actual)
        case .lossy(let note):
            let ending = mode == .fin || mode == .rst
            if let problem = lossy(golden: golden, actual: actual, note: note, ignoringTime: false, mutation: mutation,
                                   acceptEndedByCut: ending) {
                return problem
            }
            return ending ? flushedAtEnd(golden: golden, actual: actual, mutation: mutation) : nil
        case .lossyIgnoringTime:
            if let problem = lossy(golden: golden, actual: actual, note: nil, ignoringTime: true, mutation: mutation) {
                return problem
            }
            return expiredAtTimeout(golden: golden, actual: actual, mutation: mutation)
        }
    }

    /// FIN/RST: work begun by the cut (golden `@timestamp` at or before it) on the cut
    /// connection must be published, complete or with a note — never silently lost.
    static func flushedAtEnd(golden: [JSONValue], actual: [JSONValue], mutation: Mutation) -> String? {
        guard let cut = mutation.damageTime?.rfc3339 else { return nil }
        let touched = Set(mutation.touchedFlows.map(\.key))
        var published: [String: Int] = [:]
        for e in actual { published[(e["@timestamp"]?.stringValue ?? "") + flowKey(e), default: 0] += 1 }
        for (index, event) in golden.enumerated() where touched.contains(flowKey(event)) {
            guard let start = event["@timestamp"]?.stringValue, start <= cut else { continue }
            let k = start + flowKey(event)
            if let n = published[k], n > 0 { published[k] = n - 1; continue }
            return "golden event #\(index) (begun at \(start), before the connection ended) was not published, not even with a note:\n" + JSONWriter.pretty(event)
        }
        return nil
    }

    /// Timeout: a golden event that spans the idle time (begun before, ended after) must not
    /// come out whole: its state should have been expired and published with a note.
    static func expiredAtTimeout(golden: [JSONValue], actual: [JSONValue], mutation: Mutation) -> String? {
        guard let cut = mutation.damageTime?.rfc3339 else { return nil }
        let touched = Set(mutation.touchedFlows.map(\.key))
        // Count, not set membership: identical transactions that did not span the idle time
        // may legitimately come out whole.
        var produced: [String: Int] = [:]
        for e in actual where e.value(at: "error.message") == nil { produced[JSONWriter.compact(stripTime(e)), default: 0] += 1 }
        var allowed: [String: Int] = [:]
        var spanning: [(Int, JSONValue)] = []
        for (index, event) in golden.enumerated() {
            let start = event["@timestamp"]?.stringValue ?? "", end = event.value(at: "event.end")?.stringValue ?? ""
            if touched.contains(flowKey(event)) && start <= cut && end > cut {
                spanning.append((index, event))
            } else {
                allowed[JSONWriter.compact(stripTime(event)), default: 0] += 1
            }
        }
        for (index, event) in spanning {
            let k = JSONWriter.compact(stripTime(event))
            if produced[k, default: 0] > allowed[k, default: 0] {
                return "golden event #\(index) spans the idle time but came out whole: state was kept past the timeout:\n" + JSONWriter.pretty(event)
            }
        }
        return nil
    }

    /// - Parameter acceptEndedByCut: (FIN/RST) an event of the cut connection that begins as
    ///   a golden event begins and ends at the cut is the same transaction ended by the cut —
    ///   e.g. a body delimited by the connection's close — and needs no note.
    private static func lossy(golden: [JSONValue], actual: [JSONValue], note: String?, ignoringTime: Bool,
                              mutation: Mutation, acceptEndedByCut: Bool = false) -> String? {
        func key(_ e: JSONValue) -> String { JSONWriter.compact(ignoringTime ? stripTime(e) : e) }
        var available: [String: Int] = [:]
        for e in golden { available[key(e), default: 0] += 1 }
        let touched = Set(mutation.touchedFlows.map(\.key))
        let cut = mutation.damageTime?.rfc3339 ?? ""
        var goldenStarts: [String: Int] = [:]
        for e in golden { goldenStarts[(e["@timestamp"]?.stringValue ?? "") + flowKey(e), default: 0] += 1 }
        for (index, event) in actual.enumerated() {
            let k = key(event)
            if let n = available[k], n > 0 { available[k] = n - 1; continue }
            let message = event.value(at: "error.message")?.stringValue
            if let message, note == nil || message.contains(note!) { continue }
            if acceptEndedByCut, touched.contains(flowKey(event)),
               let end = event.value(at: "event.end")?.stringValue, end >= cut,
               let n = goldenStarts[(event["@timestamp"]?.stringValue ?? "") + flowKey(event)], n > 0 {
                goldenStarts[(event["@timestamp"]?.stringValue ?? "") + flowKey(event)] = n - 1
                continue
            }
            let want = note.map { "a '\($0)' note" } ?? "a note in error.message"
            let nearest = nearestGolden(to: event, in: golden)
            return "event #\(index) matches no golden event and carries no \(want)" +
                (message.map { " (error.message: \($0))" } ?? "") + ":\n" +
                EventDiff.unifiedDiff(nearest.map { JSONWriter.pretty($0).split(separator: "\n").map(String.init) } ?? [],
                                      JSONWriter.pretty(event).split(separator: "\n").map(String.init), context: 2)
                .joined(separator: "\n")
        }
        // Connections the mutation did not touch must come out whole.
        var remaining: [String: Int] = [:]
        for e in actual { remaining[key(e), default: 0] += 1 }
        for (index, event) in golden.enumerated() where !touched.contains(flowKey(event)) {
            let k = key(event)
            if let n = remaining[k], n > 0 { remaining[k] = n - 1; continue }
            return "golden event #\(index) of a connection the mutation did not touch is missing:\n" + JSONWriter.pretty(event)
        }
        return nil
    }

    /// Golden events at or after `time` and how many of them came out unchanged.
    public static func recovery(golden: [JSONValue], actual: [JSONValue], after time: Timestamp) -> (Int, Int) {
        let cut = time.rfc3339
        var remaining: [String: Int] = [:]
        for e in actual { remaining[JSONWriter.compact(e), default: 0] += 1 }
        var total = 0, got = 0
        for e in golden where (e["@timestamp"]?.stringValue ?? "") >= cut {
            total += 1
            let k = JSONWriter.compact(e)
            if let n = remaining[k], n > 0 { remaining[k] = n - 1; got += 1 }
        }
        return (got, total)
    }

    static func flowKey(_ e: JSONValue) -> String {
        func endpoint(_ side: String) -> Endpoint? {
            guard let ip = e.value(at: "\(side).ip")?.stringValue.flatMap(IPAddress.init),
                  let port = e.value(at: "\(side).port")?.intValue else { return nil }
            return Endpoint(ip: ip, port: UInt16(truncatingIfNeeded: port))
        }
        guard let a = endpoint("source"), let b = endpoint("destination") else { return "" }
        return FlowID(a, b, []).key
    }

    static func stripTime(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let pairs):
            return .object(pairs.filter { !timeFields.contains($0.0) }.map { ($0.0, stripTime($0.1)) })
        case .array(let items): return .array(items.map(stripTime))
        default: return v
        }
    }

    private static func nearestGolden(to event: JSONValue, in golden: [JSONValue]) -> JSONValue? {
        let lines = Set(JSONWriter.pretty(event).split(separator: "\n"))
        return golden.max { a, b in
            Set(JSONWriter.pretty(a).split(separator: "\n")).intersection(lines).count <
                Set(JSONWriter.pretty(b).split(separator: "\n")).intersection(lines).count
        }
    }
}

/// Stops the process with a reproducible description if a replay hangs: a hang is a bug
/// that no in-process check could otherwise report.
enum Watchdog {
    static func run<T>(seconds: Double, what: String, _ body: () -> T) -> T {
        let alarm = DispatchWorkItem {
            FileHandle.standardError.write("wirebeat conformance: replay did not finish in \(Int(seconds)) s (hang): \(what)\n".data(using: .utf8)!)
            exit(3)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: alarm)
        defer { alarm.cancel() }
        return body()
    }
}
