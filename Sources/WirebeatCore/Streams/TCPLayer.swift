import Logging

/// Limits of the TCP layer.
public struct TCPOptions: Sendable {
    /// Unparsed bytes a direction may hold before it is dropped (Packetbeat: 10 MiB).
    public var maxStreamBytes = 10 * 1024 * 1024
    /// Out-of-order segments held per direction while waiting for a hole to fill; past
    /// this the hole is declared lost.
    public var maxOutOfOrderSegments = 64
    public init() {}
}

/// Counters of the TCP layer, reported by `--stats`.
public struct TCPStats: Sendable, Equatable {
    public var connections = 0
    public var segments = 0
    public var retransmittedSegments = 0
    public var outOfOrderSegments = 0
    public var gaps = 0
    public var gapBytes = 0
    public var streamOverflows = 0
    public var expiredConnections = 0
    public var resets = 0
    public init() {}
}

/// Key of a connection: both endpoints in canonical order, plus VLAN tags.
struct FlowKey: Hashable {
    let low: Endpoint
    let high: Endpoint
    let vlans: VLANTags

    init(_ a: Endpoint, _ b: Endpoint, vlans: VLANTags) {
        if a < b { low = a; high = b } else { low = b; high = a }
        self.vlans = vlans
    }

    // Looked up for every segment (see `Endpoint.foldedHash`).
    func hash(into hasher: inout Hasher) { hasher.combine(Endpoint.foldedHash(low, high, vlans: vlans)) }
    func _rawHashValue(seed: Int) -> Int { Endpoint.tableHash(Endpoint.foldedHash(low, high, vlans: vlans), seed: seed) }
}

/// Reassembly state of one direction of a connection.
struct TCPStreamState {
    struct Segment {
        var sequence: UInt32
        var data: [UInt8]
        /// Bytes after `data` that were on the wire but not captured (snap length).
        var missing: Int
        var fin: Bool
    }

    var hasSequence = false
    /// Sequence number of the next byte to deliver.
    var nextSequence: UInt32 = 0
    var ended = false
    /// Out-of-order segments, ordered by sequence relative to `nextSequence`.
    var outOfOrder: [Segment] = []
    /// Highest sequence number the peer acknowledged (bytes up to it reached the peer).
    var peerAcknowledged: UInt32 = 0
    var hasPeerAcknowledged = false
    var buffer = StreamBuffer()

    /// Signed distance of `sequence` from the next expected byte (handles 32-bit wraparound).
    func offset(of sequence: UInt32) -> Int { Int(Int32(bitPattern: sequence &- nextSequence)) }

    /// True when the peer acknowledged bytes we never saw: they were lost by the capture,
    /// not by the network, so the hole will never be filled by a retransmission.
    var peerAcknowledgedBeyondHole: Bool { hasPeerAcknowledged && offset(of: peerAcknowledged) > 0 }
}

// Hot per-packet state, touched by this class alone on the pipeline's one thread:
// `@exclusivity(unchecked)` drops the run-time exclusivity check of each access (a tenth
// of the instructions on SMTP), which guards against overlapping inout access we never make.
final class TCPConnection {
    let info: ConnectionInfo
    let key: FlowKey
    let plugin: LoadedPlugin
    let handler: TCPStreamHandler
    let timeout: TimeSpan
    /// What every `PluginContext` of the connection shares.
    let scope: PluginContext.FlowScope
    @exclusivity(unchecked) var streams = [TCPStreamState(), TCPStreamState()]
    @exclusivity(unchecked) var lastSeen: Timestamp
    /// Both directions ended: kept until it times out so late retransmissions are ignored
    /// instead of starting a bogus mid-stream connection.
    @exclusivity(unchecked) var closed = false

    init(info: ConnectionInfo, key: FlowKey, plugin: LoadedPlugin, driver: TCPDriver, now: Timestamp,
         publisher: EventPublisher) {
        self.info = info
        self.scope = PluginContext.FlowScope(connection: info, publisher: publisher, logger: plugin.logger)
        self.key = key
        self.plugin = plugin
        self.handler = driver.makeHandler(info)
        self.timeout = driver.timeout
        self.lastSeen = now
    }
}

