#if canImport(Glibc)
import Glibc
#endif
import WirebeatCore

/// The JSON text of the `dns`, `method`, `query` and `resource` values of recent events, by
/// the messages they were written from: their bytes but the ID (bytes 0–1). An event whose
/// messages were seen before, byte for byte but the ID, gets those values copied, with its
/// own ID put in, instead of written again record by record. That is every answer an
/// authoritative server gives to a name asked again (PowerDNS's packet cache answers
/// repeated queries on the same key); on the bench capture (12 questions) it saves ~1,400
/// instructions of ~10,000 an event.
///
/// Exact: a hit compares the stored bytes, not only a hash, and what the values are written
/// from is nothing but the two messages' bytes, which of them are there, and the plugin's
/// settings (fixed for the plugin that owns the cache). The caller does not use the cache for
/// a pair in which a name may read the ID (`DNSMessage.Parsed.mayReadID`: crafted, a pointer
/// into it): a pair that hits has a stored pair's bytes after the ID, so none of its names
/// reads it either.
/// One per plugin, used on its thread.
///
/// Two-way set-associative, `slotCount` slots of `slotBytes` in sets of two: a pair is
/// stored the second time its hash lands in its set, in the way used less recently, so
/// traffic that never repeats costs a hash and a compare per event (no copy), and memory is
/// bounded (a slot is touched only once used). Direct-mapped, two frequent pairs whose hashes
/// met in one slot (the seed is random per plugin: one run in four on the bench's 12 pairs)
/// evicted each other for good, and a sixth of the bench's events missed.
final class DNSRenderCache {
    static let slotCount = 256
    private static let setCount = slotCount / 2
    /// Room for a pair's key and text; larger ones are never stored.
    static let slotBytes = 3072

    /// Where a lookup leaves a pair: found (`hit`), to be stored by the writers (`store`), or neither.
    struct Probe {
        fileprivate var slot: Int
        fileprivate var hash: UInt64
        var hit: Bool
        var store: Bool
        static let none = Probe(slot: 0, hash: 0, hit: false, store: false)
    }

    /// A slot's pair: its key (the bytes after the ID of the query, then of the response) and
    /// its values' text after it, in the slot's memory.
    private struct Slot {
        /// Of the stored pair (0: none).
        var hash: UInt64 = 0
        var flags: UInt8 = 0
        var queryCount = 0, responseCount = 0
        /// Text lengths: `dns` before its ID, after it, then `method`, `query`, `resource`.
        var beforeID = 0, afterID = 0, method = 0, query = 0, resource = 0
        var hasQuestion = false
        /// The response had no fault, and its (extended) RCODE: what an event takes from a
        /// response beyond these values (see `faultlessAnswer`).
        var faultlessAnswer = false
        var rcodeIsZero = false
        /// The response's `DNSBytesHash.tail` (with `fingerprintSeed`), if there is one.
        var responseTail: UInt64 = 0
        /// Which pair the slot holds, of those it held in turn (`pairIdentity`).
        var generation: UInt32 = 0
    }
    private var generations: UInt32 = 0

    private let slots: UnsafeMutablePointer<Slot>
    private let memory: UnsafeMutablePointer<UInt8>
    /// Per set: the hash of the last pair seen once there and not stored, and the way (0, 1)
    /// that answered or was stored last.
    private let candidates: UnsafeMutablePointer<UInt64>
    private let recentWay: UnsafeMutablePointer<UInt8>
    private let seed: UInt64
    /// The seed of the owner's response fingerprints (`responseFingerprint`).
    private let fingerprintSeed: UInt64
    /// The pair being stored (`begin`/`add`/`finish`): its slot and how far its text went.
    private var storing = -1
    private var storedText = 0
    private var storeFailed = false
    /// Lookups in a row that found neither a pair nor a second sighting of one. Past
    /// `idleLookups` only every `idleSampling`th event is looked up, until one finds
    /// something again: on traffic that never repeats, a lookup (~380 instructions an event,
    /// ~3% of its work) is then made for one event in 16.
    private var fruitless = 0
    static let idleLookups = 1024
    static let idleSampling = 16
    /// Lookups answered, pairs stored, events of a response not parsed (for tests).
    private(set) var hits = 0
    private(set) var stores = 0
    var unparsedAnswers = 0

    init(seed: UInt64 = UInt64.random(in: .min ... .max), fingerprintSeed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.seed = seed
        self.fingerprintSeed = fingerprintSeed
        slots = .allocate(capacity: DNSRenderCache.slotCount)
        slots.initialize(repeating: Slot(), count: DNSRenderCache.slotCount)
        memory = .allocate(capacity: DNSRenderCache.slotCount * DNSRenderCache.slotBytes)
        candidates = .allocate(capacity: DNSRenderCache.setCount)
        candidates.initialize(repeating: 0, count: DNSRenderCache.setCount)
        recentWay = .allocate(capacity: DNSRenderCache.setCount)
        recentWay.initialize(repeating: 0, count: DNSRenderCache.setCount)
    }

