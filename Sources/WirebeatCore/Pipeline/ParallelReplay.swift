#if canImport(Glibc)
import Glibc
#endif

/// Replays a capture file on several threads with the output of a single sniffer, byte for
/// byte.
///
/// The capture is read and decoded once (`PacketRouter`, which the workers take turns at),
/// and each packet goes, with its index and the packet clocks, to the worker that owns its
/// flow (`FlowSharding`); the others get it only where a sweep is due. Each worker runs a
/// sniffer with its own plugin instances on its packets, sweeps where one sniffer alone
/// would, and formats its events into chunks, each event tagged with its
/// `EventOrderKey`; the chunks are merged by key and written out (`Merge`, which the workers
/// also run as they hand chunks over). A chunk carries a watermark (every event of a packet up to it is in this or an
/// earlier chunk), which is what lets the merge go on without waiting for the end. Every
/// hand-over holds at most `HandOff.depth` items, so memory stays bounded whatever the
/// capture's size.
public enum ParallelReplay {
    /// How long the plugins may hold state for an idle flow (TCP, UDP); nil if a UDP plugin
    /// does not say, in which case replay stays on one thread.
    public static func idleLimits(of plugins: [LoadedPlugin]) -> (tcp: TimeSpan, udp: TimeSpan)? {
        var tcp = TimeSpan.seconds(0), udp = TimeSpan.seconds(0)
        for plugin in plugins {
            if let driver = plugin.tcp { tcp = max(tcp, driver.timeout) }
            if let p = plugin.udp {
                guard let lifetime = p.flowStateLifetime else { return nil }
                udp = max(udp, lifetime)
            }
        }
        return (tcp, udp)
    }

    /// Replays `file` with `workers` sniffers, one per thread, each with its own plugins
    /// (`makePlugins` is called once per worker, here). `formatLine` renders one event into a
    /// worker's buffer (it runs on the workers' threads), and `formatTemplated`, if given, the
    /// same line from an event's template (`EventPublisher.publish(_:_:fields:build:)`; without it,
    /// such events are built and go to `formatLine`); `write` receives the merged output
    /// in order, on the workers' threads but never two calls at once, in buffers that stay
    /// valid until the next call of `release` (made before the workers' buffers are reused,
    /// and at the end): a writer may gather them instead of copying. Neither is called once
    /// this returns. Returns the combined stats and, for a capture damaged part
    /// way (processed up to the damage and finished, as `Replay.run` does), the error; a file
    /// that cannot be opened at all is thrown.
    public static func run(file: String, workers: Int, makePlugins: () throws -> [LoadedPlugin],
                           tcpOptions: TCPOptions = TCPOptions(), logging: LoggingSetup = LoggingSetup(),
                           formatLine: @escaping (Event, OutputBuffer) -> Void,
                           formatTemplated: TemplatedLineFormat? = nil,
                           write: (UnsafeBufferPointer<UInt8>) -> Void,
                           release: () -> Void = {}) throws -> Result {
        precondition(workers >= 2)
        let source = try PcapSource.open(file: file)  // a missing or bad file fails here
        var pluginSets: [[LoadedPlugin]] = []
        for _ in 0..<workers { pluginSets.append(try makePlugins()) }
        guard let limits = idleLimits(of: pluginSets[0]) else {
            throw CaptureError("parallel replay: a UDP plugin does not declare flowStateLifetime")
        }

        return withoutActuallyEscaping(write) { write in
            withoutActuallyEscaping(release) { release in
                replay(source: source, pluginSets: pluginSets, limits: limits, tcpOptions: tcpOptions, logging: logging,
                       formatLine: formatLine, formatTemplated: formatTemplated, write: write, release: release)
            }
        }
    }

