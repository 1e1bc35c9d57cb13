#if canImport(Glibc)
import Glibc
#endif

/// The reading side of a parallel replay: reads the capture once, decodes every frame, and
/// sends each packet to the worker that owns its flow, and to every other worker only its
/// time (`PacketBatch.Record.pass`), so that all keep the same clocks and packet numbers.
///
/// Why one reader: each worker reading and decoding the whole file itself cost ~1,200
/// instructions for every packet it then skipped (libpcap's reads ~450 of them), a sixth of
/// the work on the benchmark captures.
final class PacketRouter {
    private let source: PcapSource
    private let outputs: [HandOff<PacketBatch>]
    /// The batch being filled for each worker, referenced unretained in `route` (the array's
    /// elements cost a retain and a release each a packet): `batches` holds them.
    @exclusivity(unchecked) private var batches: [PacketBatch]
    @exclusivity(unchecked) private var filling: [Unmanaged<PacketBatch>]
    @exclusivity(unchecked) private var decoder = PacketDecoder()
    private let sharding: FlowSharding
    /// The clocks the workers' sniffers keep (`Sniffer.advanceClocks`), and their sweeps:
    /// a flow is forgotten at the same packet where its state expires.
    @exclusivity(unchecked) private var clock = Timestamp.zero
    @exclusivity(unchecked) private var tcpClock = Timestamp.zero
    @exclusivity(unchecked) private var tcpSweeps = SweepSchedule()
    @exclusivity(unchecked) private var udpSweeps = SweepSchedule()
    private let hasUDPPlugins: Bool
    @exclusivity(unchecked) private var sinceFlush = 0
    @exclusivity(unchecked) private(set) var packets = 0
    @exclusivity(unchecked) private(set) var bytes = 0
    var skipped: [SkipReason: Int] { decoder.skipped }

    /// Packets between two hand-overs: each worker waits for at most this many.
    static let flushEvery = 256

    init(source: PcapSource, outputs: [HandOff<PacketBatch>], sharding: FlowSharding, hasUDPPlugins: Bool) {
        self.source = source
        self.outputs = outputs
        self.sharding = sharding
        self.hasUDPPlugins = hasUDPPlugins
        batches = outputs.map { $0.fresh() }
        filling = batches.map { Unmanaged.passUnretained($0) }
    }

    /// Reads to the end (or to the damage, whose error ends the last batches) and sends
    /// every worker its last batch.
    func run() {
        let linkType = source.linkType
        var failure: Error?
        let router = Unmanaged.passUnretained(self)
        do {
            while try source.next({ ts, frame, _ in
                router._withUnsafeGuaranteedRef { $0.handle(linkType: linkType, timestamp: ts, frame: frame) }
            }) == .packet {}
        } catch {
            failure = error
        }
        for (w, batch) in batches.enumerated() {
            batch.isLast = true
            batch.failure = failure
            outputs[w].put(batch)
        }
    }

    private func handle(linkType: Int32, timestamp: Timestamp, frame: UnsafeRawBufferPointer) {
        packets += 1
        bytes += frame.count
        let router = Unmanaged.passUnretained(self)
        decoder.decode(linkType: linkType, timestamp: timestamp, frame: frame) { packet in
            router._withUnsafeGuaranteedRef { $0.route(packet) }
        }
    }

    private func route(_ packet: DecodedPacket) {
        let ts = packet.timestamp
        if ts > clock { clock = ts }
        let owner: Int
        switch packet.transport {
        case .tcp:
            if ts > tcpClock { tcpClock = ts }
            if tcpSweeps.isDue(at: tcpClock) { sharding.forgetIdle(.tcp, now: tcpClock) }
            owner = sharding.owner(of: packet, now: tcpClock)
        case .udp:
            if hasUDPPlugins && udpSweeps.isDue(at: clock) { sharding.forgetIdle(.udp, now: clock) }
            owner = sharding.owner(of: packet, now: clock)
        }
        var full = false
        for w in filling.indices {
            full = filling[w]._withUnsafeGuaranteedRef { batch in
                w == owner ? batch.append(packet) : batch.appendPass(ts, packet.transport)
            } || full
        }
        sinceFlush += 1
        if full || sinceFlush >= PacketRouter.flushEvery { flush() }
    }