    deinit {
        slots.deinitialize(count: DNSRenderCache.slotCount)
        slots.deallocate()
        memory.deallocate()
        candidates.deallocate()
        recentWay.deallocate()
    }

    /// Which of the messages are there (and whether the event is an answer's). The text has
    /// one ID: the caller never looks up a pair whose two IDs differ.
    static func flags(hasQuery: Bool, hasResponse: Bool, isAnswer: Bool) -> UInt8 {
        (hasQuery ? 1 : 0) | (hasResponse ? 2 : 0) | (isAnswer ? 4 : 0)
    }

    /// Looks up the pair of messages (`query` and `response` empty when not there, else at
    /// least 12 bytes).
    func probe(query: UnsafeBufferPointer<UInt8>, response: UnsafeBufferPointer<UInt8>, flags: UInt8) -> Probe {
        let looksUp = nextProbeLooksUp
        if fruitless >= DNSRenderCache.idleLookups { fruitless &+= 1 }
        guard looksUp else { return .none }
        let found = lookUp(query: query, response: response, flags: flags)
        if found.hit || found.store { fruitless = 0 } else { fruitless &+= 1 }
        return found
    }

    /// Whether the next `probe` looks the pair up (false while it samples traffic that does
    /// not repeat): else the caller need not prepare one (see `DNSPlugin.pairCached`).
    var nextProbeLooksUp: Bool {
        fruitless < DNSRenderCache.idleLookups || (fruitless &+ 1) & (DNSRenderCache.idleSampling - 1) == 0
    }

    private func lookUp(query: UnsafeBufferPointer<UInt8>, response: UnsafeBufferPointer<UInt8>, flags: UInt8) -> Probe {
        let key = query.count + response.count
        guard key <= DNSRenderCache.slotBytes / 2 else { return .none }
        let h = DNSRenderCache.hash(query: query, response: response, flags: flags, seed: seed)
        let set = DNSRenderCache.set(of: h)
        for way in 0..<2 {
            let index = set &* 2 &+ way
            let slot = slots + index
            guard slot.pointee.hash == h, slot.pointee.flags == flags, slot.pointee.queryCount == query.count,
                  slot.pointee.responseCount == response.count else { continue }
            let base = memory + index * DNSRenderCache.slotBytes
            if DNSRenderCache.sameAfterID(base, query), DNSRenderCache.sameAfterID(base + max(query.count - 2, 0), response) {
                hits &+= 1
                recentWay[set] = UInt8(truncatingIfNeeded: way)
                return Probe(slot: index, hash: h, hit: true, store: false)
            }
        }
        if candidates[set] == h {
            // An empty way, else the one used less recently.
            let way = slots[set &* 2].hash == 0 ? 0 : slots[set &* 2 &+ 1].hash == 0 ? 1 : 1 &- Int(recentWay[set])
            return Probe(slot: set &* 2 &+ way, hash: h, hit: false, store: true)
        }
        candidates[set] = h
        return .none
    }

    /// The key's hash: the bytes after each message's ID, with the lengths and flags; never 0
    /// (an empty slot).
    @inline(__always) static func hash(query: UnsafeBufferPointer<UInt8>, response: UnsafeBufferPointer<UInt8>,
                                       flags: UInt8, seed: UInt64) -> UInt64 {
        var h = DNSBytesHash.mix(seed, UInt64(flags) << 32 | UInt64(query.count) << 16 | UInt64(response.count))
        h = DNSBytesHash.fold(query, from: 2, into: h)
        h = DNSBytesHash.fold(response, from: 2, into: h)
        return h | 1
    }

    /// The set a pair's hash picks (its top bits: the low bit is always set).
    @inline(__always) static func set(of hash: UInt64) -> Int {
        Int(truncatingIfNeeded: hash >> 40) & (DNSRenderCache.setCount - 1)
    }

    /// Writes the stored values of a hit into the event being written (the `dns` value's
    /// writer), with `id` in its place.
    func write(_ probe: Probe, id: UInt16, into out: inout JSONOutput) {
        let slot = slots[probe.slot]
        var p = UnsafePointer(memory + probe.slot * DNSRenderCache.slotBytes + max(slot.queryCount - 2, 0)
                              + max(slot.responseCount - 2, 0))
        func next(_ n: Int) -> UnsafeBufferPointer<UInt8> {
            defer { p += n }
            return UnsafeBufferPointer(start: p, count: n)
        }
        out.append(next(slot.beforeID))
        out.writeInt(Int64(id))
        out.append(next(slot.afterID))
        out.nextValue("method")
        out.append(next(slot.method))
        guard slot.hasQuestion else { return }
        out.nextValue("query")
        out.append(next(slot.query))
        out.nextValue("resource")
        out.append(next(slot.resource))
    }