    /// `run` once the file is open and the plugins made: `write` and `release` are called on the
    /// workers' threads (one at a time, by `Merge`), and not after this returns.
    private static func replay(source: PcapSource, pluginSets: [[LoadedPlugin]], limits: (tcp: TimeSpan, udp: TimeSpan),
                               tcpOptions: TCPOptions, logging: LoggingSetup,
                               formatLine: @escaping (Event, OutputBuffer) -> Void, formatTemplated: TemplatedLineFormat?,
                               write: @escaping (UnsafeBufferPointer<UInt8>) -> Void, release: @escaping () -> Void) -> Result {
        let workers = pluginSets.count
        let channels = (0..<workers).map { _ in HandOff<Chunk>() }
        let merge = Merge(channels, write: write, release: release)
        let shards = (0..<workers).map { index -> Shard in
            let order = EventOrder()
            let publisher = ShardPublisher(order: order, channel: channels[index], merge: merge, formatLine: formatLine,
                                           formatTemplated: formatTemplated)
            let sniffer = Sniffer(plugins: pluginSets[index], publisher: publisher, tcpOptions: tcpOptions,
                                  logging: logging, order: order)
            return Shard(sniffer: sniffer, publisher: publisher, channel: channels[index])
        }
        let router = PacketRouter(source: source, outputs: shards.map(\.input),
                                  sharding: FlowSharding(workers: workers, tcpIdleLimit: limits.tcp, udpIdleLimit: limits.udp),
                                  hasUDPPlugins: pluginSets[0].contains { $0.udp != nil })
        let threads = shards.enumerated().map { w, shard in WorkerThread { shard.run(worker: w, router: router) } }
        for thread in threads { thread.join() }
        precondition(merge.isFinished, "parallel replay: the merge did not reach every worker's end")
        merge.close()
        let stats = shards.map(\.sniffer.stats)
        var combined = SnifferStats.combined(stats)
        // What the workers do not all see: frames, those not decoded, other flows' packets.
        combined.packets = router.packets
        combined.bytes = router.bytes
        combined.skipped = router.skipped
        combined.tcpSegments = router.tcpSegments
        combined.udpDatagrams = router.udpDatagrams
        return Result(stats: combined, failure: shards.compactMap(\.error).first,
                      eventsPerWorker: stats.map { $0.eventsByType.values.reduce(0, +) })
    }

    /// How a worker writes an event's line from its template: the closure in a struct, so that an
    /// absent one can be `nil` without the closure itself being optional. (A closure stored in
    /// an `Optional` is kept in its most general form: calling it went through a thunk that
    /// boxed the `fields` closure on the heap, ~400 instructions a line in callgrind.)
    public struct TemplatedLineFormat {
        let write: (EventTemplate, EventTemplate.Values, (Int, inout FieldOutput) -> Void, OutputBuffer) -> Void
        public init(_ write: @escaping (EventTemplate, EventTemplate.Values, (Int, inout FieldOutput) -> Void, OutputBuffer) -> Void) {
            self.write = write
        }
    }

    public struct Result {
        public var stats: SnifferStats
        /// Set when the capture was damaged part way (see `run`).
        public var failure: Error?
        /// How the work was shared out.
        public var eventsPerWorker: [Int]
    }

    /// A chunk as the merge reads it: its records, bytes and watermark, which do not change
    /// once the worker has handed it over (the merge holds the chunk meanwhile).
    private struct ChunkView {
        var isThere: Bool
        var records: UnsafeBufferPointer<Chunk.Record>
        var bytes: UnsafeBufferPointer<UInt8>
        var watermark: Int64
        static let none = ChunkView(isThere: false, records: UnsafeBufferPointer(start: nil, count: 0),
                                    bytes: UnsafeBufferPointer(start: nil, count: 0), watermark: 0)
    }