/// Tracks TCP connections and turns segments into the plugin calls of the contract:
/// in-order bytes (`parse`), `gapInStream` with exact byte counts, `receivedFIN`, and
/// `connectionClosed` on close, idle timeout (packet clock) or end of input.
final class TCPLayer {
    @exclusivity(unchecked) private var connections: [FlowKey: TCPConnection] = [:]
    /// The connections of the last segments (see `RecentFlows`); emptied whenever one is
    /// dropped from `connections`.
    @exclusivity(unchecked) private var recent = RecentFlows<TCPConnection>()
    private let pluginForPort: [UInt16: LoadedPlugin]
    private let options: TCPOptions
    private let publisher: EventPublisher
    private let logger: Logger
    /// The key of the events published now (see `EventOrder`); its packet index also
    /// numbers new connections, so that workers of a parallel replay agree on their ids.
    private let order: EventOrder
    @exclusivity(unchecked) private(set) var stats = TCPStats()
    /// Latest TCP packet time: the clock of idle timeouts.
    @exclusivity(unchecked) private(set) var clock = Timestamp.zero
    @exclusivity(unchecked) private var sweeps = SweepSchedule()

    init(plugins: [LoadedPlugin], options: TCPOptions, publisher: EventPublisher, logger: Logger, order: EventOrder) {
        var map: [UInt16: LoadedPlugin] = [:]
        for plugin in plugins where plugin.tcp != nil {
            for port in plugin.ports { map[port] = plugin }
        }
        pluginForPort = map
        self.options = options
        self.publisher = publisher
        self.logger = logger
        self.order = order
    }


    /// `body` with the plugin context of `c`, which borrows the connection's scope (a `let`
    /// of `c`, alive as long as the caller's `c`): a context holding it strongly cost a
    /// retain and a release a call, for every segment parsed.
    @inline(__always) private func withContext<R>(_ c: TCPConnection, _ body: (PluginContext) -> R) -> R {
        Unmanaged.passUnretained(c.scope)._withUnsafeGuaranteedRef { scope in
            body(PluginContext(scope: scope, timestamp: clock, packetIndex: order.packetIndex))
        }
    }

    // MARK: Packets

    /// Moves the clock to a TCP packet's time and expires idle connections if a sweep is
    /// due. Called for every TCP packet (parallel replay workers: for their own, and for the
    /// others' where a sweep is due).
    func tick(_ timestamp: Timestamp) {
        moveClock(to: timestamp)
        sweepIfDue()
    }

    /// The clock to `timestamp` if later, with no sweep (see `Sniffer.advance(through:)`).
    func moveClock(to timestamp: Timestamp) {
        if timestamp > clock { clock = timestamp }
    }

    /// The live connection of a segment, made if the segment may start one; nil for a
    /// segment to ignore (a straggler of a closed connection is only noted as seen).
    /// Unretained: the table holds it until the next segment at least (nothing in a segment's
    /// processing removes a connection; expiry happens here, before, and in `tick`). A strong
    /// reference cost an atomic retain and release a segment, 10% of SMTP's.
    private func connection(of packet: DecodedPacket, key: FlowKey, isSYN: Bool, isACK: Bool) -> Unmanaged<TCPConnection>? {
        let untagged = packet.vlans.isEmpty
        let folded = untagged ? Endpoint.foldedHash(key.low, key.high, vlans: VLANTags()) : 0
        var found: Unmanaged<TCPConnection>?
        if untagged, let hit = recent.lookup(folded: folded, key.low, key.high) {
            found = hit
        } else if let c = connections[key] {
            found = Unmanaged.passUnretained(c)
            if untagged { recent.remember(folded: folded, key.low, key.high, c) }
        }
        if let c = found {
            let (expired, closed) = c._withUnsafeGuaranteedRef { (clock - $0.lastSeen > $0.timeout, $0.closed) }
            if expired {
                expire(c.takeUnretainedValue())   // out of the table: not used after this
                found = nil
            } else if closed {
                // A new SYN on a closed tuple is a new connection; anything else is a straggler.
                guard isSYN && !isACK else {
                    c._withUnsafeGuaranteedRef { $0.lastSeen = clock }
                    return nil
                }
                connections[key] = nil
                recent.forgetAll()
                found = nil
            }
        }
        if found == nil {
            guard isSYN || packet.payload.count > 0 else { return nil }
            return makeConnection(packet, key: key).map { Unmanaged.passUnretained($0) }   // in the table
        }
        return found
    }

    /// One segment (the sniffer has ticked the clock to its time).
    func process(_ packet: DecodedPacket) {
        stats.segments += 1
        let key = FlowKey(packet.source, packet.destination, vlans: packet.vlans)
        let flags = packet.flags
        let isSYN = flags.contains(.syn), isACK = flags.contains(.ack)

        guard let c = connection(of: packet, key: key, isSYN: isSYN, isACK: isACK) else { return }
        c._withUnsafeGuaranteedRef { process(packet, on: $0, flags: flags, isSYN: isSYN, isACK: isACK) }
    }

