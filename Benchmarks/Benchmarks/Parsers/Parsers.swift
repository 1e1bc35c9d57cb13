// Per-plugin parser throughput on in-memory streams, and the TCP layer's per-segment cost.
//
// One benchmark iteration is one message exchange (an HTTP transaction, one SMTP mail, one
// DNS query and its response, one TCP segment and its ACK), so `throughput` is exchanges per
// second, MB/s is that times the bytes in the name, and `mallocCountTotal` per iteration is
// allocations per exchange. State (the connection, its buffers) persists across iterations,
// as it does on a keep-alive connection.
import Benchmark
import WirebeatCore
import WirebeatPlugins

final class CountingSink: EventPublisher {
    var events = 0
    var last: Event?
    func publish(_ event: Event) { events += 1; last = event }
}

let client = Endpoint(ip: IPAddress("127.0.0.1")!, port: 40_000)
let tcpConnection = { (port: UInt16) in
    ConnectionInfo(id: 1, transport: .tcp, client: client, server: Endpoint(ip: IPAddress("127.0.80.1")!, port: port))
}

/// A TCP plugin driven the way the TCP layer drives it: bytes appended to the direction's
/// stream in segments of at most one MSS, `parse` after each.
final class StreamDriver<P: TCPProtocolPlugin> {
    let plugin: P
    var state: P.ConnectionState
    var streams = [StreamBuffer(), StreamBuffer()]
    let sink = CountingSink()
    let context: PluginContext

    init(_ plugin: P, connection: ConnectionInfo) {
        self.plugin = plugin
        state = plugin.makeConnectionState(for: connection)
        context = PluginContext(connection: connection, timestamp: Timestamp(seconds: 1_700_000_000),
                                publisher: sink, logger: LoggingSetup().logger(for: P.name))
    }

    func feed(_ bytes: [UInt8], _ direction: Direction, mss: Int = 1448) {
        let d = direction.rawValue
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + mss)
            streams[d].append(contentsOf: bytes[offset..<end])
            plugin.parse(&streams[d], direction: direction, state: &state, context: context)
            offset = end
        }
    }
}

func plugin<P: ProtocolPlugin>(_ type: P.Type) -> P {
    try! P(config: PluginConfig(pluginName: P.name))
}

// MARK: Traffic, shaped like the bench captures (nginx + wrk, Exim, BIND)

let httpRequest = Array("GET /index.html HTTP/1.1\r\nHost: 127.0.80.1:8080\r\n\r\n".utf8)
let httpBody = String(repeating: "<p>line of a page served by nginx for the wirebeat benchmark</p>\n", count: 25)
let httpResponseHead: String = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 10:50:46 GMT\r\n"
    + "Content-Type: text/html\r\nContent-Length: \(httpBody.utf8.count)\r\n"
    + "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\nConnection: keep-alive\r\n"
    + "ETag: \"65937d75-64c\"\r\nAccept-Ranges: bytes\r\n\r\n"
let httpResponse: [UInt8] = Array((httpResponseHead + httpBody).utf8)

let smtpMailBody = (0..<24).map { "Line \($0) of the message body, long enough to look like real text.\r\n" }.joined()
let smtpHeaders: String = "From: sender@client.wirebeat.test\r\nTo: alice@wirebeat.test\r\nSubject: bench\r\n"
    + "Message-ID: <1.2@client.wirebeat.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
let smtpMessage: String = smtpHeaders + smtpMailBody + ".\r\n"
let smtpDialogue: [(Direction, String)] = [
    (.original, "MAIL FROM:<sender@client.wirebeat.test>\r\n"),
    (.reverse, "250 OK\r\n"),
    (.original, "RCPT TO:<alice@wirebeat.test>\r\n"),
    (.reverse, "250 Accepted\r\n"),
    (.original, "DATA\r\n"),
    (.reverse, "354 Enter message, ending with \".\" on a line by itself\r\n"),
    (.original, smtpMessage),
    (.reverse, "250 OK id=1vXyZa-000123-AB\r\n"),
]
let smtpExchange: [(Direction, [UInt8])] = smtpDialogue.map { ($0.0, Array($0.1.utf8)) }

