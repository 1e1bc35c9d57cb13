import Testing
@testable import WirebeatCore

/// `ConfigFile.parse` + `PluginRegistry.load`: both config forms, and every bad setting
/// reported with the dotted key that names it, on one line.
struct ConfigTests {
    static var registry: PluginRegistry {
        var r = PluginRegistry()
        r.register(RecordingPlugin.self)
        r.register(OtherTCPPlugin.self)
        r.register(UDPRecorder.self)
        return r
    }

    static func load(_ yaml: String) throws -> (ConfigFile, [LoadedPlugin]) {
        let file = try ConfigFile.parse(yaml)
        return (file, try registry.load(file.protocols))
    }

    /// The `ConfigError` thrown by parsing and loading `yaml`, or nil.
    static func configError(_ yaml: String) -> ConfigError? {
        do { _ = try load(yaml) } catch let e as ConfigError { return e } catch { Issue.record("not a ConfigError: \(error)") }
        return nil
    }

    @Test func mapForm() throws {
        let (file, plugins) = try Self.load("""
            protocols:
              recorder:
                ports: [7000, 7002]
                transaction_timeout: 1500ms
            """)
        #expect(file.protocols?.map(\.name) == ["recorder"])
        #expect(plugins.map(\.name) == ["recorder"])
        #expect(plugins.first?.ports == [7000, 7002])
        #expect(plugins.first?.transports == [.tcp])
        #expect((plugins.first?.instance as? RecordingPlugin)?.connectionTimeout == .milliseconds(1500))
    }

    @Test func packetbeatListForm() throws {
        let (file, plugins) = try Self.load("packetbeat.protocols: [{type: recorder, ports: [7000]}]")
        #expect(file.protocols?.count == 1)
        #expect(plugins.map(\.name) == ["recorder"])
        #expect(plugins.first?.ports == [7000])
        let (_, block) = try Self.load("""
            packetbeat.protocols:
            - type: recorder
              ports: [7005]
              transaction_timeout: 2m
            - type: udprecorder
              ports: 53
            """)
        #expect(block.map(\.name) == ["recorder", "udprecorder"])
        #expect(block.map(\.ports) == [[7005], [53]])
        #expect((block[0].instance as? RecordingPlugin)?.connectionTimeout == .seconds(120))
    }

    @Test func defaultsWhenNothingIsConfigured() throws {
        let (file, plugins) = try Self.load("")
        #expect(file.protocols == nil)
        #expect(file.captureFilter == nil)
        #expect(file.tcp.maxStreamBytes == TCPOptions().maxStreamBytes)
        #expect(plugins.map(\.name).sorted() == ["other", "recorder", "udprecorder"])
        #expect(plugins.first { $0.name == "recorder" }?.ports == [7000])
        // A section with no settings: default ports.
        let (_, one) = try Self.load("protocols:\n  recorder:\n")
        #expect(one.map(\.ports) == [[7000]])
    }

    @Test func sameTCPAndUDPPortIsAllowed() throws {
        let (_, plugins) = try Self.load("protocols: {recorder: {ports: [53]}, udprecorder: {ports: [53]}}")
        #expect(plugins.count == 2)
    }

    @Test func enabledFalseSkipsThePlugin() throws {
        let (_, plugins) = try Self.load("""
            protocols:
              recorder: {enabled: false, ports: [7000]}
              other: {ports: [7000]}
            """)
        // Disabled: its ports are not claimed either.
        #expect(plugins.map(\.name) == ["other"])
        let (_, list) = try Self.load("packetbeat.protocols: [{type: recorder, enabled: false}]")
        #expect(list.isEmpty)
    }