    /// Events out in key order. A worker's own events are already in key order; an event
    /// can go out once every other worker has either a later event waiting or a watermark
    /// at or past its packet. Of equal keys, the lower worker's goes first.
    ///
    /// It has no thread of its own either: a worker that hands over a chunk runs it (`offer`)
    /// as far as the chunks there allow. A merging thread beside the workers was woken for
    /// every chunk (~1,500 times on the DNS bench), each time taking a worker's core.
    final class Merge {
        private let channels: [HandOff<Chunk>]
        private var write: (UnsafeBufferPointer<UInt8>) -> Void
        private var release: () -> Void
        private var chunks: [Chunk?]   // held until given back
        // What the merge reads of each worker's chunk, as plain values: a chunk (a class)
        // read from `chunks` in these loops cost a retain and a release each time.
        private var views: [ChunkView]
        private var next: [Int]        // next record of each worker's chunk
        private var done: [Bool]
        private var finished = false
        /// Who runs it: `running` while a worker does, `again` when another offered meanwhile.
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private var running = false
        private var again = false
        /// Tests only: called after each run, before the mutex is taken again, where another
        /// worker's offer must not be lost (`MergeTests`); nil in a replay.
        var afterRun: (() -> Void)?

        init(_ channels: [HandOff<Chunk>], write: @escaping (UnsafeBufferPointer<UInt8>) -> Void,
             release: @escaping () -> Void) {
            self.channels = channels
            self.write = write
            self.release = release
            let n = channels.count
            chunks = Array(repeating: nil, count: n)
            views = Array(repeating: ChunkView.none, count: n)
            next = Array(repeating: 0, count: n)
            done = Array(repeating: false, count: n)
            pthread_mutex_init(mutex, nil)
        }

        deinit {
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
        }

        /// A worker has handed over a chunk: writes out what can go now, unless another worker
        /// is doing so, who then goes round once more. No offer is left unserved: every chunk
        /// handed over is seen by a run that starts after it.
        func offer() {
            pthread_mutex_lock(mutex)
            if running {
                again = true
                pthread_mutex_unlock(mutex)
                return
            }
            running = true
            repeat {
                again = false
                pthread_mutex_unlock(mutex)
                run()
                afterRun?()
                pthread_mutex_lock(mutex)
            } while again
            running = false
            pthread_mutex_unlock(mutex)
        }

        /// Every worker's last event is out. Once the workers are done, their last offers
        /// must have seen to it.
        var isFinished: Bool {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return finished && !running
        }

        /// Lets go of the output (the closures `run` received; no call after this).
        func close() {
            write = { _ in }
            release = {}
        }

        /// Writes events out in order until one may only go once a chunk not handed over yet is.
        private func run() {
            let n = channels.count
            let write = self.write
            while !finished {
                var best = -1
                var bestKey = EventOrderKey(packet: 0, phase: 0, first: 0, second: 0)
                for w in 0..<n {
                    let view = views[w]
                    guard view.isThere, next[w] < view.records.count else { continue }
                    let key = view.records[next[w]].key
                    if best < 0 || key < bestKey { (best, bestKey) = (w, key) }
                }
                if best < 0 {
                    // Nothing waiting: move every unfinished worker on to its next chunk.
                    var any = false
                    for w in 0..<n where !done[w] {
                        guard advance(w) else { return }
                        any = true
                    }
                    if !any {
                        release()
                        finished = true
                    }
                    continue
                }
                // A worker with nothing waiting whose watermark is short of the event may still
                // have events before it: its next chunk first.
                var blocked = false
                for w in 0..<n where w != best && !done[w] {
                    let view = views[w]
                    if view.isThere, next[w] < view.records.count || view.watermark >= bestKey.packet { continue }
                    guard advance(w) else { return }
                    blocked = true
                    break
                }
                if blocked { continue }
                // The event, and those after it in the same chunk that may go before every other
                // worker's: one write for the run (they are contiguous).
                let records = views[best].records
                let first = next[best]
                var end = first + 1
                runs: while end < records.count {
                    let key = records[end].key
                    for w in 0..<n where w != best && !done[w] {
                        let other = views[w]
                        guard other.isThere else { break runs }
                        if next[w] < other.records.count {
                            let theirs = other.records[next[w]].key
                            if theirs < key || (theirs == key && w < best) { break runs }
                        } else if other.watermark < key.packet {
                            break runs
                        }
                    }
                    end += 1
                }
                let start = first == 0 ? 0 : records[first - 1].end
                write(UnsafeBufferPointer(rebasing: views[best].bytes[start..<records[end - 1].end]))
                next[best] = end
            }
        }

