#if canImport(Glibc)
import Glibc
#endif
import CSupport

/// The reading side of a parallel replay: reads the capture once, decodes every frame, and
/// sends each packet to the worker that owns its flow, with its index and the clocks
/// (`PacketStamp`). The other workers get only the packets where a sweep is due (the same
/// `SweepSchedule` as theirs), so that all sweep where one sniffer alone would; each batch
/// says where the capture stands when it is sent (its last packet, the clocks).
///
/// Why one reader: each worker reading and decoding the whole file itself cost ~1,200
/// instructions for every packet it then skipped (libpcap's reads ~450 of them), a sixth of
/// the work on the benchmark captures.
///
/// It has no thread of its own: the workers take turns at it (`help`), one at a time, in
/// rounds of up to `round` packets, and the one that runs low on input does the reading.
/// A reading thread beside the workers left a core idle whenever the scheduler let one
/// worker get ahead: the reader then waited for the other's full queue, the one ahead for
/// its input (~20% of the two cores on the DNS bench, in `perf sched`).
final class PacketRouter {
    private let source: PcapSource
    private let outputs: [HandOff<PacketBatch>]
    /// Held by the worker that reads or hands out; everything below is touched only under it.
    private let turn = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// The batch being filled for each worker, referenced unretained in `route` (the array's
    /// elements cost a retain and a release each a packet): `batches` holds them.
    @exclusivity(unchecked) private var batches: [PacketBatch]
    @exclusivity(unchecked) private var filling: [Unmanaged<PacketBatch>]
    /// The packet index each worker's last batch ended at: a batch with nothing new is not sent.
    @exclusivity(unchecked) private var sentThrough: [Int]
    /// Each worker's last batch is handed over.
    @exclusivity(unchecked) private var sentLast: [Bool]
    @exclusivity(unchecked) private var decoder = PacketDecoder()
    private let sharding: FlowSharding
    /// The clocks of the capture as one sniffer keeps them (`PacketStamp`), and its sweeps:
    /// a flow is forgotten at the same packet where its state expires.
    @exclusivity(unchecked) private var clock = Timestamp.zero
    @exclusivity(unchecked) private var tcpClock = Timestamp.zero
    @exclusivity(unchecked) private var tcpSweeps = SweepSchedule()
    @exclusivity(unchecked) private var udpSweeps = SweepSchedule()
    private let hasUDPPlugins: Bool
    @exclusivity(unchecked) private var index = 0
    /// The capture is read to its end (or its damage, `failure`).
    @exclusivity(unchecked) private var ended = false
    @exclusivity(unchecked) private var failure: Error?
    /// The counters of what the workers do not all see.
    @exclusivity(unchecked) private(set) var packets = 0
    @exclusivity(unchecked) private(set) var bytes = 0
    @exclusivity(unchecked) private(set) var tcpSegments = 0
    @exclusivity(unchecked) private(set) var udpDatagrams = 0
    var skipped: [SkipReason: Int] { decoder.skipped }
    /// Where the capture stands: the last packet routed and the clocks with it.
    private var stamp: PacketStamp { PacketStamp(index: index, clock: clock, tcpClock: tcpClock) }

    /// Packets read in one turn (or fewer, when a batch fills and its worker has no room):
    /// each worker waits for at most this many. 256 woke the workers ~9,000 times on the
    /// DNS capture, 1,024 ~3,500.
    static let round = 1024

    init(source: PcapSource, outputs: [HandOff<PacketBatch>], sharding: FlowSharding, hasUDPPlugins: Bool) {
        self.source = source
        self.outputs = outputs
        self.sharding = sharding
        self.hasUDPPlugins = hasUDPPlugins
        batches = outputs.map { $0.fresh() }
        filling = batches.map { Unmanaged.passUnretained($0) }
        sentThrough = Array(repeating: 0, count: outputs.count)
        sentLast = Array(repeating: false, count: outputs.count)
        pthread_mutex_init(turn, nil)
    }

    deinit {
        pthread_mutex_destroy(turn)
        turn.deallocate()
    }

