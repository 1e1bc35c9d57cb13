import Logging

/// Counters for `--stats`: packets, what was skipped and why, the TCP layer, events.
public struct SnifferStats: Sendable {
    public var packets = 0
    public var bytes = 0
    public var tcpSegments = 0
    public var udpDatagrams = 0
    public var skipped: [SkipReason: Int] = [:]
    public var tcp = TCPStats()
    public var eventsByType: [String: Int] = [:]

    /// The stats of a parallel replay's workers as one: what depends on the flows a worker
    /// owns is summed (the router's counts of packets replace the first worker's).
    static func combined(_ parts: [SnifferStats]) -> SnifferStats {
        var total = parts[0]
        total.tcp = TCPStats()
        total.eventsByType = [:]
        for part in parts {
            total.tcp.connections += part.tcp.connections
            total.tcp.segments += part.tcp.segments
            total.tcp.retransmittedSegments += part.tcp.retransmittedSegments
            total.tcp.outOfOrderSegments += part.tcp.outOfOrderSegments
            total.tcp.gaps += part.tcp.gaps
            total.tcp.gapBytes += part.tcp.gapBytes
            total.tcp.streamOverflows += part.tcp.streamOverflows
            total.tcp.expiredConnections += part.tcp.expiredConnections
            total.tcp.resets += part.tcp.resets
            total.eventsByType.merge(part.eventsByType, uniquingKeysWith: +)
        }
        return total
    }

    public var malformedPackets: Int { skipped.filter { $0.key.isMalformed }.map(\.value).reduce(0, +) }

    /// Stable JSON for printing.
    public var json: JSONValue {
        var e = Event()
        e.set("packets", packets)
        e.set("bytes", bytes)
        e.set("tcp.segments", tcpSegments)
        e.set("udp.datagrams", udpDatagrams)
        for (reason, count) in skipped { e.set("skipped.\(reason.rawValue)", count) }
        e.set("tcp.connections", tcp.connections)
        e.set("tcp.retransmitted_segments", tcp.retransmittedSegments)
        e.set("tcp.out_of_order_segments", tcp.outOfOrderSegments)
        e.set("tcp.gaps", tcp.gaps)
        e.set("tcp.gap_bytes", tcp.gapBytes)
        e.set("tcp.stream_overflows", tcp.streamOverflows)
        e.set("tcp.expired_connections", tcp.expiredConnections)
        e.set("tcp.resets", tcp.resets)
        for (type, count) in eventsByType { e.set("events.\(type)", count) }
        return e.json
    }
}

/// The pipeline: decoded packets go to the TCP layer or the UDP plugin for their port;
/// events go to the publisher. Single-threaded, driven by the packet clock. In a parallel
/// replay (`ParallelReplay`) each worker runs one, sees every packet, keeps its clocks with
/// them, and handles only the flows it owns.
public final class Sniffer {
    @exclusivity(unchecked) private var decoder = PacketDecoder()
    private let tcp: TCPLayer
    /// The UDP plugins, and the same unretained, for the datagrams (see `handleUDP`).
    private let udpTargets: [UDPTarget]
    private let udpTargetRefs: [Unmanaged<UDPTarget>]
    /// For each port, 1 + the index in `udpTargets` of its plugin, or 0: looked up for every
    /// datagram (twice when the server is the source), where a dictionary's hashing showed.
    private let udpPluginByPort: [UInt8]
    private let publisher: CountingPublisher
    @exclusivity(unchecked) private var clock = Timestamp.zero
    @exclusivity(unchecked) private var udpSweeps = SweepSchedule()
    @exclusivity(unchecked) private var counters = SnifferStats()
    @exclusivity(unchecked) private var finished = false
    @exclusivity(unchecked) private var packetIndex = 0
    let order: EventOrder

    public convenience init(plugins: [LoadedPlugin], publisher: EventPublisher, tcpOptions: TCPOptions = TCPOptions(),
                            logging: LoggingSetup = LoggingSetup()) {
        self.init(plugins: plugins, publisher: publisher, tcpOptions: tcpOptions, logging: logging,
                  order: EventOrder())
    }

    init(plugins: [LoadedPlugin], publisher: EventPublisher, tcpOptions: TCPOptions, logging: LoggingSetup,
         order: EventOrder) {
        self.order = order
        self.publisher = CountingPublisher(downstream: publisher)
        tcp = TCPLayer(plugins: plugins, options: tcpOptions, publisher: self.publisher,
                       logger: logging.logger(for: "tcp"), order: order)
        udpTargets = plugins.compactMap { plugin in plugin.udp.map { UDPTarget(plugin: plugin, udp: $0) } }
        udpTargetRefs = udpTargets.map { Unmanaged.passUnretained($0) }
        var byPort = [UInt8](repeating: 0, count: 1 << 16)
        for (i, target) in udpTargets.enumerated() {
            for port in target.plugin.ports { byPort[Int(port)] = UInt8(truncatingIfNeeded: i + 1) }
        }
        precondition(udpTargets.count < 255, "at most 254 UDP plugins")
        udpPluginByPort = byPort
    }

