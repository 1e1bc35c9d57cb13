#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The contents of an `Event`: the JSON text of its values, the spans saying where each
/// value is, and the names of the fields, in raw buffers that grow by doubling.
///
/// Why not three arrays: an event is built, written and dropped for every transaction, and
/// each array append checks uniqueness and capacity and each array is a malloc and a free.
/// Here setting a field is a few stores, and the buffers of a dropped event go back to a
/// per-thread pool (`EventBufferPool`) for the next one: building an event allocates one
/// object. `Event` keeps value semantics by copying the storage before changing one that
/// is shared (as arrays do).
@usableFromInline
final class EventStorage: @unchecked Sendable {
    // `@unchecked Sendable`, as arrays: an event's storage is only changed while uniquely
    // referenced (`Event.makeUnique`), so a shared one is only read.

    // Exclusivity is unchecked: the storage is changed only through its event, which holds
    // the only reference at that moment.
    // The bytes' members are usable from inlinable code: `JSONOutput`'s appends are inlined
    // into the plugins that write values in place.
    @usableFromInline @exclusivity(unchecked) var bytes: UnsafeMutablePointer<UInt8>
    @usableFromInline @exclusivity(unchecked) var byteCount = 0
    @usableFromInline @exclusivity(unchecked) var byteCapacity = EventBufferPool.byteCapacity
    @exclusivity(unchecked) private(set) var spans: UnsafeMutablePointer<Event.ValueSpan>
    @exclusivity(unchecked) private(set) var spanCount = 0
    @exclusivity(unchecked) private var spanCapacity = EventBufferPool.spanCapacity
    /// Names of the spans after the `baseNames` (those are shared, never stored here).
    @exclusivity(unchecked) private(set) var names: UnsafeMutablePointer<String>
    @exclusivity(unchecked) private(set) var nameCount = 0
    @exclusivity(unchecked) private var nameCapacity = EventBufferPool.nameCapacity
    @exclusivity(unchecked) private(set) var baseNames: [String] = []
    /// Which of the `TransactionFields` lists `baseNames` is (1...4), or 0 (none): what the
    /// layout cache's quick check compares instead of the names.
    @exclusivity(unchecked) private(set) var baseKind: UInt8 = 0

    /// The base list and its number, together (`recycle` keeps both for the next event).
    func setBase(_ names: [String], kind: UInt8) {
        baseNames = names
        baseKind = kind
    }
    /// JSON text shared by many events (a connection's addresses, ports, Community ID): its
    /// values are referred to, not copied (see `Event.transaction`). `sharedText` is its
    /// flow's text, kept alive by `sharedFlow`.
    @exclusivity(unchecked) var sharedFlow: EncodedFlow?
    @exclusivity(unchecked) var sharedText: UnsafePointer<UInt8>?
    /// Spans that remove their field, and the bytes of all the others' values (what writing
    /// the event needs to know, kept as spans are added).
    @exclusivity(unchecked) private(set) var removedCount = 0
    @exclusivity(unchecked) private(set) var valueBytes = 0
    /// Where the value being written started (`Event.begin` to `Event.end`).
    @exclusivity(unchecked) var pendingStart: Int32 = 0
    /// The value of `type`, kept aside so that counting events by type decodes nothing.
    @exclusivity(unchecked) var type: String?
    /// The pooled block the three buffers start in (a buffer that outgrew it is its own).
    private let block: UnsafeMutableRawPointer

    init() {
        block = EventBufferPool.withCurrent { $0.takeBlock() }
        (bytes, spans, names) = EventBufferPool.regions(of: block)
    }

    /// A storage for a new event: one given back by an event written and dropped on this
    /// thread (`recycle`) if there is one.
    static func make() -> EventStorage {
        EventBufferPool.withCurrent { $0.takeStorage() } ?? EventStorage()
    }