    /// Called by `worker` between its batches: hands out what waits for the workers, then
    /// reads a round if the caller's queue is low (it is ahead) or some worker has nothing.
    /// `starving`: the caller has no input; it waits for its turn instead of going on when
    /// another worker has it. Nothing here waits for a worker: a batch that finds its worker's
    /// queue full stays here, and no round is read until it is handed over.
    func help(_ worker: Int, starving: Bool) {
        if starving {
            pthread_mutex_lock(turn)
        } else if pthread_mutex_trylock(turn) != 0 {
            return
        }
        defer { pthread_mutex_unlock(turn) }
        handOut()
        guard !ended, !batches.contains(where: \.isFull) else { return }
        let low = HandOff<PacketBatch>.depth / 2
        guard starving || outputs[worker].waiting < low || outputs.contains(where: { $0.waiting == 0 }) else { return }
        readRound()
        handOut()
    }

    private func readRound() {
        let linkType = source.linkType
        let router = Unmanaged.passUnretained(self)
        do {
            let more = try source.forSomePackets(limit: PacketRouter.round) { ts, frame, _ in
                router._withUnsafeGuaranteedRef { $0.handle(linkType: linkType, timestamp: ts, frame: frame) }
            }
            if !more { ended = true }
        } catch {
            failure = error
            ended = true
        }
    }

    /// Every worker gets what it has not had, where its queue has room: its packets and
    /// where the capture stands (so that none waits on the others' traffic), or at the end
    /// its last batch.
    private func handOut() {
        for w in batches.indices where !sentLast[w] {
            let batch = batches[w]
            guard ended || !batch.isEmpty || sentThrough[w] < index else { continue }
            batch.end = stamp
            if ended {
                batch.isLast = true
                batch.failure = failure
            }
            guard outputs[w].put(batch, wait: false) else { continue }
            sentThrough[w] = index
            if ended { sentLast[w] = true } else { renew(w) }
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
        index += 1
        let ts = packet.timestamp
        if ts > clock { clock = ts }
        let owner: Int
        var sweep = false
        switch packet.transport {
        case .tcp:
            tcpSegments += 1
            if ts > tcpClock { tcpClock = ts }
            if tcpSweeps.isDue(at: tcpClock) {
                sharding.forgetIdle(.tcp, now: tcpClock)
                sweep = true
            }
            owner = sharding.owner(of: packet, now: tcpClock)
        case .udp:
            udpDatagrams += 1
            if hasUDPPlugins && udpSweeps.isDue(at: clock) {
                sharding.forgetIdle(.udp, now: clock)
                sweep = true
            }
            owner = sharding.owner(of: packet, now: clock)
        }
        let stamp = PacketStamp(index: index, clock: clock, tcpClock: tcpClock)
        if filling[owner]._withUnsafeGuaranteedRef({ $0.append(packet, at: stamp) }) { filled(owner) }
        if sweep {
            for w in filling.indices where w != owner {
                if filling[w]._withUnsafeGuaranteedRef({ $0.appendSweep(at: stamp, packet.transport) }) { filled(w) }
            }
        }
    }

    /// Worker `w`'s batch is full: it goes now, or, if the worker has no room, the round ends
    /// after this packet.
    private func filled(_ w: Int) {
        batches[w].end = stamp
        if outputs[w].put(batches[w], wait: false) {
            sentThrough[w] = index
            renew(w)
        } else {
            source.stopReading()
        }
    }

    private func renew(_ w: Int) {
        batches[w] = outputs[w].fresh()
        filling[w] = Unmanaged.passUnretained(batches[w])
    }
}

/// Packets for one worker, one after the other in one buffer: a record header (what it is,
/// its `PacketStamp`), then for a packet the decoded fields and the payload's bytes.
final class PacketBatch: Reusable {
    /// A buffer this size holds a flush's packets; one that must hold a larger packet grows.
    static let capacity = 256 * 1024
    /// The buffer's end past which a batch counts as full (it still takes the record).
    static let fillMark = capacity - 64 * 1024
    private var buffer: UnsafeMutableRawPointer
    private var allocated: Int
    @exclusivity(unchecked) private var count = 0
    /// Where the capture stood when the batch was sent (the last packet routed, the clocks).
    @exclusivity(unchecked) var end = PacketStamp(index: 0, clock: .zero, tcpClock: .zero)
    /// The worker's last batch; `failure` is the damage that ended the capture early.
    @exclusivity(unchecked) var isLast = false
    @exclusivity(unchecked) var failure: Error?

    private static let alignment = 16
    private static let headerSize = 32
    private static let packetHeaderSize = (MemoryLayout<DecodedPacket>.size + 15) & ~15

    init() {
        precondition(_isPOD(DecodedPacket.self), "packets are copied as bytes")
        allocated = PacketBatch.capacity
        buffer = .allocate(byteCount: allocated, alignment: PacketBatch.alignment)
    }

