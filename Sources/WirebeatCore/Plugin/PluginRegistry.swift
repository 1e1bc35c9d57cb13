import Logging

/// A plugin made from config, with its TCP and/or UDP side erased to what the core calls.
public final class LoadedPlugin {
    public let name: String
    public let ports: [UInt16]
    public let instance: any ProtocolPlugin
    let tcp: TCPDriver?
    let udp: (any UDPProtocolPlugin)?
    let logger: Logger

    init(name: String, ports: [UInt16], instance: any ProtocolPlugin, logger: Logger) {
        self.name = name
        self.ports = ports
        self.instance = instance
        self.logger = logger
        if let tcpPlugin = instance as? any TCPProtocolPlugin {
            self.tcp = TCPDriver(tcpPlugin)
        } else {
            self.tcp = nil
        }
        self.udp = instance as? any UDPProtocolPlugin
    }

    public var transports: [Transport] { (tcp != nil ? [.tcp] : []) + (udp != nil ? [.udp] : []) }
}

/// Makes the per-connection handler for a TCP plugin without the core knowing its state type.
struct TCPDriver {
    let timeout: TimeSpan
    let makeHandler: (ConnectionInfo) -> TCPStreamHandler

    init<P: TCPProtocolPlugin>(_ plugin: P) {
        timeout = plugin.connectionTimeout
        makeHandler = { info in TCPStreamHandlerBox(plugin: plugin, connection: info) }
    }
}

/// The core's view of one connection's plugin state.
protocol TCPStreamHandler: AnyObject {
    func parse(_ stream: inout StreamBuffer, direction: Direction, context: PluginContext)
    func receivedFIN(direction: Direction, reason: StreamEnd, remaining: inout StreamBuffer, context: PluginContext)
    func gap(direction: Direction, byteCount: Int, stream: inout StreamBuffer, context: PluginContext) -> GapDecision
    func close(reason: CloseReason, context: PluginContext)
    func resetState()
}

final class TCPStreamHandlerBox<P: TCPProtocolPlugin>: TCPStreamHandler {
    let plugin: P
    let connection: ConnectionInfo
    @exclusivity(unchecked) var state: P.ConnectionState

    init(plugin: P, connection: ConnectionInfo) {
        self.plugin = plugin
        self.connection = connection
        self.state = plugin.makeConnectionState(for: connection)
    }

    func parse(_ stream: inout StreamBuffer, direction: Direction, context: PluginContext) {
        plugin.parse(&stream, direction: direction, state: &state, context: context)
    }
    func receivedFIN(direction: Direction, reason: StreamEnd, remaining: inout StreamBuffer, context: PluginContext) {
        plugin.receivedFIN(direction: direction, reason: reason, remaining: &remaining, state: &state, context: context)
    }
    func gap(direction: Direction, byteCount: Int, stream: inout StreamBuffer, context: PluginContext) -> GapDecision {
        plugin.gapInStream(direction: direction, byteCount: byteCount, stream: &stream, state: &state, context: context)
    }
    func close(reason: CloseReason, context: PluginContext) {
        plugin.connectionClosed(reason: reason, state: &state, context: context)
    }
    func resetState() { state = plugin.makeConnectionState(for: connection) }
}

/// Plugins known by name. The CLI registers the built-in ones; an external package
/// registers its own the same way.
public struct PluginRegistry {
    public struct Entry {
        public let name: String
        public let defaultPorts: [UInt16]
        public let transports: String
        let make: (PluginConfig) throws -> any ProtocolPlugin
    }

    public private(set) var entries: [String: Entry] = [:]

    public init() {}

    public mutating func register<P: ProtocolPlugin>(_ type: P.Type) {
        var transports: [String] = []
        if P.self is any TCPProtocolPlugin.Type { transports.append("tcp") }
        if P.self is any UDPProtocolPlugin.Type { transports.append("udp") }
        entries[P.name] = Entry(name: P.name, defaultPorts: P.defaultPorts,
                                transports: transports.joined(separator: "+"),
                                make: { try P(config: $0) })
    }

    public var names: [String] { entries.keys.sorted() }

    /// Builds the enabled plugins from config sections, checking names, ports and keys.
    /// With no sections at all, every registered plugin runs on its default ports.
    public func load(_ sections: [(name: String, values: [String: ConfigValue])]?,
                     logging: LoggingSetup = LoggingSetup()) throws -> [LoadedPlugin] {
        let chosen: [(String, [String: ConfigValue])] = sections.map { $0.map { ($0.name, $0.values) } }
            ?? names.map { ($0, [:]) }
        var loaded: [LoadedPlugin] = []
        var portOwner: [String: String] = [:]  // "tcp/25" -> plugin
        for (name, values) in chosen {
            guard let entry = entries[name] else {
                throw ConfigError(key: "protocols.\(name)",
                                  "unknown protocol (known: \(names.joined(separator: ", ")))")
            }
            let config = PluginConfig(pluginName: name, values: values)
            guard try config.enabled() else { continue }
            config.ports = try config.readPorts(defaults: entry.defaultPorts)
            let instance = try entry.make(config)
            if let unknown = config.unknownKeys.first {
                throw ConfigError(key: "protocols.\(name).\(unknown)", "unknown setting")
            }
            let plugin = LoadedPlugin(name: name, ports: config.ports, instance: instance,
                                      logger: logging.logger(for: name))
            for transport in plugin.transports {
                for port in config.ports {
                    let slot = "\(transport.rawValue)/\(port)"
                    if let other = portOwner[slot] {
                        throw ConfigError(key: "protocols.\(name).ports",
                                          "port \(port)/\(transport.rawValue) is already used by \(other)")
                    }
                    portOwner[slot] = name
                }
            }
            loaded.append(plugin)
        }
        return loaded
    }
}