    /// Empties the storage for another event (its buffers kept) and gives it to this thread's
    /// pool: the caller holds the only reference and drops it. An event's storage allocated,
    /// initialised, destroyed and freed cost ~300 instructions.
    func recycle() {
        dropNames()
        byteCount = 0
        spanCount = 0
        // The base list is kept with its number, for the next event, which most often has the
        // same one: set again per event, the shared global list's reference count was written
        // by every worker for every event, and missed the cache across cores (~3% of the DNS
        // bench's CPU, in `perf`, in the retain and this release).
        sharedFlow = nil
        sharedText = nil
        removedCount = 0
        valueBytes = 0
        pendingStart = 0
        type = nil
        // A value text grown large (a big body) is not kept for events that are mostly small.
        if byteCapacity > 64 * 1024 {
            bytes.deallocate()
            bytes = EventBufferPool.regions(of: block).bytes
            byteCapacity = EventBufferPool.byteCapacity
        }
        EventBufferPool.withCurrent { $0.give(self) }
    }

    /// One name at a time: `deinitialize(count:)` went through the generic
    /// `swift_arrayDestroy` (~550 instructions an HTTP event); moving each String out drops
    /// it with its own release, nothing at all for a short (inline) one.
    private func dropNames() {
        for i in 0..<nameCount { _ = (names + i).move() }
        nameCount = 0
    }

    deinit {
        dropNames()
        let inline = EventBufferPool.regions(of: block)
        if bytes != inline.bytes { bytes.deallocate() }
        if spans != inline.spans { spans.deallocate() }
        if names != inline.names { names.deallocate() }
        EventBufferPool.withCurrent { $0.give(block) }
    }

    /// An independent copy (before a shared event is changed).
    func copy() -> EventStorage {
        let c = EventStorage.make()
        c.reserveBytes(byteCount).update(from: bytes, count: byteCount)
        c.byteCount = byteCount
        for i in 0..<spanCount { c.appendSpan(spans[i]) }
        for i in 0..<nameCount { c.appendName(names[i]) }
        if c.baseKind != baseKind { c.setBase(baseNames, kind: baseKind) }
        c.sharedFlow = sharedFlow
        c.sharedText = sharedText
        c.type = type
        c.pendingStart = pendingStart
        return c
    }

    /// Room for `n` more bytes of JSON text at the returned address (`commitBytes` says how
    /// many were written).
    @inlinable @inline(__always) func reserveBytes(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        // `EventLayout.slack` bytes past the end stay allocated: writing the event copies
        // short values 32 bytes at a time.
        // Wrapping adds: the counts are of bytes in memory, far from overflowing, and a
        // plugin's value makes dozens of appends (the checks cost a few instructions each).
        if byteCount &+ n &+ EventLayout.slack > byteCapacity { growBytes(to: byteCount + n + EventLayout.slack) }
        return bytes + byteCount
    }

    @inlinable @inline(__always) func commitBytes(_ n: Int) { byteCount &+= n }

    @inlinable @inline(__always) func appendByte(_ byte: UInt8) {
        reserveBytes(1).pointee = byte
        byteCount &+= 1
    }

    @inlinable @inline(__always) func appendBytes(_ source: UnsafeBufferPointer<UInt8>) {
        guard let from = source.baseAddress, source.count > 0 else { return }
        EventStorage.copy(from: from, count: source.count, to: reserveBytes(source.count))
        byteCount &+= source.count
    }