    /// Handles one captured frame. `frame` is only read during the call.
    public func handle(linkType: Int32, timestamp: Timestamp, frame: UnsafeRawBufferPointer) {
        counters.packets += 1
        counters.bytes += frame.count
        // `self` borrowed, not captured: the closure's capture cost a retain and a release per
        // packet on every worker.
        let sniffer = Unmanaged.passUnretained(self)
        decoder.decode(linkType: linkType, timestamp: timestamp, frame: frame) { packet in
            sniffer._withUnsafeGuaranteedRef { $0.dispatch(packet) }
        }
    }

    /// Hands an already decoded packet on (the conformance harness and tests use this).
    public func dispatch(_ packet: DecodedPacket) {
        let tcpClock: Timestamp
        switch packet.transport {
        case .tcp:
            counters.tcpSegments += 1
            tcpClock = max(tcp.clock, packet.timestamp)
        case .udp:
            counters.udpDatagrams += 1
            tcpClock = tcp.clock
        }
        handle(packet, at: PacketStamp(index: packetIndex + 1, clock: max(clock, packet.timestamp), tcpClock: tcpClock))
    }

    /// A packet at its place in the capture: its index and the clocks as they stand with it
    /// (a parallel replay's router says, for the packets of the flows a worker owns).
    func handle(_ packet: DecodedPacket, at stamp: PacketStamp) {
        advance(to: stamp, packet.transport)
        switch packet.transport {
        case .tcp: tcp.process(packet)
        case .udp: handleUDP(packet)
        }
    }

    /// A packet of a flow another worker owns, at which a sweep of `transport` is due: this
    /// worker sweeps there too, as one sniffer alone would (the router sends no others).
    func sweep(at stamp: PacketStamp, _ transport: Transport) {
        advance(to: stamp, transport)
    }

    /// The capture stands at `stamp` (a parallel replay worker, at the end of a batch): the
    /// watermark of its events moves there, and so do the clocks, which a connection closed
    /// at the end of input is told (as one sniffer, which saw every packet, would). No sweep:
    /// any due up to there came with its packet.
    func advance(through stamp: PacketStamp) {
        packetIndex = stamp.index
        order.packet(stamp.index)
        clock = stamp.clock
        tcp.moveClock(to: stamp.tcpClock)
    }

    private func advance(to stamp: PacketStamp, _ transport: Transport) {
        packetIndex = stamp.index
        order.packet(packetIndex)
        clock = stamp.clock
        switch transport {
        case .tcp: tcp.tick(stamp.tcpClock)
        case .udp: tickUDP()
        }
    }

    // Not inlined: inlined into a worker's loop (`ParallelReplay.Shard.run`), the flow's
    // scope was retained and released around the plugin call again.
    @inline(never) private func handleUDP(_ packet: DecodedPacket) {
        let index: Int, client: Endpoint, server: Endpoint
        if case let i = udpPluginByPort[Int(packet.destination.port)], i > 0 {
            (index, client, server) = (Int(i) - 1, packet.source, packet.destination)
        } else if case let i = udpPluginByPort[Int(packet.source.port)], i > 0 {
            (index, client, server) = (Int(i) - 1, packet.destination, packet.source)
        } else {
            return
        }
        // The plugin borrowed, not retained (`udpTargets` holds it), and its UDP side read
        // from a `let` of it, not bound from an optional: taking them out of an array, or
        // the binding, cost a retain and a release each a datagram.
        udpTargetRefs.withUnsafeBufferPointer { $0[index] }._withUnsafeGuaranteedRef { target in
            let direction: Direction = packet.source == client ? .original : .reverse
            // The payload where it lies (the capture's buffer, or the worker's batch), lent
            // for the call: copying it into an array of the sniffer's cost ~300
            // instructions a datagram and, sliced for the plugin, a retain and a release.
            let payload = packet.payload.bindMemory(to: UInt8.self)
            // The flow's scope borrowed from the table, which holds it (nothing drops a flow
            // during the call), for a context that only lives for the call: a strong
            // reference to it cost a retain and a release a datagram.
            udpFlow(client: client, server: server, vlans: packet.vlans, plugin: target.plugin)._withUnsafeGuaranteedRef { scope in
                target.udp.parseDatagram(payload.span, direction: direction,
                                         context: PluginContext(scope: scope, timestamp: packet.timestamp, packetIndex: packetIndex))
            }
        }
    }

    /// A UDP plugin and its UDP side, in `let`s: read from a borrowed object, neither is
    /// retained for the call.
    final class UDPTarget {
        let plugin: LoadedPlugin
        let udp: any UDPProtocolPlugin
        init(plugin: LoadedPlugin, udp: any UDPProtocolPlugin) {
            self.plugin = plugin
            self.udp = udp
        }
    }

