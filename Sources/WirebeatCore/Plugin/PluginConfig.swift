/// A parsed config value (from YAML), kept untyped until a plugin asks for a typed setting.
public indirect enum ConfigValue: Sendable, Equatable {
    case scalar(String)
    case list([ConfigValue])
    case map([(String, ConfigValue)])
    case null

    public static func == (a: ConfigValue, b: ConfigValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.scalar(x), .scalar(y)): return x == y
        case let (.list(x), .list(y)): return x == y
        case let (.map(x), .map(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    var shortDescription: String {
        switch self {
        case .scalar(let s): return "'\(s)'"
        case .list: return "a list"
        case .map: return "a mapping"
        case .null: return "nothing"
        }
    }
}

/// A bad config: `key` is the dotted path of the offending setting.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let message: String
    public init(key: String, _ message: String) { self.key = key; self.message = message }
    public var description: String { key.isEmpty ? "config: \(message)" : "config: \(key): \(message)" }
}

/// One plugin's config section with typed, validated accessors. Every accessor records the
/// key it read, so settings nobody reads (typos) are reported as unknown.
public final class PluginConfig {
    public let pluginName: String
    /// Ports the plugin listens on (from `ports`, else its defaults). Read by the core.
    public internal(set) var ports: [UInt16] = []
    private let values: [String: ConfigValue]
    private var readKeys: Set<String> = ["ports", "enabled"]

    public init(pluginName: String, values: [String: ConfigValue] = [:]) {
        self.pluginName = pluginName
        self.values = values
    }

    private func path(_ key: String) -> String { "protocols.\(pluginName).\(key)" }

    private func scalar(_ key: String) throws -> String? {
        readKeys.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .scalar(let s)?: return s
        case let other?: throw ConfigError(key: path(key), "expected a single value, got \(other.shortDescription)")
        }
    }

    public func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let s = try scalar(key) else { return defaultValue }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(key: path(key), "expected true or false, got '\(s)'")
        }
    }

    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let s = try scalar(key) else { return defaultValue }
        guard let v = ConfigParsing.byteSize(s) else {
            throw ConfigError(key: path(key), "expected a whole number, got '\(s)'")
        }
        guard range.contains(v) else {
            throw ConfigError(key: path(key), "\(v) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A duration such as `10s`, `500ms`, `2m`, `1h` (a bare number is seconds).
    public func duration(_ key: String, default defaultValue: TimeSpan) throws -> TimeSpan {
        guard let s = try scalar(key) else { return defaultValue }
        guard let d = ConfigParsing.duration(s), d.nanoseconds > 0 else {
            throw ConfigError(key: path(key), "expected a positive duration such as 10s or 500ms, got '\(s)'")
        }
        return d
    }

    public func string(_ key: String, default defaultValue: String?, allowed: [String]? = nil) throws -> String? {
        guard let s = try scalar(key) else { return defaultValue }
        if let allowed, !allowed.contains(s) {
            throw ConfigError(key: path(key), "expected one of \(allowed.joined(separator: ", ")), got '\(s)'")
        }
        return s
    }

    public func stringList(_ key: String, default defaultValue: [String]) throws -> [String] {
        readKeys.insert(key)
        switch values[key] {
        case nil, .null?: return defaultValue
        case .scalar(let s)?: return [s]
        case .list(let items)?:
            return try items.enumerated().map { i, item in
                guard case .scalar(let s) = item else {
                    throw ConfigError(key: path("\(key)[\(i)]"), "expected a single value, got \(item.shortDescription)")
                }
                return s
            }
        case .map?: throw ConfigError(key: path(key), "expected a list, got a mapping")
        }
    }

    /// Settings present in the section that no accessor read.
    public var unknownKeys: [String] { values.keys.filter { !readKeys.contains($0) }.sorted() }

    func readPorts(defaults: [UInt16]) throws -> [UInt16] {
        let raw = try stringList("ports", default: defaults.map(String.init))
        return try raw.enumerated().map { i, s in
            guard let p = UInt16(s), p > 0 else {
                throw ConfigError(key: path("ports[\(i)]"), "expected a port number 1-65535, got '\(s)'")
            }
            return p
        }
    }

    func enabled() throws -> Bool { try bool("enabled", default: true) }
}

/// Parsing of the value forms config files use.
public enum ConfigParsing {
    public static func duration(_ text: String) -> TimeSpan? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            guard let v = Double(s.dropLast(suffix.count)), v >= 0, v < 1e9 else { return nil }
            return nanoseconds(v * scale)
        }
        guard let v = Double(s), v >= 0, v < 1e9 else { return nil }
        return nanoseconds(v * 1e9)
    }

    /// Rounded (decimal fractions are inexact in binary); nil past what Int64 holds.
    private static func nanoseconds(_ value: Double) -> TimeSpan? {
        let n = value.rounded()
        return n < 9.2e18 ? TimeSpan(nanoseconds: Int64(n)) : nil
    }

    /// A whole number, optionally with a binary size suffix (`10MiB`, `64KiB`).
    public static func byteSize(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            guard let v = Int(s.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)) else { return nil }
            return v.multipliedReportingOverflow(by: scale).overflow ? nil : v * scale
        }
        return Int(s)
    }
}

import Foundation