    /// Copies `n` (> 0) bytes; up to 64 inline, as two loads and two stores that overlap
    /// where `n` is not their size (reading and writing only the `n` bytes): most appends
    /// are a key or a short value, and most pieces of an event's line short, for which a
    /// memmove call costs more than the copy.
    @inlinable @inline(__always)
    static func copy(from source: UnsafePointer<UInt8>, count n: Int, to destination: UnsafeMutablePointer<UInt8>) {
        let s = UnsafeRawPointer(source), d = UnsafeMutableRawPointer(destination)
        // (Written out per size: a generic helper was not always specialised.)
        if n > 64 {
            d.copyMemory(from: s, byteCount: n)
        } else if n > 32 {
            typealias Bytes32 = (UInt64, UInt64, UInt64, UInt64)
            let a = s.loadUnaligned(as: Bytes32.self), b = s.loadUnaligned(fromByteOffset: n &- 32, as: Bytes32.self)
            d.storeBytes(of: a, as: Bytes32.self)
            d.storeBytes(of: b, toByteOffset: n &- 32, as: Bytes32.self)
        } else if n >= 16 {
            let a = s.loadUnaligned(as: (UInt64, UInt64).self)
            let b = s.loadUnaligned(fromByteOffset: n &- 16, as: (UInt64, UInt64).self)
            d.storeBytes(of: a, as: (UInt64, UInt64).self)
            d.storeBytes(of: b, toByteOffset: n &- 16, as: (UInt64, UInt64).self)
        } else if n >= 8 {
            let a = s.loadUnaligned(as: UInt64.self), b = s.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
            d.storeBytes(of: a, as: UInt64.self)
            d.storeBytes(of: b, toByteOffset: n &- 8, as: UInt64.self)
        } else if n >= 4 {
            let a = s.loadUnaligned(as: UInt32.self), b = s.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            d.storeBytes(of: a, as: UInt32.self)
            d.storeBytes(of: b, toByteOffset: n &- 4, as: UInt32.self)
        } else {
            destination[0] = source[0]
            destination[n &- 1] = source[n &- 1]
            destination[n >> 1] = source[n >> 1]
        }
    }

    /// Drops the text after `count` (a string that turned out not to be ASCII is redone).
    func truncateBytes(to count: Int) { byteCount = count }

    @inline(__always) private func count(_ span: Event.ValueSpan) {
        if span.isRemoved { removedCount += 1 } else { valueBytes += Int(span.end &- span.start) }
    }

    @inline(__always) func appendSpan(_ span: Event.ValueSpan) {
        count(span)
        if spanCount == spanCapacity { spans = grow(spans, count: spanCount, to: &spanCapacity, inline: EventBufferPool.regions(of: block).spans) }
        (spans + spanCount).initialize(to: span)
        spanCount += 1
    }

    /// Room for `n` more spans at the returned address, for a writer that knows what it adds
    /// (`Event.transaction`); `commitSpans` counts them in.
    func reserveSpans(_ n: Int) -> UnsafeMutablePointer<Event.ValueSpan> {
        while spanCount + n > spanCapacity {
            spans = grow(spans, count: spanCount, to: &spanCapacity, inline: EventBufferPool.regions(of: block).spans)
        }
        return spans + spanCount
    }

    /// `n` spans initialized after `reserveSpans`, with their value bytes and removals.
    func commitSpans(_ n: Int, valueBytes: Int, removed: Int) {
        spanCount += n
        self.valueBytes += valueBytes
        removedCount += removed
    }

    /// The name of the field set next, unless it is the base name at that place (shared,
    /// not stored).
    @inline(__always) func addName(_ field: String) {
        if spanCount < baseNames.count {
            assert(baseNames[spanCount] == field, "\(field) set out of the base order")
        } else {
            appendName(field)
        }
    }

    /// Starts a value: its JSON text follows, ended by `endValue`.
    @inline(__always) func beginValue() { pendingStart = Int32(truncatingIfNeeded: byteCount) }

    /// Ends the value started by `beginValue` with its span.
    @inline(__always) func endValue() {
        appendSpan(Event.ValueSpan(start: pendingStart, end: Int32(truncatingIfNeeded: byteCount)))
    }

    @inline(__always) func appendName(_ name: String) {
        if nameCount == nameCapacity { names = grow(names, count: nameCount, to: &nameCapacity, inline: EventBufferPool.regions(of: block).names) }
        (names + nameCount).initialize(to: name)
        nameCount += 1
    }

    @usableFromInline func growBytes(to needed: Int) {
        var capacity = byteCapacity * 2
        while capacity < needed { capacity *= 2 }
        let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        larger.update(from: bytes, count: byteCount)
        if bytes != EventBufferPool.regions(of: block).bytes { bytes.deallocate() }
        bytes = larger
        byteCapacity = capacity
    }

    /// A buffer twice as large with the `count` elements moved over; the old one is freed
    /// unless it is the inline region of the block.
    private func grow<T>(_ buffer: UnsafeMutablePointer<T>, count: Int, to capacity: inout Int,
                         inline: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        capacity *= 2
        let larger = UnsafeMutablePointer<T>.allocate(capacity: capacity)
        larger.moveInitialize(from: buffer, count: count)
        if buffer != inline { buffer.deallocate() }
        return larger
    }
}