    /// Of a hit whose stored pair has a response: that response's fingerprint with `id`,
    /// which is the fingerprint of the response looked up (`DNSPlugin.fingerprint`): the same
    /// length and bytes after the ID. Nil otherwise.
    func responseFingerprint(_ probe: Probe, id: UInt16) -> Int? {
        guard probe.hit, slots[probe.slot].responseCount > 0 else { return nil }
        return DNSBytesHash.fingerprint(tail: slots[probe.slot].responseTail, id: id)
    }

    /// Of a hit: the stored pair, as long as its slot holds it (a slot that takes another
    /// pair gets another generation), and where its ID's digits start in the `dns` value.
    func pairIdentity(_ probe: Probe) -> (slot: Int, generation: UInt32, idOffset: Int) {
        (probe.slot, slots[probe.slot].generation, slots[probe.slot].beforeID)
    }

    /// Of a hit: whether its response's RCODE is 0, if the stored pair's response had no
    /// fault; nil otherwise. A response whose bytes but the ID are those of a stored pair
    /// parses as that pair's did (no name in a stored pair reads the ID), so a hit with a
    /// faultless response needs no parse of its own (`DNSEvents.cachedAnswer`).
    func faultlessAnswer(_ probe: Probe) -> Bool? {
        let slot = slots[probe.slot]
        return slot.faultlessAnswer ? slot.rcodeIsZero : nil
    }

    // MARK: Storing (a pair seen the second time: its values as the writers make them)

    /// Starts storing the pair of `probe` (its key now; the values follow with `add`).
    /// `faultlessAnswer`, `rcodeIsZero`: of the response (false without one).
    func begin(_ probe: Probe, query: UnsafeBufferPointer<UInt8>, response: UnsafeBufferPointer<UInt8>, flags: UInt8,
               faultlessAnswer: Bool, rcodeIsZero: Bool) {
        let index = probe.slot
        generations &+= 1
        slots[index] = Slot(hash: 0, flags: flags, queryCount: query.count, responseCount: response.count,
                            faultlessAnswer: faultlessAnswer, rcodeIsZero: rcodeIsZero,
                            responseTail: response.isEmpty ? 0 : DNSBytesHash.tail(response, seed: fingerprintSeed),
                            generation: generations)
        candidates[index / 2] = 0   // taken
        recentWay[index / 2] = UInt8(truncatingIfNeeded: index & 1)
        let base = memory + index * DNSRenderCache.slotBytes
        var at = 0
        for m in [query, response] where m.count > 2 {
            (base + at).update(from: m.baseAddress! + 2, count: m.count - 2)
            at += m.count - 2
        }
        storing = index
        storedText = at
        storeFailed = false
        pendingHash = probe.hash
    }
    private var pendingHash: UInt64 = 0

    /// The parts of the text in order: the `dns` value in two (before and after the ID's
    /// digits), then `method`, `query` and `resource` (a line's order: `DNSEvents.setValues`).
    enum Part { case beforeID, afterID, method, query, resource }

    func add(_ part: Part, _ text: UnsafeBufferPointer<UInt8>) {
        guard storing >= 0, !storeFailed else { return }
        guard storedText + text.count <= DNSRenderCache.slotBytes else {
            storeFailed = true
            return
        }
        if let from = text.baseAddress {
            (memory + storing * DNSRenderCache.slotBytes + storedText).update(from: from, count: text.count)
        }
        storedText += text.count
        switch part {
        case .beforeID: slots[storing].beforeID = text.count
        case .afterID: slots[storing].afterID = text.count
        case .method: slots[storing].method = text.count
        case .resource: slots[storing].resource = text.count
        case .query:
            slots[storing].query = text.count
            slots[storing].hasQuestion = true
        }
    }

    /// Ends the store: the slot answers lookups from now on, unless its text did not fit.
    func finish() {
        guard storing >= 0 else { return }
        if !storeFailed {
            slots[storing].hash = pendingHash
            stores &+= 1
        }
        storing = -1
    }

    // MARK: Keys

    @inline(__always) private static func sameAfterID(_ stored: UnsafePointer<UInt8>, _ m: UnsafeBufferPointer<UInt8>) -> Bool {
        guard m.count > 2, let base = m.baseAddress else { return true }
        return memcmp(stored, base + 2, m.count - 2) == 0
    }
}