    /// The segment on its connection (`flags`, `isSYN`, `isACK`: the packet's, read once).
    @inline(__always) private func process(_ packet: DecodedPacket, on c: TCPConnection, flags: TCPFlags,
                                           isSYN: Bool, isACK: Bool) {
        c.lastSeen = clock
        let direction: Direction = packet.source == c.info.client ? .original : .reverse
        let d = direction.rawValue, peer = direction.opposite.rawValue

        if flags.contains(.rst) {
            stats.resets += 1
            close(c, ending: .reset, reason: .closed)
            return
        }
        if isACK {
            if !c.streams[peer].hasSequence && !c.streams[peer].ended {
                // Nothing seen from the other side yet: its stream starts where this side's ACK
                // points, so bytes it later acknowledges without our seeing them count as gaps.
                c.streams[peer].hasSequence = true
                c.streams[peer].nextSequence = packet.acknowledgment
            }
            // What this side acknowledges bounds what the other side can still retransmit.
            // (Fields read in place: a copy of the stream state would retain its buffers.)
            if !c.streams[peer].hasPeerAcknowledged
                || Int32(bitPattern: packet.acknowledgment &- c.streams[peer].peerAcknowledged) > 0 {
                c.streams[peer].peerAcknowledged = packet.acknowledgment
                c.streams[peer].hasPeerAcknowledged = true
            }
            // Bytes of the other direction that this side acknowledged but the capture never
            // showed are lost for good: report them before this packet's own bytes.
            reportAcknowledgedLoss(c, direction.opposite)
        }
        var start = packet.sequence
        if isSYN {
            start = packet.sequence &+ 1
            if !c.streams[d].hasSequence {
                c.streams[d].hasSequence = true
                c.streams[d].nextSequence = start
            }
        }
        let fin = flags.contains(.fin)
        if packet.payload.count > 0 || fin {
            if !c.streams[d].hasSequence {
                // Picked up mid-stream: start at the first byte we see.
                c.streams[d].hasSequence = true
                c.streams[d].nextSequence = start
            }
            receive(c, direction, sequence: start, payload: packet.payload,
                    missing: max(0, packet.wirePayloadLength - packet.payload.count), fin: fin)
        }
        if c.streams[0].ended && c.streams[1].ended && !c.closed {
            finishClose(c, reason: .closed)
        }
    }

    private func makeConnection(_ packet: DecodedPacket, key: FlowKey) -> TCPConnection? {
        let plugin: LoadedPlugin, client: Endpoint, server: Endpoint
        if let p = pluginForPort[packet.destination.port] {
            plugin = p
            (client, server) = (packet.source, packet.destination)
        } else if let p = pluginForPort[packet.source.port] {
            plugin = p
            (client, server) = (packet.destination, packet.source)
        } else {
            return nil
        }
        var (c, s) = (client, server)
        // The SYN sender is the client, whatever the ports say; a SYN-ACK comes from the server.
        if packet.flags.contains(.syn) {
            if packet.flags.contains(.ack) { (c, s) = (packet.destination, packet.source) }
            else { (c, s) = (packet.source, packet.destination) }
        }
        guard let driver = plugin.tcp else { return nil }
        let info = ConnectionInfo(id: UInt64(order.packetIndex), transport: .tcp, client: c, server: s, vlans: packet.vlans,
                                  startedMidStream: !packet.flags.contains(.syn))
        stats.connections += 1
        let connection = TCPConnection(info: info, key: key, plugin: plugin, driver: driver, now: clock,
                                       publisher: publisher)
        connections[key] = connection
        logger.debug("new connection \(info.id) \(c) -> \(s) (\(plugin.name))")
        return connection
    }

    /// Places one segment: delivered now if in order, trimmed if it overlaps what was
    /// delivered, buffered if it is ahead of a hole.
    private func receive(_ c: TCPConnection, _ direction: Direction, sequence: UInt32,
                         payload: UnsafeRawBufferPointer, missing: Int, fin: Bool) {
        let d = direction.rawValue
        guard !c.streams[d].ended else { return }
        let ahead = c.streams[d].offset(of: sequence)
        if ahead > 0 {
            let segment = TCPStreamState.Segment(sequence: sequence, data: Array(payload), missing: missing, fin: fin)
            if c.streams[d].peerAcknowledgedBeyondHole {
                // Bytes up to the peer's ACK are lost for good; beyond it may be mere reordering.
                let acknowledged = c.streams[d].peerAcknowledged
                let lost = min(ahead, c.streams[d].offset(of: acknowledged))
                declareGap(c, direction, byteCount: lost)
                c.streams[d].nextSequence = c.streams[d].nextSequence &+ UInt32(lost)
                if lost < ahead {
                    buffer(c, direction, segment)
                    drainOutOfOrder(c, direction)
                    return
                }
                deliver(c, direction, sequence: sequence, bytes: payload, missing: missing, fin: fin)
                drainOutOfOrder(c, direction)
            } else {
                buffer(c, direction, segment)
            }
            return
        }
        deliver(c, direction, sequence: sequence, bytes: payload, missing: missing, fin: fin)
        drainOutOfOrder(c, direction)
    }