/// `example.test A` and its authoritative answer (192.0.2.1).
let dnsName: [UInt8] = [7, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 4, 0x74, 0x65, 0x73, 0x74, 0]  // example.test
let dnsQuery: [UInt8] = [0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0] + dnsName + [0, 1, 0, 1]
let dnsAnswer: [UInt8] = [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 192, 0, 2, 1]
let dnsResponse: [UInt8] = [0, 0, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + dnsName + [0, 1, 0, 1] + dnsAnswer

/// Exchanges run before measuring, so that samples see a session in its steady state.
let warmUpExchanges = 4

let configuration = Benchmark.Configuration(
    metrics: [.wallClock, .throughput, .mallocCountTotal],
    timeUnits: .nanoseconds,
    maxDuration: .seconds(2),
    maxIterations: 2_000_000
)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = configuration

    Benchmark("HTTP parse, 1 keep-alive transaction = \(httpRequest.count + httpResponse.count) B") { benchmark in
        let driver = StreamDriver(plugin(HTTPPlugin.self), connection: tcpConnection(8080))
        // Warm-up: the session's first transaction allocates the objects later ones reuse.
        // A sample is often a single iteration, so without it each sample measured a cold
        // session (25 allocations, where replaying a capture makes about one per transaction).
        for _ in 0..<warmUpExchanges {
            driver.feed(httpRequest, .original)
            driver.feed(httpResponse, .reverse)
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            driver.feed(httpRequest, .original)
            driver.feed(httpResponse, .reverse)
        }
        benchmark.stopMeasurement()
        blackHole(driver.sink.events)
    }

    let smtpBytes = smtpExchange.reduce(0) { $0 + $1.1.count }
    Benchmark("SMTP parse, 1 mail (MAIL, RCPT, DATA) = \(smtpBytes) B") { benchmark in
        let driver = StreamDriver(plugin(SMTPPlugin.self), connection: tcpConnection(25))
        driver.feed(Array("220 mx.wirebeat.test ESMTP Exim 4.96\r\n".utf8), .reverse)
        driver.feed(Array("EHLO client.wirebeat.test\r\n".utf8), .original)
        driver.feed(Array("250-mx.wirebeat.test Hello\r\n250-PIPELINING\r\n250 HELP\r\n".utf8), .reverse)
        for _ in 0..<warmUpExchanges {  // see the HTTP benchmark
            for (direction, bytes) in smtpExchange { driver.feed(bytes, direction) }
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for (direction, bytes) in smtpExchange { driver.feed(bytes, direction) }
        }
        benchmark.stopMeasurement()
        blackHole(driver.sink.events)
    }

    Benchmark("DNS parse, 1 UDP query + response = \(dnsQuery.count + dnsResponse.count) B") { benchmark in
        let dns = plugin(DNSPlugin.self)
        let sink = CountingSink()
        let connection = ConnectionInfo(id: 0, transport: .udp, client: client,
                                        server: Endpoint(ip: IPAddress("127.0.53.1")!, port: 53))
        let context = PluginContext(connection: connection, timestamp: Timestamp(seconds: 1_700_000_000),
                                    publisher: sink, logger: LoggingSetup().logger(for: "dns"))
        var query = dnsQuery, response = dnsResponse
        var id: UInt16 = 0
        func exchange() {
            id &+= 1
            query[0] = UInt8(id >> 8); query[1] = UInt8(id & 0xFF)
            response[0] = query[0]; response[1] = query[1]
            dns.parseDatagram(query.span, direction: .original, context: context)
            dns.parseDatagram(response.span, direction: .reverse, context: context)
        }
        for _ in 0..<warmUpExchanges { exchange() }  // see the HTTP benchmark
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { exchange() }
        benchmark.stopMeasurement()
        blackHole(sink.events)
    }

    Benchmark("TCP layer, 1 in-order 1448 B segment + ACK (null plugin)") { benchmark in
        var registry = PluginRegistry()
        registry.register(NullPlugin.self)
        let plugins = try! registry.load([(name: NullPlugin.name, values: [:])])
        let sniffer = Sniffer(plugins: plugins, publisher: CountingSink())
        let server = Endpoint(ip: IPAddress("127.0.80.1")!, port: NullPlugin.defaultPorts[0])
        let payload = [UInt8](repeating: 0x61, count: 1448)
        var sequence: UInt32 = 1000
        var time = Timestamp(seconds: 1_700_000_000)
        payload.withUnsafeBytes { bytes in
            let empty = UnsafeRawBufferPointer(rebasing: bytes[0..<0])
            // One exchange before measuring: the connection (its Community ID, encoded flow
            // values, buffers) is set up once, not counted as per-segment work.
            for warmUp in [true, false] {
              if !warmUp { benchmark.startMeasurement() }
              for _ in warmUp ? 0..<1 : benchmark.scaledIterations {
                time = time + TimeSpan(nanoseconds: 1000)
                sniffer.dispatch(DecodedPacket(timestamp: time, transport: .tcp, source: client, destination: server,
                                               sequence: sequence, acknowledgment: 1, flags: [.ack, .psh],
                                               payload: bytes, wirePayloadLength: bytes.count))
                sequence &+= UInt32(bytes.count)
                sniffer.dispatch(DecodedPacket(timestamp: time, transport: .tcp, source: server, destination: client,
                                               sequence: 1, acknowledgment: sequence, flags: [.ack],
                                               payload: empty, wirePayloadLength: 0))
              }
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Event to JSON, 1 HTTP transaction event") { benchmark in
        let driver = StreamDriver(plugin(HTTPPlugin.self), connection: tcpConnection(8080))
        driver.feed(httpRequest, .original)
        driver.feed(httpResponse, .reverse)
        let event = driver.sink.last!
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            out.removeAll(keepingCapacity: true)
            event.writeCompactJSON(into: &out)
        }
        benchmark.stopMeasurement()
        blackHole(out.count)
    }
}

/// A TCP plugin that consumes every byte and publishes nothing: the TCP layer alone.
final class NullPlugin: TCPProtocolPlugin {
    static let name = "null"
    static let defaultPorts: [UInt16] = [9999]
    var connectionTimeout: TimeSpan { .seconds(60) }
    init(config: PluginConfig) throws {}
    func makeConnectionState(for connection: ConnectionInfo) -> Int { 0 }
    func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout Int, context: PluginContext) {
        state += stream.readableBytes
        stream.skip(stream.readableBytes)
    }
}