        /// Moves worker `w` on to its next chunk, or marks it done; false if that chunk is not
        /// handed over yet.
        private func advance(_ w: Int) -> Bool {
            if let old = chunks[w] {
                release()  // what was written from `old` must be out before it is reused
                chunks[w] = nil
                views[w] = .none
                if old.isLast { done[w] = true }
                channels[w].recycle(old)
                if done[w] { return true }
            }
            guard let chunk = channels[w].take(wait: false) else { return false }
            chunks[w] = chunk
            views[w] = ChunkView(isThere: true, records: chunk.records, bytes: chunk.buffer.bytes, watermark: chunk.watermark)
            next[w] = 0
            return true
        }
    }

    /// A worker: its sniffer, fed by the router, and its output to the merge.
    private final class Shard {
        let sniffer: Sniffer
        let publisher: ShardPublisher
        let input = HandOff<PacketBatch>()
        let channel: HandOff<Chunk>
        var error: Error?
        init(sniffer: Sniffer, publisher: ShardPublisher, channel: HandOff<Chunk>) {
            self.sniffer = sniffer
            self.publisher = publisher
            self.channel = channel
        }

        /// Runs the sniffer on the router's batches until the last one, taking its turns at
        /// reading them (`PacketRouter.help`).
        func run(worker: Int, router: PacketRouter) {
            let sniffer = self.sniffer, publisher = self.publisher
            while true {
                var next = input.take(wait: false)
                if next == nil {
                    // Before waiting for input, what is done goes out: the merge may be waiting
                    // for this worker's watermark to move past another worker's events.
                    publisher.flush()
                    router.help(worker, starving: true)
                    next = input.take(wait: false) ?? input.take()
                }
                let batch = next!
                batch.forEach { record in
                    switch record {
                    case .packet(let packet, let stamp): sniffer.handle(packet, at: stamp)
                    case .sweep(let stamp, let transport): sniffer.sweep(at: stamp, transport)
                    }
                    publisher.packetDone()
                }
                sniffer.advance(through: batch.end)
                let last = batch.isLast
                if last { error = batch.failure }
                input.recycle(batch)
                if last { break }
                router.help(worker, starving: false)
            }
            sniffer.finish()
            publisher.close()
        }
    }
}

/// A worker's formatted events: their bytes, and each one's key and end offset.
final class Chunk: Reusable {
    /// Chunks pile up only for a worker ahead of the others in the merge: 4 waiting instead
    /// of 8 made no difference to the time on the benchmarks, and keeps the peak memory of a
    /// long capture near a short one's (8 waiting: 28 MB against 23 on the DNS captures).
    static var handOffDepth: Int { 4 }
    let buffer = OutputBuffer(capacity: ShardPublisher.chunkBytes + 64 * 1024)
    struct Record {
        var key: EventOrderKey
        var end: Int
    }
    // In memory of the chunk's own, not an array: the merge reads them for every event, and
    // an array read from the chunk cost a retain and a release of it each time. Written by
    // the worker, then read by the merge: never both at once (the channel hands the chunk
    // over), so exclusivity is not checked (the dynamic checks cost ~190 instructions an
    // event).
    @exclusivity(unchecked) private var recordStorage = UnsafeMutablePointer<Record>.allocate(capacity: 1024)
    @exclusivity(unchecked) private var recordCapacity = 1024
    @exclusivity(unchecked) private(set) var recordCount = 0
    /// Every event of packets up to this index is in this chunk or an earlier one.
    @exclusivity(unchecked) var watermark: Int64 = 0
    /// The worker's last chunk: its watermark is the end of input.
    @exclusivity(unchecked) var isLast = false

    deinit { recordStorage.deallocate() }

    var records: UnsafeBufferPointer<Record> { UnsafeBufferPointer(start: recordStorage, count: recordCount) }

    @inline(__always) func appendRecord(key: EventOrderKey, end: Int) {
        if recordCount == recordCapacity {
            recordStorage = ByteBuffers.grow(recordStorage, count: recordCount, capacity: &recordCapacity,
                                             toAtLeast: recordCount + 1)
        }
        (recordStorage + recordCount).initialize(to: Record(key: key, end: end))
        recordCount += 1
    }