    /// The plugin context's per-flow part (its connection info) per UDP flow, cached: its
    /// Community ID (a SHA-1) and IP text would otherwise be computed for every datagram.
    /// Bounded: emptied when full. The flows of the last datagrams are found first in
    /// `recentUDPFlows`. (A flow's plugin is the one of its ports, always the same.)
    @exclusivity(unchecked) private var udpFlows: [UDPFlowKey: PluginContext.FlowScope] = [:]
    @exclusivity(unchecked) private var recentUDPFlows = RecentFlows<PluginContext.FlowScope>()
    private static let maxUDPFlows = 4096

    /// The scope of the flow, not retained: `udpFlows` holds it until a later call empties it.
    private func udpFlow(client: Endpoint, server: Endpoint, vlans: VLANTags,
                         plugin: LoadedPlugin) -> Unmanaged<PluginContext.FlowScope> {
        let untagged = vlans.isEmpty
        let folded = untagged ? Endpoint.foldedHash(client, server, vlans: VLANTags()) : 0
        if untagged, let hit = recentUDPFlows.lookup(folded: folded, client, server) { return hit }
        let key = UDPFlowKey(client: client, server: server, vlans: vlans)
        let flow: PluginContext.FlowScope
        if let known = udpFlows[key] {
            flow = known
        } else {
            if udpFlows.count >= Sniffer.maxUDPFlows {
                udpFlows.removeAll(keepingCapacity: true)
                recentUDPFlows.forgetAll()
            }
            let info = ConnectionInfo(id: 0, transport: .udp, client: client, server: server, vlans: vlans)
            flow = PluginContext.FlowScope(connection: info, publisher: publisher, logger: plugin.logger)
            udpFlows[key] = flow
        }
        if untagged { recentUDPFlows.remember(folded: folded, client, server, flow) }
        return Unmanaged.passUnretained(flow)
    }

    private func tickUDP() {
        guard !udpTargets.isEmpty, udpSweeps.isDue(at: clock) else { return }
        for (i, target) in udpTargets.enumerated() {
            order.sweep(Int64(i), 0)
            target.udp.advanceClock(to: clock, publisher: publisher)
        }
        order.endOfSweep()
    }

    /// End of input: closes every connection and flushes every plugin. Idempotent.
    public func finish() {
        guard !finished else { return }
        finished = true
        tcp.finish()
        for (i, target) in udpTargets.enumerated() {
            order.endOfInput(phase: Int64(1 + i), first: 0)
            target.udp.finish(publisher: publisher)
        }
    }

    public var stats: SnifferStats {
        var s = counters
        s.skipped = decoder.skipped
        s.tcp = tcp.stats
        s.eventsByType = publisher.counts
        return s
    }
}

/// Where a packet stands in a capture: its index among the decoded packets, the latest time
/// of any packet (the UDP sweeps' clock) and of any TCP packet (the TCP layer's), with it.
struct PacketStamp {
    var index: Int
    var clock: Timestamp
    var tcpClock: Timestamp
}

/// Counts events per `type` on their way out.
final class CountingPublisher: EventPublisher {
    let downstream: EventPublisher
    // A handful of types, most often the same one again: a short list beats hashing the
    // type string of every event.
    @exclusivity(unchecked) private var tally: [(type: String, count: Int)] = []
    init(downstream: EventPublisher) { self.downstream = downstream }
    var counts: [String: Int] {
        Dictionary(tally.map { ($0.type, $0.count) }, uniquingKeysWith: +)
    }
    func publish(_ event: consuming Event) {
        count(event)
        downstream.publish(event)
    }
    func publish(_ event: consuming Event, sweepOrder: Int) {
        count(event)
        downstream.publish(event, sweepOrder: sweepOrder)
    }
    func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                 fields: (Int, inout FieldOutput) -> Void, build: () -> Event) {
        tally(template.type ?? "unknown")
        downstream.publish(template, values, fields: fields, build: build)
    }
    @exclusivity(unchecked) private var lastTally = 0

    private func count(_ event: borrowing Event) {
        let type = event.type ?? "unknown"
        tally(type)
    }

    // Inlined into both callers, as it was into `count` before there were two.
    @inline(__always) private func tally(_ type: String) {
        // Most often the type of the event before.
        if lastTally < tally.count && tally[lastTally].type == type {
            tally[lastTally].count += 1
        } else if let i = tally.firstIndex(where: { $0.type == type }) {
            tally[i].count += 1
            lastTally = i
        } else {
            tally.append((type, 1))
            lastTally = tally.count - 1
        }
    }
}

/// Keeps events in memory (tests, goldens, the conformance harness).
public final class CollectingPublisher: EventPublisher {
    public private(set) var events: [Event] = []
    public init() {}
    public func publish(_ event: Event) { events.append(event) }
}

struct UDPFlowKey: Hashable {
    let client: Endpoint
    let server: Endpoint
    let vlans: VLANTags

    // Looked up for every datagram (see `Endpoint.foldedHash`).
    func hash(into hasher: inout Hasher) { hasher.combine(Endpoint.foldedHash(client, server, vlans: vlans)) }
    func _rawHashValue(seed: Int) -> Int { Endpoint.tableHash(Endpoint.foldedHash(client, server, vlans: vlans), seed: seed) }
}