    struct BadCase: CustomTestStringConvertible, Sendable {
        let name: String
        let yaml: String
        let key: String
        var contains: String? = nil
        var testDescription: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(name: "unknown protocol", yaml: "protocols: {nope: {}}", key: "protocols.nope", contains: "unknown protocol"),
        BadCase(name: "unknown protocol, list form", yaml: "packetbeat.protocols: [{type: nope}]", key: "protocols.nope"),
        BadCase(name: "duplicate port in one plugin", yaml: "protocols: {recorder: {ports: [7000, 7000]}}",
                key: "protocols.recorder.ports", contains: "7000"),
        BadCase(name: "duplicate port across plugins", yaml: "protocols: {recorder: {ports: [7000]}, other: {ports: [8000, 7000]}}",
                key: "protocols.other.ports", contains: "already used by recorder"),
        BadCase(name: "duplicate port across plugins, list form",
                yaml: "packetbeat.protocols: [{type: other, ports: [25]}, {type: recorder, ports: [25]}]",
                key: "protocols.recorder.ports", contains: "already used by other"),
        BadCase(name: "port abc", yaml: "protocols: {recorder: {ports: [abc]}}", key: "protocols.recorder.ports[0]", contains: "'abc'"),
        BadCase(name: "port 0", yaml: "protocols: {recorder: {ports: [0]}}", key: "protocols.recorder.ports[0]"),
        BadCase(name: "port 70000", yaml: "protocols: {recorder: {ports: [70000]}}", key: "protocols.recorder.ports[0]"),
        BadCase(name: "port -1", yaml: "protocols: {recorder: {ports: [-1]}}", key: "protocols.recorder.ports[0]"),
        BadCase(name: "second port bad", yaml: "protocols: {recorder: {ports: [7000, 65536]}}", key: "protocols.recorder.ports[1]"),
        BadCase(name: "port as a mapping", yaml: "protocols: {recorder: {ports: [{a: 1}]}}", key: "protocols.recorder.ports[0]"),
        BadCase(name: "ports as a mapping", yaml: "protocols: {recorder: {ports: {a: 1}}}", key: "protocols.recorder.ports"),
        BadCase(name: "bad duration", yaml: "protocols: {recorder: {transaction_timeout: soon}}",
                key: "protocols.recorder.transaction_timeout", contains: "'soon'"),
        BadCase(name: "zero duration", yaml: "protocols: {recorder: {transaction_timeout: 0s}}",
                key: "protocols.recorder.transaction_timeout"),
        BadCase(name: "negative duration", yaml: "protocols: {recorder: {transaction_timeout: -5s}}",
                key: "protocols.recorder.transaction_timeout"),
        BadCase(name: "duration too long for the clock", yaml: "protocols: {recorder: {transaction_timeout: 100000000h}}",
                key: "protocols.recorder.transaction_timeout"),
        BadCase(name: "duration as a list", yaml: "protocols: {recorder: {transaction_timeout: [1s]}}",
                key: "protocols.recorder.transaction_timeout", contains: "a list"),
        BadCase(name: "unknown plugin setting", yaml: "protocols: {recorder: {colour: red}}", key: "protocols.recorder.colour",
                contains: "unknown setting"),
        BadCase(name: "unknown plugin setting, list form", yaml: "packetbeat.protocols: [{type: recorder, send_all: true}]",
                key: "protocols.recorder.send_all"),
        BadCase(name: "enabled not a bool", yaml: "protocols: {recorder: {enabled: maybe}}", key: "protocols.recorder.enabled"),
        BadCase(name: "list item without type", yaml: "packetbeat.protocols: [{ports: [25]}]", key: "packetbeat.protocols[0]"),
        BadCase(name: "list item not a mapping", yaml: "packetbeat.protocols: [recorder]", key: "packetbeat.protocols[0]"),
        BadCase(name: "protocol twice in the list", yaml: "packetbeat.protocols: [{type: recorder}, {type: recorder}]",
                key: "packetbeat.protocols[1]", contains: "twice"),
        BadCase(name: "plugin settings not a mapping", yaml: "protocols: {recorder: 7000}", key: "protocols.recorder"),
        BadCase(name: "protocols a scalar", yaml: "protocols: recorder", key: "protocols"),
        BadCase(name: "unknown top-level key", yaml: "output.elasticsearch: {hosts: [x]}", key: "output.elasticsearch",
                contains: "unknown setting"),
        BadCase(name: "tcp not a mapping", yaml: "tcp: 5", key: "tcp"),
        BadCase(name: "bad tcp.max_stream_bytes", yaml: "tcp: {max_stream_bytes: lots}", key: "tcp.max_stream_bytes", contains: "'lots'"),
        BadCase(name: "zero tcp.max_stream_bytes", yaml: "tcp: {max_stream_bytes: 0}", key: "tcp.max_stream_bytes"),
        BadCase(name: "overflowing tcp.max_stream_bytes", yaml: "tcp: {max_stream_bytes: 99999999999999GiB}", key: "tcp.max_stream_bytes"),
        BadCase(name: "bad tcp.max_out_of_order_segments", yaml: "tcp: {max_out_of_order_segments: -3}",
                key: "tcp.max_out_of_order_segments"),
        BadCase(name: "unknown tcp setting", yaml: "tcp: {max_streams: 5}", key: "tcp.max_streams", contains: "unknown setting"),
        BadCase(name: "filter not a string", yaml: "filter: [tcp]", key: "filter"),
        BadCase(name: "top level a list", yaml: "- protocols", key: ""),
        BadCase(name: "top level a scalar", yaml: "hello", key: ""),
    ]