    func reset() {
        buffer.removeAll()
        recordCount = 0   // plain values: nothing to deinitialize
        watermark = 0
        isLast = false
    }
}

/// The publisher of a worker: formats each event into the current chunk with the key of
/// the moment, and hands chunks to the merge.
final class ShardPublisher: EventPublisher {
    static let chunkBytes = 256 * 1024
    static let chunkPackets = 4096
    private let order: EventOrder
    private let channel: HandOff<Chunk>
    private let merge: ParallelReplay.Merge
    private let formatLine: (Event, OutputBuffer) -> Void
    /// Not optional, with `writesTemplates` beside it: binding an optional closure to call
    /// it retained and released its context for every event.
    private let formatTemplated: (EventTemplate, EventTemplate.Values, (Int, inout FieldOutput) -> Void, OutputBuffer) -> Void
    private let writesTemplates: Bool
    @exclusivity(unchecked) private var chunk: Chunk {
        didSet { current = Unmanaged.passUnretained(chunk) }
    }
    /// `chunk`, and its buffer, reached for every event without a retain and a release each.
    @exclusivity(unchecked) private var current: Unmanaged<Chunk>
    @exclusivity(unchecked) private var packetsInChunk = 0
    @exclusivity(unchecked) private var sentWatermark = 0

    init(order: EventOrder, channel: HandOff<Chunk>, merge: ParallelReplay.Merge,
         formatLine: @escaping (Event, OutputBuffer) -> Void, formatTemplated: ParallelReplay.TemplatedLineFormat?) {
        self.order = order
        self.channel = channel
        self.merge = merge
        self.formatLine = formatLine
        // The struct unwrapped, not `formatTemplated?.write`: that is a closure in an Optional again.
        if let format = formatTemplated {
            self.formatTemplated = format.write
        } else {
            self.formatTemplated = { _, _, _, _ in }
        }
        writesTemplates = formatTemplated != nil
        let first = channel.fresh()
        chunk = first
        current = Unmanaged.passUnretained(first)
    }

    func publish(_ event: consuming Event) { publish(event, key: order.key) }

    func publish(_ event: consuming Event, sweepOrder: Int) {
        var key = order.key
        key.second = Int64(sweepOrder)
        publish(event, key: key)
    }

    private func publish(_ event: consuming Event, key: EventOrderKey) {
        // The event written before goes back to the pool now, not right after it was written:
        // dropping it takes atomic reference counting, which waits for the stores of the
        // whole line to drain (~5% of the DNS bench's cycles in that one release).
        written.take()?.discard()
        current._withUnsafeGuaranteedRef { chunk in
            formatLine(event, chunk.buffer)
            chunk.appendRecord(key: key, end: chunk.buffer.count)
        }
        written = consume event   // its storage serves the event after next
    }

    func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                 fields: (Int, inout FieldOutput) -> Void, build: () -> Event) {
        guard writesTemplates else { return publish(build()) }
        let key = order.key
        current._withUnsafeGuaranteedRef { chunk in
            formatTemplated(template, values, fields, chunk.buffer)
            chunk.appendRecord(key: key, end: chunk.buffer.count)
        }
    }
    @exclusivity(unchecked) private var written: Event?

    /// After each frame: every event of the packets so far is out, so a full chunk (or one
    /// that has waited long enough, so the merge is not held up) can go.
    func packetDone() {
        packetsInChunk += 1
        if chunk.buffer.count >= ShardPublisher.chunkBytes || packetsInChunk >= ShardPublisher.chunkPackets {
            send(last: false)
        }
    }

    /// Sends what the chunk holds, if anything moved since the last one was sent (events,
    /// or the watermark: a worker with no packets of its own still lets the merge go on).
    func flush() {
        if packetsInChunk > 0 || order.packetIndex > sentWatermark { send(last: false) }
    }

    /// End of input (after `Sniffer.finish`).
    func close() {
        written.take()?.discard()
        send(last: true)
    }

    private func send(last: Bool) {
        chunk.watermark = last ? EventOrderKey.endOfInput : Int64(order.packetIndex)
        sentWatermark = order.packetIndex
        chunk.isLast = last
        if !channel.put(chunk, wait: false) {
            // Full: the merge runs here first, which may take some; if it waits for another
            // worker's chunk, that worker's offer makes room.
            merge.offer()
            channel.put(chunk)
        }
        merge.offer()
        packetsInChunk = 0
        if !last { chunk = channel.fresh() }
    }
}