    private func buffer(_ c: TCPConnection, _ direction: Direction, _ segment: TCPStreamState.Segment) {
        let d = direction.rawValue
        stats.outOfOrderSegments += 1
        let offset = c.streams[d].offset(of: segment.sequence)
        let index = c.streams[d].outOfOrder.firstIndex { c.streams[d].offset(of: $0.sequence) > offset }
            ?? c.streams[d].outOfOrder.count
        c.streams[d].outOfOrder.insert(segment, at: index)
        if c.streams[d].outOfOrder.count > options.maxOutOfOrderSegments {
            flushHole(c, direction)
        }
    }

    /// Delivers the part of a segment at or after `nextSequence`; earlier bytes are a
    /// retransmission. Bytes the snap length cut off (`missing`) are a gap, reported at once.
    private func deliver<C: Collection>(_ c: TCPConnection, _ direction: Direction, sequence: UInt32,
                                        bytes: C, missing: Int = 0, fin: Bool) where C.Element == UInt8 {
        let d = direction.rawValue
        guard !c.streams[d].ended else { return }
        let behind = -c.streams[d].offset(of: sequence)
        let count = bytes.count, total = count + missing
        if behind > total || (behind == total && !fin) || (behind > 0 && total == 0) {
            stats.retransmittedSegments += 1
            return
        }
        if behind > 0 { stats.retransmittedSegments += 1 }
        let fresh = bytes.dropFirst(min(behind, count))
        if !fresh.isEmpty {
            c.streams[d].nextSequence = c.streams[d].nextSequence &+ UInt32(fresh.count)
            c.streams[d].buffer.append(contentsOf: fresh)
            parse(c, direction)
        }
        let lostTail = behind > count ? total - behind : missing
        if lostTail > 0 && !c.streams[d].ended {
            declareGap(c, direction, byteCount: lostTail)
            c.streams[d].nextSequence = c.streams[d].nextSequence &+ UInt32(lostTail)
        }
        if fin {
            c.streams[d].nextSequence = c.streams[d].nextSequence &+ 1
            end(c, direction, reason: .fin)
        }
    }

    private func parse(_ c: TCPConnection, _ direction: Direction) {
        withContext(c) { parse(c, direction, context: $0) }
    }

    private func parse(_ c: TCPConnection, _ direction: Direction, context ctx: PluginContext) {
        let d = direction.rawValue
        c.handler.parse(&c.streams[d].buffer, direction: direction, context: ctx)
        if c.streams[d].buffer.readableBytes > options.maxStreamBytes {
            // The plugin could not make sense of this much data: drop it as Packetbeat does.
            stats.streamOverflows += 1
            let dropped = c.streams[d].buffer.readableBytes
            logger.debug("connection \(c.info.id) \(direction): \(dropped) unparsed bytes over the cap, dropped")
            c.streams[d].buffer.removeAll()
            applyGap(c, direction, byteCount: dropped)
        }
        // The other side may have been waiting for this one (e.g. a reply deciding how to read).
        let p = direction.opposite.rawValue
        if !c.streams[p].buffer.isEmpty && !c.streams[p].ended {
            c.handler.parse(&c.streams[p].buffer, direction: direction.opposite, context: ctx)
        }
    }

    private func drainOutOfOrder(_ c: TCPConnection, _ direction: Direction) {
        let d = direction.rawValue
        while let first = c.streams[d].outOfOrder.first, c.streams[d].offset(of: first.sequence) <= 0 {
            c.streams[d].outOfOrder.removeFirst()
            deliver(c, direction, sequence: first.sequence, bytes: first.data, missing: first.missing, fin: first.fin)
        }
    }