    /// Hands every worker what it has, so that none waits on the others' traffic.
    private func flush() {
        for w in batches.indices {
            outputs[w].put(batches[w])
            batches[w] = outputs[w].fresh()
            filling[w] = Unmanaged.passUnretained(batches[w])
        }
        sinceFlush = 0
    }
}

/// Packets for one worker, one after the other in one buffer: a record header, then for a
/// packet the decoded fields and the payload's bytes.
final class PacketBatch: Reusable {
    /// A buffer this size holds a flush's packets; one that must hold a larger packet grows.
    static let capacity = 256 * 1024
    /// The buffer's end past which a batch counts as full (it still takes the record).
    static let fillMark = capacity - 64 * 1024
    private var buffer: UnsafeMutableRawPointer
    private var allocated: Int
    @exclusivity(unchecked) private var count = 0
    /// The worker's last batch; `failure` is the damage that ended the capture early.
    @exclusivity(unchecked) var isLast = false
    @exclusivity(unchecked) var failure: Error?

    private static let alignment = 16
    private static let passSize = 16
    private static let packetHeaderSize = (MemoryLayout<DecodedPacket>.size + 15) & ~15

    init() {
        precondition(_isPOD(DecodedPacket.self), "packets are copied as bytes")
        allocated = PacketBatch.capacity
        buffer = .allocate(byteCount: allocated, alignment: PacketBatch.alignment)
    }

    deinit { buffer.deallocate() }

    func reset() {
        count = 0
        isLast = false
        failure = nil
    }

    /// Room for `n` more bytes.
    private func reserve(_ n: Int) {
        guard count + n > allocated else { return }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: max(allocated * 2, count + n), alignment: PacketBatch.alignment)
        bigger.copyMemory(from: buffer, byteCount: count)
        buffer.deallocate()
        buffer = bigger
        allocated = max(allocated * 2, count + n)
    }

    /// A packet of this worker's; true when the batch is full.
    func append(_ packet: DecodedPacket) -> Bool {
        let payload = packet.payload.count
        let size = PacketBatch.passSize + PacketBatch.packetHeaderSize + (payload + 15) & ~15
        reserve(size)
        let p = buffer + count
        p.storeBytes(of: Int64(payload), as: Int64.self)          // a packet: its payload's size (≥ 0)
        p.storeBytes(of: Int64(0), toByteOffset: 8, as: Int64.self)
        (p + PacketBatch.passSize).storeBytes(of: packet, as: DecodedPacket.self)
        if let from = packet.payload.baseAddress, payload > 0 {
            (p + PacketBatch.passSize + PacketBatch.packetHeaderSize).copyMemory(from: from, byteCount: payload)
        }
        count += size
        return count >= PacketBatch.fillMark
    }

    /// The time of a packet of another worker's; true when the batch is full.
    func appendPass(_ timestamp: Timestamp, _ transport: Transport) -> Bool {
        reserve(PacketBatch.passSize)
        let p = buffer + count
        p.storeBytes(of: transport == .tcp ? -1 : -2, as: Int64.self)   // a pass: -1 TCP, -2 UDP
        p.storeBytes(of: timestamp.nanoseconds, toByteOffset: 8, as: Int64.self)
        count += PacketBatch.passSize
        return count >= PacketBatch.fillMark
    }

    enum Record {
        case packet(DecodedPacket)
        case pass(Timestamp, Transport)
    }

    /// Calls `body` with each record in order; a packet's payload points into the batch.
    func forEach(_ body: (Record) -> Void) {
        var offset = 0
        while offset < count {
            let p = UnsafeRawPointer(buffer + offset)
            let tag = p.load(as: Int64.self)
            if tag < 0 {
                body(.pass(Timestamp(nanoseconds: p.load(fromByteOffset: 8, as: Int64.self)), tag == -1 ? .tcp : .udp))
                offset += PacketBatch.passSize
                continue
            }
            let payload = Int(tag)
            var packet = (p + PacketBatch.passSize).load(as: DecodedPacket.self)
            packet.payload = UnsafeRawBufferPointer(start: p + PacketBatch.passSize + PacketBatch.packetHeaderSize, count: payload)
            body(.packet(packet))
            offset += PacketBatch.passSize + PacketBatch.packetHeaderSize + (payload + 15) & ~15
        }
    }
}