/// What can go through a `HandOff` and come back to be used again.
protocol Reusable: AnyObject {
    init()
    /// Empties it for its next use.
    func reset()
    /// How many may wait in a `HandOff` (8 unless said otherwise).
    static var handOffDepth: Int { get }
}

extension Reusable {
    static var handOffDepth: Int { 8 }
}

/// Items from one thread to another, at most `depth` in flight, and used ones back: the
/// router's batches to a worker, a worker's chunks to the merge.
final class HandOff<Item: Reusable> {
    static var depth: Int { Item.handOffDepth }
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var full: [Item] = []
    private var head = 0
    private var spare: [Item] = []
    /// Threads waiting in `put` (for room) and in `take` (for an item): woken only when
    /// there is one, so a hand-over with nobody waiting makes no system call.
    private var sendersWaiting = 0
    private var receiversWaiting = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Sender: an empty item, reused if the receiver gave one back.
    func fresh() -> Item {
        locked { spare.popLast() } ?? Item()
    }

    /// Sender: hands an item over; when `depth` are already waiting, first waits until the
    /// receiver has taken half of them.
    func put(_ item: Item) { _ = put(item, wait: true) }

    /// Sender: hands an item over; when `depth` are already waiting, waits (as `put(_:)`) if
    /// `wait`, else returns false (the item not taken).
    func put(_ item: Item, wait: Bool) -> Bool {
        locked {
            if full.count - head >= HandOff.depth {
                guard wait else { return false }
                // Woken once half the items are taken, not at each one: a sender woken for
                // every take ran for one item and slept again (a switch per batch).
                sendersWaiting += 1
                while full.count - head > HandOff.depth / 2 { pthread_cond_wait(changed, mutex) }
                sendersWaiting -= 1
            }
            full.append(item)
            if receiversWaiting > 0 { pthread_cond_broadcast(changed) }
            return true
        }
    }

    /// Receiver: the next item, waiting for it.
    func take() -> Item { take(wait: true)! }

    /// Receiver: the next item; if none is there, waits for it if `wait`, else nil.
    func take(wait: Bool) -> Item? {
        locked {
            if head == full.count {
                guard wait else { return nil }
                receiversWaiting += 1
                while head == full.count { pthread_cond_wait(changed, mutex) }
                receiversWaiting -= 1
            }
            let item = full[head]
            head += 1
            if head == full.count { full.removeAll(keepingCapacity: true); head = 0 }
            if sendersWaiting > 0 && full.count - head <= HandOff.depth / 2 { pthread_cond_broadcast(changed) }
            return item
        }
    }

    /// Receiver: whether an item is waiting (`take` would not wait).
    var hasWaiting: Bool { locked { head < full.count } }

    /// How many items are waiting.
    var waiting: Int { locked { full.count - head } }

    /// Senders waiting in `put` for room (tests).
    var waitingSenders: Int { locked { sendersWaiting } }

    /// Receiver: an item it is done with.
    func recycle(_ item: Item) {
        item.reset()
        locked { spare.append(item) }
    }
}

/// A POSIX thread running one closure.
final class WorkerThread {
    private var thread = pthread_t()
    private final class Body { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }

    init(_ run: @escaping () -> Void) {
        let body = Unmanaged.passRetained(Body(run)).toOpaque()
        let status = pthread_create(&thread, nil, { arg in
            Unmanaged<Body>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, body)
        precondition(status == 0, "pthread_create failed: \(status)")
    }

    func join() { pthread_join(thread, nil) }
}