    @Test(arguments: badCases)
    func badConfigNamesTheKey(_ c: BadCase) {
        guard let e = Self.configError(c.yaml) else { Issue.record("no error"); return }
        #expect(e.key == c.key, "\(e)")
        if let fragment = c.contains { #expect(e.message.contains(fragment), "\(e)") }
        #expect(!e.description.contains("\n"))
        #expect(e.description == (c.key.isEmpty ? "config: \(e.message)" : "config: \(c.key): \(e.message)"))
    }

    @Test(arguments: ["protocols: [unclosed", "protocols:\n  smtp: {ports: [25]\n  http: x", "a: b: c", "\t- x\n  y: [",
                      "protocols:\n  recorder:\n    ports: [1\n    other: 2\n", "key: \"unterminated\n"])
    func invalidYAMLIsOneLine(_ yaml: String) {
        guard let e = Self.configError(yaml) else { Issue.record("no error"); return }
        #expect(e.key == "")
        #expect(e.message.hasPrefix("config: invalid YAML: "), "\(e)")
        #expect(!e.description.contains("\n"), "\(e)")
        #expect(!e.description.contains("\r"))
    }

    @Test func sourceNameIsInTheMessage() {
        do {
            _ = try ConfigFile.parse("x: [", source: "/etc/wirebeat.yml")
            Issue.record("no error")
        } catch let e as ConfigError {
            #expect(e.message.hasPrefix("/etc/wirebeat.yml: invalid YAML"))
        } catch { Issue.record("\(error)") }
    }

    @Test func tcpSettings() throws {
        let (file, _) = try Self.load("tcp:\n  max_stream_bytes: 10MiB\n  max_out_of_order_segments: 64\nfilter: tcp port 25")
        #expect(file.tcp.maxStreamBytes == 10_485_760)
        #expect(file.tcp.maxOutOfOrderSegments == 64)
        #expect(file.captureFilter == "tcp port 25")
    }

    @Test(arguments: [("10MiB", 10_485_760), ("64KiB", 65_536), ("1GiB", 1_073_741_824), ("2KB", 2000), ("3MB", 3_000_000),
                      ("1GB", 1_000_000_000), ("12345", 12_345), (" 7 ", 7), ("10 MiB", 10_485_760), ("0", 0)])
    func byteSize(_ text: String, _ value: Int) {
        #expect(ConfigParsing.byteSize(text) == value)
    }

    @Test(arguments: ["", "MiB", "10XiB", "1.5MiB", "ten", "10mib", "99999999999999999GiB"])
    func badByteSize(_ text: String) {
        #expect(ConfigParsing.byteSize(text) == nil)
    }

    @Test(arguments: [("10s", 10_000_000_000), ("500ms", 500_000_000), ("2m", 120_000_000_000), ("1h", 3_600_000_000_000),
                      ("250us", 250_000), ("40ns", 40), ("1.5s", 1_500_000_000), ("3", 3_000_000_000), ("0.25", 250_000_000),
                      ("10S", 10_000_000_000), (" 5s ", 5_000_000_000),
                      // Decimal fractions are not exact in binary: they must round, not truncate.
                      ("1.001s", 1_001_000_000), ("1.001ms", 1_001_000), ("0.007", 7_000_000), ("2.3m", 138_000_000_000)] as [(String, Int64)])
    func duration(_ text: String, _ nanoseconds: Int64) {
        #expect(ConfigParsing.duration(text)?.nanoseconds == nanoseconds)
    }

    @Test(arguments: ["", "s", "soon", "-1s", "10 parsecs", "1e10s", "nan", "infs",
                      "100000000h", "999999999m"])  // past Int64 nanoseconds: an error, not a trap
    func badDuration(_ text: String) {
        #expect(ConfigParsing.duration(text) == nil)
    }

    @Test func pluginConfigAccessors() throws {
        let config = PluginConfig(pluginName: "p", values: [
            "flag": .scalar("Yes"), "n": .scalar("64KiB"), "mode": .scalar("fast"), "list": .list([.scalar("a"), .scalar("b")]),
            "one": .scalar("x"), "bad": .list([.scalar("a"), .map([])]), "nothing": .null,
        ])
        #expect(try config.bool("flag", default: false) == true)
        #expect(try config.int("n", default: 0) == 65_536)
        #expect(try config.string("mode", default: nil, allowed: ["fast", "slow"]) == "fast")
        #expect(try config.stringList("list", default: []) == ["a", "b"])
        #expect(try config.stringList("one", default: []) == ["x"])
        #expect(try config.string("nothing", default: "dflt") == "dflt")
        #expect(try config.duration("absent", default: .seconds(3)) == .seconds(3))
        #expect(throws: ConfigError(key: "protocols.p.bad[1]", "expected a single value, got a mapping")) {
            try config.stringList("bad", default: [])
        }
        #expect(config.unknownKeys.isEmpty)
        #expect(throws: ConfigError(key: "protocols.p.n", "65536 is out of range 0...100")) {
            try config.int("n", default: 0, range: 0...100)
        }
        #expect(throws: ConfigError(key: "protocols.p.mode", "expected one of slow, medium, got 'fast'")) {
            try config.string("mode", default: nil, allowed: ["slow", "medium"])
        }
        let unread = PluginConfig(pluginName: "p", values: ["b": .null, "a": .scalar("1"), "ports": .list([])])
        #expect(unread.unknownKeys == ["a", "b"])
    }
}

extension ConfigTests {
    @Test func sameProtocolTwiceInTheMapForm() {
        // YAML forbids duplicate keys; either the YAML parser or the config rejects it.
        guard let e = Self.configError("protocols:\n  recorder: {ports: [1]}\n  recorder: {ports: [2]}\n") else {
            Issue.record("no error"); return
        }
        #expect(e.key == "protocols.recorder" || e.key == "", "\(e)")
        #expect(!e.description.contains("\n"))
    }

    @Test func statsJSONIsStable() throws {
        let (sniffer, _) = try CaptureFileTests.recorderSniffer()
        for frame in [[UInt8](), Frames.v4TCP, PacketBuilder.ethernet([], etherType: 0x0806)] {
            frame.withUnsafeBytes { sniffer.handle(linkType: LinkType.ethernet, timestamp: .zero, frame: $0) }
        }
        let json = sniffer.stats.json
        #expect(json.value(at: "packets") == 3)
        #expect(json.value(at: "skipped.malformed_link") == 1)
        #expect(json.value(at: "skipped.not_ip") == 2)
        #expect(json.value(at: "tcp.segments") == 0)
        #expect(JSONWriter.compact(json) == JSONWriter.compact(sniffer.stats.json))
    }
}