/// Where JSON text is written: a byte array (plugins assembling a value) or an event's
/// storage. The writer's functions are generic over it inside the module, specialised for
/// both.
protocol JSONSink {
    mutating func put(_ byte: UInt8)
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>)
    mutating func putRaw(_ bytes: UnsafeRawBufferPointer)
    /// The first `count` (1...8) bytes of `word` as it is in memory.
    mutating func putWord(_ word: UInt64, count: Int)
    var writtenCount: Int { get }
    mutating func truncate(to count: Int)
}

extension Array: JSONSink where Element == UInt8 {
    @inline(__always) mutating func put(_ byte: UInt8) { append(byte) }
    @inline(__always) mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
    @inline(__always) mutating func putRaw(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
    @inline(__always) mutating func putWord(_ word: UInt64, count: Int) {
        Swift.withUnsafeBytes(of: word) { append(contentsOf: $0.prefix(count)) }
    }
    var writtenCount: Int { count }
    mutating func truncate(to count: Int) { removeSubrange(count...) }
}

extension EventStorage: JSONSink {
    @inline(__always) func put(_ byte: UInt8) { appendByte(byte) }
    @inline(__always) func put(_ bytes: UnsafeBufferPointer<UInt8>) { appendBytes(bytes) }
    @inline(__always) func putRaw(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        UnsafeMutableRawPointer(reserveBytes(bytes.count)).copyMemory(from: from, byteCount: bytes.count)
        commitBytes(bytes.count)
    }
    /// All 8 bytes stored (the buffer keeps `EventLayout.slack` to spare), `count` kept.
    @inlinable @inline(__always) func putWord(_ word: UInt64, count: Int) {
        UnsafeMutableRawPointer(reserveBytes(8)).storeBytes(of: word, as: UInt64.self)
        commitBytes(count)
    }
    var writtenCount: Int { byteCount }
    func truncate(to count: Int) { truncateBytes(to: count) }
}

/// The buffers of dropped events, kept for the next ones: one pool per thread (events are
/// built, written and dropped on one thread; one dropped elsewhere just moves its block to
/// that thread's pool). Bounded; freed when the thread ends.
final class EventBufferPool {
    static let byteCapacity = 2048
    static let spanCapacity = 64
    static let nameCapacity = 48
    private static let spansOffset = byteCapacity
    private static let namesOffset = spansOffset + spanCapacity * MemoryLayout<Event.ValueSpan>.stride
    private static let blockSize = namesOffset + nameCapacity * MemoryLayout<String>.stride
    private static let maxBlocks = 64

    /// This thread's only: exclusivity unchecked.
    @exclusivity(unchecked) private var blocks: [UnsafeMutableRawPointer] = []
    /// Layouts of the events written on this thread (see `Event.writeCompactJSON`).
    let layouts = EventLayoutCache()
    /// A byte array for values that plugins write themselves (`Event.set(_:writingJSON:)`).
    /// Exclusivity unchecked: this thread's only, and `scratchInUse` keeps it to one writer.
    @exclusivity(unchecked) var scratch: [UInt8] = []
    @exclusivity(unchecked) var scratchInUse = false
    /// The second of the last time written into an event on this thread, and its RFC 3339
    /// text up to the fraction ("YYYY-MM-DDThh:mm:ss.", 20 bytes; see `Timestamp`).
    @exclusivity(unchecked) var timeSecond = Int64.min
    @exclusivity(unchecked) var timePrefix: (UInt64, UInt64, UInt32) = (0, 0, 0)
    /// The last event type written on this thread and its JSON text (a plugin's events all
    /// have the same type: escaping it again for each cost ~300 instructions).
    @exclusivity(unchecked) private var typeName = ""
    /// Its text in memory of the pool's own, not an array: reading an array from the pool
    /// cost a retain and a release of it for every event.
    @exclusivity(unchecked) private var typeText = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 64)
    @exclusivity(unchecked) private var typeTextCount = 0

