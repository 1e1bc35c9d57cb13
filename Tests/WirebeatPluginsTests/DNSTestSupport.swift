@testable import WirebeatPlugins
import WirebeatCore

/// Hand-built DNS messages.
struct DNSBuilder {
    var bytes: [UInt8] = []

    init(id: UInt16 = 0x1234, flags: UInt16 = 0x0100, counts: (UInt16, UInt16, UInt16, UInt16) = (1, 0, 0, 0)) {
        u16(id); u16(flags); u16(counts.0); u16(counts.1); u16(counts.2); u16(counts.3)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func u32(_ v: UInt32) { bytes += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func name(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in text.split(separator: ".") { out.append(UInt8(label.utf8.count)); out += Array(label.utf8) }
        return out + [0]
    }

    mutating func question(_ name: String, _ type: UInt16, _ qclass: UInt16 = 1) {
        bytes += DNSBuilder.name(name); u16(type); u16(qclass)
    }

    mutating func record(_ name: [UInt8], _ type: UInt16, ttl: UInt32 = 300, rclass: UInt16 = 1, rdata: [UInt8]) {
        bytes += name; u16(type); u16(rclass); u32(ttl); u16(UInt16(rdata.count)); bytes += rdata
    }

    mutating func record(_ name: String, _ type: UInt16, ttl: UInt32 = 300, rclass: UInt16 = 1, rdata: [UInt8]) {
        record(DNSBuilder.name(name), type, ttl: ttl, rclass: rclass, rdata: rdata)
    }

    /// A query for `name`/`type`, with an OPT record when `edns`.
    static func query(id: UInt16, _ name: String, _ type: UInt16, edns: Bool = false) -> [UInt8] {
        var b = DNSBuilder(id: id, flags: 0x0100, counts: (1, 0, 0, edns ? 1 : 0))
        b.question(name, type)
        if edns { b.record([0], DNSType.OPT, ttl: 0x0000_8000, rclass: 1232, rdata: []) }
        return b.bytes
    }

    /// A response with A answers for `name`.
    static func response(id: UInt16, _ name: String, addresses: [[UInt8]] = [[192, 0, 2, 1]], rcode: UInt16 = 0) -> [UInt8] {
        var b = DNSBuilder(id: id, flags: 0x8580 | rcode, counts: (1, UInt16(addresses.count), 0, 0))
        b.question(name, DNSType.A)
        for a in addresses { b.record([0xC0, 12], DNSType.A, rdata: a) }
        return b.bytes
    }
}

/// Drives the plugin directly, as the core would.
final class DNSHarness {
    let plugin: DNSPlugin
    let publisher = CollectingPublisher()
    /// Where the events go instead of `publisher`, if set.
    var sink: EventPublisher?
    var client = Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000)
    let server = Endpoint(ip: IPAddress("10.0.0.53")!, port: 53)
    var time = Timestamp(seconds: 1_700_000_000)

    init(_ settings: [String: ConfigValue] = [:], cachesRenderedValues: Bool = true) {
        plugin = try! DNSPlugin(config: PluginConfig(pluginName: "dns", values: settings),
                                cachesRenderedValues: cachesRenderedValues)
    }

    /// A UDP flow's connection, made once and kept, as the sniffer's flow table does (the
    /// plugin's answer templates are per flow: `EventTemplate.flowIdentity`).
    private var udpFlows: [UInt16: ConnectionInfo] = [:]

    func context(_ transport: Transport) -> PluginContext {
        // As the sniffer's: a UDP flow's ID is 0.
        let connection: ConnectionInfo
        if transport == .udp, let known = udpFlows[client.port] {
            connection = known
        } else {
            connection = ConnectionInfo(id: transport == .udp ? 0 : 1, transport: transport, client: client, server: server)
            if transport == .udp { udpFlows[client.port] = connection }
        }
        return PluginContext(connection: connection, timestamp: time, publisher: sink ?? publisher,
                             logger: LoggingSetup().logger(for: "dns"))
    }

    func udp(_ bytes: [UInt8], _ direction: Direction, after seconds: Double = 0.01) {
        time = time + TimeSpan(nanoseconds: Int64(seconds * 1e9))
        plugin.parseDatagram(bytes.span, direction: direction, context: context(.udp))
    }

    var events: [JSONValue] { publisher.events.map(\.json) }
    /// Each event as the compact JSON line it is written as.
    var lines: [String] {
        publisher.events.map { e in
            var out: [UInt8] = []
            e.writeCompactJSON(into: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }
}

extension JSONValue {
    func string(_ path: String) -> String? { value(at: path)?.stringValue }
}

/// TCP framing: the 2-byte length prefix.
func framed(_ message: [UInt8]) -> [UInt8] { [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message }
