import Yams
import Foundation

/// `wirebeat.yml`: plugin sections in the shape of `packetbeat.yml`, plus TCP limits.
///
/// ```yaml
/// protocols:
///   smtp:
///     ports: [25, 587]
///     transaction_timeout: 10s
/// tcp:
///   max_stream_bytes: 10MiB
/// ```
/// Packetbeat's list form (`packetbeat.protocols: [{type: smtp, ports: [25]}]`) is accepted too.
public struct ConfigFile {
    public var protocols: [(name: String, values: [String: ConfigValue])]?
    public var tcp = TCPOptions()
    public var captureFilter: String?

    public init() {}

    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(key: "", "\(path): cannot read config file")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func parse(_ text: String, source: String = "config") throws -> ConfigFile {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            let oneLine = "\(error)".split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            throw ConfigError(key: "", "\(source): invalid YAML: \(oneLine)")
        }
        var file = ConfigFile()
        guard let node else { return file }
        guard case .map(let top) = convert(node) else {
            throw ConfigError(key: "", "\(source): expected a mapping at the top level")
        }
        for (key, value) in top {
            switch key {
            case "protocols", "packetbeat.protocols":
                file.protocols = try protocolSections(value, key: key)
            case "tcp":
                guard case .map(let settings) = value else { throw ConfigError(key: "tcp", "expected a mapping") }
                for (k, v) in settings {
                    guard case .scalar(let s) = v, let n = ConfigParsing.byteSize(s), n > 0 else {
                        throw ConfigError(key: "tcp.\(k)", "expected a positive whole number, got \(v.shortDescription)")
                    }
                    switch k {
                    case "max_stream_bytes": file.tcp.maxStreamBytes = n
                    case "max_out_of_order_segments": file.tcp.maxOutOfOrderSegments = n
                    default: throw ConfigError(key: "tcp.\(k)", "unknown setting")
                    }
                }
            case "filter":
                guard case .scalar(let s) = value else { throw ConfigError(key: "filter", "expected a BPF filter string") }
                file.captureFilter = s
            default:
                throw ConfigError(key: key, "unknown setting (expected protocols, tcp or filter)")
            }
        }
        return file
    }

    private static func protocolSections(_ value: ConfigValue, key: String) throws -> [(name: String, values: [String: ConfigValue])] {
        var sections: [(name: String, values: [String: ConfigValue])] = []
        var seen = Set<String>()
        func add(_ name: String, _ settings: ConfigValue, _ path: String) throws {
            var values: [String: ConfigValue] = [:]
            switch settings {
            case .null: break
            case .map(let pairs): for (k, v) in pairs where k != "type" { values[k] = v }
            default: throw ConfigError(key: path, "expected a mapping of settings")
            }
            guard seen.insert(name).inserted else { throw ConfigError(key: path, "protocol configured twice") }
            sections.append((name, values))
        }
        switch value {
        case .map(let pairs):
            for (name, settings) in pairs { try add(name, settings, "\(key).\(name)") }
        case .list(let items):
            for (i, item) in items.enumerated() {
                guard case .map(let pairs) = item, case .scalar(let name)? = pairs.first(where: { $0.0 == "type" })?.1 else {
                    throw ConfigError(key: "\(key)[\(i)]", "expected a mapping with a 'type'")
                }
                try add(name, item, "\(key)[\(i)]")
            }
        case .null: break
        default: throw ConfigError(key: key, "expected a mapping of protocols")
        }
        return sections
    }

    private static func convert(_ node: Node) -> ConfigValue {
        switch node {
        case .scalar(let s):
            if s.style == .plain && (s.string == "~" || s.string == "null" || s.string.isEmpty) { return .null }
            return .scalar(s.string)
        case .sequence(let seq): return .list(seq.map(convert))
        case .mapping(let map):
            return .map(map.map { (k, v) in (k.string ?? "\(k)", convert(v)) })
        }
    }
}