    /// Appends the JSON string of event type `type` to `storage` (once per event).
    @inline(__always) func appendTypeJSON(of type: String, to storage: EventStorage) {
        if typeName != type || typeTextCount == 0 { encodeType(type) }
        storage.appendBytes(UnsafeBufferPointer(start: typeText.baseAddress, count: typeTextCount))
    }

    private func encodeType(_ type: String) {
        var text: [UInt8] = []
        JSONWriter.writeString(type, to: &text)
        if text.count > typeText.count {
            typeText.deallocate()
            typeText = .allocate(capacity: text.count)
        }
        _ = typeText.initialize(from: text)
        typeTextCount = text.count
        typeName = type
    }

    static func regions(of block: UnsafeMutableRawPointer)
        -> (bytes: UnsafeMutablePointer<UInt8>, spans: UnsafeMutablePointer<Event.ValueSpan>, names: UnsafeMutablePointer<String>) {
        (block.assumingMemoryBound(to: UInt8.self),
         (block + spansOffset).assumingMemoryBound(to: Event.ValueSpan.self),
         (block + namesOffset).assumingMemoryBound(to: String.self))
    }

    /// Runs `write` on this thread's scratch array and appends what it wrote to `storage`.
    /// The array is emptied only now and then; a nested call (a `write` that sets a value of
    /// another event) gets an array of its own.
    func appendWritten(by write: (inout [UInt8]) -> Void, to storage: EventStorage) {
        if scratchInUse {
            var own: [UInt8] = []
            write(&own)
            own.withUnsafeBufferPointer { storage.appendBytes($0) }
            return
        }
        scratchInUse = true
        let start = scratch.count
        write(&scratch)
        scratch.withUnsafeBufferPointer { storage.appendBytes(UnsafeBufferPointer(rebasing: $0[start...])) }
        if scratch.count > 1 << 16 { scratch.removeAll(keepingCapacity: true) }
        scratchInUse = false
    }

    func takeBlock() -> UnsafeMutableRawPointer {
        if let block = blocks.popLast() { return block }
        let block = UnsafeMutableRawPointer.allocate(byteCount: EventBufferPool.blockSize, alignment: 16)
        // Bind each region once, for its whole life in the pools.
        block.bindMemory(to: UInt8.self, capacity: EventBufferPool.spansOffset)
        (block + EventBufferPool.spansOffset).bindMemory(to: Event.ValueSpan.self, capacity: EventBufferPool.spanCapacity)
        (block + EventBufferPool.namesOffset).bindMemory(to: String.self, capacity: EventBufferPool.nameCapacity)
        return block
    }

    /// Storages of events written and dropped on this thread, emptied (`EventStorage.recycle`).
    @exclusivity(unchecked) private var storages: [EventStorage] = []
    private static let maxStorages = 16

    func takeStorage() -> EventStorage? { storages.popLast() }
    var spareStorageCount: Int { storages.count }

    func give(_ storage: EventStorage) {
        if storages.count < EventBufferPool.maxStorages { storages.append(storage) }
    }

    func give(_ block: UnsafeMutableRawPointer) {
        if blocks.count < EventBufferPool.maxBlocks { blocks.append(block) } else { block.deallocate() }
    }

    deinit {
        for block in blocks { block.deallocate() }
        typeText.deallocate()
    }

    /// `body` with this thread's pool, without a retain and release (the thread's key holds
    /// it): reached four times per event, where a strong reference cost ~40 instructions.
    @inline(__always) static func withCurrent<R>(_ body: (EventBufferPool) -> R) -> R {
        currentReference._withUnsafeGuaranteedRef(body)
    }

    private static var currentReference: Unmanaged<EventBufferPool> {
        if let pool = pthread_getspecific(key) { return Unmanaged<EventBufferPool>.fromOpaque(pool) }
        let pool = Unmanaged.passRetained(EventBufferPool())
        pthread_setspecific(key, pool.toOpaque())
        return pool
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pool in
            guard let pool else { return }
            Unmanaged<EventBufferPool>.fromOpaque(pool).release()
        }
        return key
    }()
}