    /// The peer acknowledged bytes never captured: a gap of exactly that many bytes, now.
    /// A distance of one is not enough: it is most likely a FIN the capture missed.
    private func reportAcknowledgedLoss(_ c: TCPConnection, _ direction: Direction) {
        let d = direction.rawValue
        guard c.streams[d].hasSequence, !c.streams[d].ended, c.streams[d].hasPeerAcknowledged else { return }
        let acknowledged = c.streams[d].peerAcknowledged
        if let first = c.streams[d].outOfOrder.first,
           c.streams[d].offset(of: first.sequence) <= c.streams[d].offset(of: acknowledged) {
            flushHole(c, direction)
        }
        let missing = c.streams[d].offset(of: acknowledged)
        guard missing >= 2, !c.streams[d].ended else { return }
        declareGap(c, direction, byteCount: missing)
        c.streams[d].nextSequence = acknowledged
        drainOutOfOrder(c, direction)
    }

    /// Gives up on the hole before the first buffered segment: reports it and moves on.
    private func flushHole(_ c: TCPConnection, _ direction: Direction) {
        let d = direction.rawValue
        guard let first = c.streams[d].outOfOrder.first, !c.streams[d].ended else { return }
        let missing = c.streams[d].offset(of: first.sequence)
        if missing > 0 {
            declareGap(c, direction, byteCount: missing)
            c.streams[d].nextSequence = first.sequence
        }
        drainOutOfOrder(c, direction)
    }

    private func declareGap(_ c: TCPConnection, _ direction: Direction, byteCount: Int) {
        stats.gaps += 1
        stats.gapBytes += byteCount
        logger.debug("connection \(c.info.id) \(direction): gap of \(byteCount) bytes")
        applyGap(c, direction, byteCount: byteCount)
    }

    private func applyGap(_ c: TCPConnection, _ direction: Direction, byteCount: Int) {
        let d = direction.rawValue
        let decision = withContext(c) {
            c.handler.gap(direction: direction, byteCount: byteCount, stream: &c.streams[d].buffer, context: $0)
        }
        if decision == .dropState {
            c.streams[0].buffer.removeAll()
            c.streams[1].buffer.removeAll()
            c.handler.resetState()
        }
    }

    private func end(_ c: TCPConnection, _ direction: Direction, reason: StreamEnd) {
        let d = direction.rawValue
        guard !c.streams[d].ended else { return }
        c.streams[d].ended = true
        c.streams[d].outOfOrder.removeAll()
        withContext(c) { c.handler.receivedFIN(direction: direction, reason: reason, remaining: &c.streams[d].buffer, context: $0) }
        c.streams[d].buffer.removeAll()
    }

    // MARK: Closing

    /// Flushes what can still be delivered, ends open directions with `ending` (when the
    /// connection really ended) and tells the plugin it is closed.
    private func close(_ c: TCPConnection, ending: StreamEnd?, reason: CloseReason) {
        guard !c.closed else { return }
        for direction in [Direction.original, .reverse] {
            while !c.streams[direction.rawValue].outOfOrder.isEmpty && !c.streams[direction.rawValue].ended {
                flushHole(c, direction)
            }
        }
        if let ending {
            for direction in [Direction.original, .reverse] { end(c, direction, reason: ending) }
        }
        finishClose(c, reason: reason)
    }

    private func finishClose(_ c: TCPConnection, reason: CloseReason) {
        c.closed = true
        withContext(c) { c.handler.close(reason: reason, context: $0) }
        c.streams[0] = TCPStreamState()
        c.streams[1] = TCPStreamState()
        logger.debug("connection \(c.info.id) closed (\(reason.rawValue))")
    }

    private func expire(_ c: TCPConnection) {
        if !c.closed {
            stats.expiredConnections += 1
            close(c, ending: nil, reason: .timeout)
        }
        connections[c.key] = nil
        recent.forgetAll()
    }

    /// Expires idle connections once per second of packet time, oldest first so the
    /// order of the events they publish does not depend on hashing.
    private func sweepIfDue() {
        guard sweeps.isDue(at: clock) else { return }
        let idle = connections.values.filter { clock - $0.lastSeen > $0.timeout }
        for c in idle.sorted(by: { ($0.lastSeen, $0.info.id) < ($1.lastSeen, $1.info.id) }) {
            order.sweep(c.lastSeen.nanoseconds, Int64(c.info.id))
            expire(c)
        }
        order.endOfSweep()
    }

    /// End of input: every open connection is closed, in order of creation (the packet
    /// that opened it numbers it).
    func finish() {
        for c in connections.values.sorted(by: { $0.info.id < $1.info.id }) where !c.closed {
            order.endOfInput(phase: 0, first: Int64(c.info.id))
            close(c, ending: nil, reason: .endOfInput)
        }
        connections.removeAll()
        recent.forgetAll()
    }
}