    deinit { buffer.deallocate() }

    func reset() {
        count = 0
        end = PacketStamp(index: 0, clock: .zero, tcpClock: .zero)
        isLast = false
        failure = nil
    }

    /// Room for `n` more bytes.
    private func reserve(_ n: Int) {
        guard count + n > allocated else { return }
        allocated = max(allocated * 2, count + n)
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: allocated, alignment: PacketBatch.alignment)
        bigger.copyMemory(from: buffer, byteCount: count)
        buffer.deallocate()
        buffer = bigger
    }

    /// A record's header: `tag` (a packet's payload size, or -1 / -2 for a TCP / UDP sweep)
    /// and the stamp.
    @inline(__always) private func writeHeader(_ tag: Int, _ stamp: PacketStamp, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: Int64(tag), as: Int64.self)
        p.storeBytes(of: Int64(stamp.index), toByteOffset: 8, as: Int64.self)
        p.storeBytes(of: stamp.clock.nanoseconds, toByteOffset: 16, as: Int64.self)
        p.storeBytes(of: stamp.tcpClock.nanoseconds, toByteOffset: 24, as: Int64.self)
    }

    /// No records.
    var isEmpty: Bool { count == 0 }
    /// At or past the fill mark: sent before more goes in.
    var isFull: Bool { count >= PacketBatch.fillMark }

    /// A packet of this worker's; true when the batch is full.
    func append(_ packet: DecodedPacket, at stamp: PacketStamp) -> Bool {
        let payload = packet.payload.count
        let size = PacketBatch.headerSize + PacketBatch.packetHeaderSize + (payload + 15) & ~15
        reserve(size)
        let p = buffer + count
        writeHeader(payload, stamp, at: p)
        (p + PacketBatch.headerSize).storeBytes(of: packet, as: DecodedPacket.self)
        if let from = packet.payload.baseAddress, payload > 0 {
            (p + PacketBatch.headerSize + PacketBatch.packetHeaderSize).copyMemory(from: from, byteCount: payload)
        }
        count += size
        return count >= PacketBatch.fillMark
    }

    /// A packet of another worker's where a sweep of `transport` is due; true when the batch is full.
    func appendSweep(at stamp: PacketStamp, _ transport: Transport) -> Bool {
        reserve(PacketBatch.headerSize)
        writeHeader(transport == .tcp ? -1 : -2, stamp, at: buffer + count)
        count += PacketBatch.headerSize
        return count >= PacketBatch.fillMark
    }

    enum Record {
        case packet(DecodedPacket, PacketStamp)
        case sweep(PacketStamp, Transport)
    }

    /// How far ahead of the record being handed out `forEach` asks for the batch's lines.
    static let prefetchDistance = 2048

    /// Calls `body` with each record in order; a packet's payload points into the batch.
    func forEach(_ body: (Record) -> Void) {
        var offset = 0
        // The batch was written on the reader's core: its lines are asked for ahead, in
        // order, once each, so that the next records' arrive while this one is handled
        // (read when needed, the first loads of each record and its payload's copy missed
        // the cache: ~8% of the DNS bench's CPU, in `perf`).
        var prefetched = 0
        while offset < count {
            let ahead = min(count, offset + PacketBatch.prefetchDistance)
            while prefetched < ahead {
                wirebeat_prefetch(buffer + prefetched)
                prefetched += 64
            }
            let p = UnsafeRawPointer(buffer + offset)
            let tag = p.load(as: Int64.self)
            let stamp = PacketStamp(index: Int(p.load(fromByteOffset: 8, as: Int64.self)),
                                    clock: Timestamp(nanoseconds: p.load(fromByteOffset: 16, as: Int64.self)),
                                    tcpClock: Timestamp(nanoseconds: p.load(fromByteOffset: 24, as: Int64.self)))
            if tag < 0 {
                body(.sweep(stamp, tag == -1 ? .tcp : .udp))
                offset += PacketBatch.headerSize
                continue
            }
            let payload = Int(tag)
            var packet = (p + PacketBatch.headerSize).load(as: DecodedPacket.self)
            packet.payload = UnsafeRawBufferPointer(start: p + PacketBatch.headerSize + PacketBatch.packetHeaderSize, count: payload)
            body(.packet(packet, stamp))
            offset += PacketBatch.headerSize + PacketBatch.packetHeaderSize + (payload + 15) & ~15
        }
    }
}
