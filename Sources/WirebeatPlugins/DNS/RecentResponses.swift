import WirebeatCore

/// Responses paired in the last `DNSPlugin.duplicateWindow`, to recognise a repeated datagram:
/// what a dictionary from a key's 64-bit hash to (time, fingerprint) would do (a later entry
/// replaces an earlier one with the same hash, one can be removed, a sweep drops those older
/// than the window), kept as a ring in arrival order with a chained hash index.
///
/// Why not a `Dictionary`: at tens of thousands of responses a second the table holds tens
/// of thousands of entries, and each insert into a dictionary that size missed the cache in
/// its bitmap, its keys and its values, and each stale entry was hashed out again at the
/// sweep (~3–5% of the DNS bench's time, in `perf`). Here an insert writes the ring's next
/// slot (memory touched in order) and a sweep drops the oldest entries from the front. The
/// index is brought up to date only when it is read: by lookups and removals, which only
/// responses that find no query and queries that find no response make. (Indexed at each
/// insert, the bucket's word missed the cache as the dictionary did.)
///
/// Memory is what the table is judged by too (peak RSS must not grow with the capture): an
/// entry is 24 bytes (a time of 32 bits after `base`, a link of 32 bits), the ring grows by
/// half, not double, and there is a bucket of 4 bytes per two slots: 24–38 bytes an entry.
/// The dictionary took 24 bytes per slot at 4/3 to 8/3 slots an entry (a load of at most 3/4,
/// doubling); a first ring with 32-byte entries, doubling, and 8-byte buckets, took the
/// bench's DNS capture 2 MB past it.
///
/// Bounded: at `maxEntries` the oldest entry makes room (the dictionary grew with the keys
/// seen between sweeps, without a bound when the packet clock stands still). A copy of a
/// response half a million responses old is then an "unmatched response".
final class RecentResponses {
    private struct Entry {
        var hash: UInt64
        var fingerprint: Int
        /// Nanoseconds of the packet clock after `base`; or `removed`; or `wide`: the time
        /// did not fit (far out of order), and is in `wideTimes`.
        var time: UInt32
        /// The low 32 bits of the sequence number of the next older entry in the same bucket
        /// (its own: none).
        var older: UInt32
    }

    private static let removed = UInt32.max
    private static let wide = UInt32.max - 1
    /// Of a first entry's time, what is left below it for entries out of order (~2.1 s).
    private static let slack: Int64 = 1 << 31

    // Exclusivity unchecked: used on the plugin's one thread, never through overlapping accesses.
    @exclusivity(unchecked) private var ring: UnsafeMutablePointer<Entry>
    @exclusivity(unchecked) private var capacity: Int
    private let maxEntries: Int
    /// Per bucket, the low 32 bits of its newest entry's sequence number (see `newest`).
    @exclusivity(unchecked) private var buckets: UnsafeMutablePointer<UInt32>
    /// A power of two, at least half the capacity; the hash's top bits choose the bucket.
    @exclusivity(unchecked) private var bucketCount: Int
    /// Sequence numbers of the oldest entry kept and of the next one: entry `s` is in slot
    /// `s % capacity` while `first <= s < end` (`firstSlot`, `endSlot` are theirs).
    @exclusivity(unchecked) private var first = 0
    @exclusivity(unchecked) private var end = 0
    @exclusivity(unchecked) private var firstSlot = 0
    @exclusivity(unchecked) private var endSlot = 0
    /// Entries below this sequence number are in the index (those of `first..<end` above it
    /// are not yet).
    @exclusivity(unchecked) private var indexed = 0
    /// What an entry's `time` counts from, in nanoseconds: moved to the sweep's cut-off at
    /// each sweep, so that what a sweep keeps, and the next second's entries, fit in 32 bits.
    @exclusivity(unchecked) private var base: Int64 = 0
    /// The times of `wide` entries, by sequence number (empty unless times jump by seconds).
    @exclusivity(unchecked) private var wideTimes: [Int: Int64] = [:]

    /// 2^19 entries: 12 MB, two seconds at 250k responses a second (a sweep's interval
    /// and the window).
    static let defaultMaxEntries = 1 << 19

    init(capacity: Int = 1024, maxEntries: Int = RecentResponses.defaultMaxEntries) {
        precondition(capacity >= 2 && maxEntries >= capacity, "room for two entries at least")
        self.capacity = capacity
        self.maxEntries = maxEntries
        ring = .allocate(capacity: capacity)
        bucketCount = RecentResponses.bucketCount(for: capacity)
        buckets = .allocate(capacity: bucketCount)
        resetIndex()
    }

    deinit {
        ring.deallocate()
        buckets.deallocate()
    }

    private static func bucketCount(for capacity: Int) -> Int {
        max(2, 1 << (Int.bitWidth - (capacity / 2 - 1).leadingZeroBitCount))
    }

    /// No entry at all (removed ones count until swept).
    var isEmpty: Bool { first == end }

    /// Entries kept, removed ones included until swept.
    var count: Int { end - first }

    /// Entries whose time is kept aside, in `wideTimes` (for tests).
    var timesKeptAside: Int { wideTimes.count }

    /// What memory grows with (for tests): the bytes of an entry's slot.
    static var bytesPerSlot: Int { MemoryLayout<Entry>.stride }

    /// The ring's slot after `slot`.
    @inline(__always) private func slot(after slot: Int) -> Int {
        slot + 1 == capacity ? 0 : slot + 1
    }

    @inline(__always) private func bucket(_ hash: UInt64) -> Int {
        // The hash is already seeded and mixed: its top bits, as the index.
        Int(truncatingIfNeeded: hash >> UInt64(64 - bucketCount.trailingZeroBitCount))
    }

    /// Every bucket empty: each one names `first - 1`, below what is kept; the index is
    /// made again when next read.
    private func resetIndex() {
        buckets.initialize(repeating: UInt32(truncatingIfNeeded: first &- 1), count: bucketCount)
        indexed = first
    }

    /// Adds an entry, which hides any older one with the same hash.
    func insert(hash: UInt64, fingerprint: Int, time: Timestamp) {
        if end - first == capacity {
            if capacity < maxEntries { grow() } else { dropOldest() }
        }
        let t = time.nanoseconds
        if first == end { base = t &- RecentResponses.slack }
        let offset = t &- base
        var stored = RecentResponses.wide
        if offset >= 0 && offset < Int64(RecentResponses.wide) {
            stored = UInt32(truncatingIfNeeded: offset)
        } else {
            wideTimes[end] = t
        }
        (ring + endSlot).initialize(to: Entry(hash: hash, fingerprint: fingerprint, time: stored,
                                              older: UInt32(truncatingIfNeeded: end)))
        end += 1
        endSlot = slot(after: endSlot)
    }

    /// Chains the entries not yet indexed into their buckets, oldest first (so that each
    /// bucket's chain runs from its newest entry to older ones).
    private func catchUp() {
        var s = max(indexed, first)
        var slot = s % capacity
        while s < end {
            let b = bucket(ring[slot].hash)
            ring[slot].older = buckets[b]
            buckets[b] = UInt32(truncatingIfNeeded: s)
            s += 1
            slot = self.slot(after: slot)
        }
        indexed = end
    }

    /// The sequence number `low` names, counted back from `from` (links and buckets keep 32
    /// bits; fewer than 2^32 entries are ever kept). Below `first`: none. A bucket untouched
    /// for 2^32 entries may name a kept entry of another bucket: its hash differs, and the
    /// walk goes on to older entries, so answers stay right.
    @inline(__always) private static func sequence(_ low: UInt32, before from: Int) -> Int {
        from - Int(UInt32(truncatingIfNeeded: from) &- low)
    }

    /// The sequence number and slot of the newest entry with `hash`, removed or not.
    private func newest(_ hash: UInt64) -> (sequence: Int, slot: Int)? {
        if first == end { return nil }
        if indexed < end { catchUp() }
        var s = RecentResponses.sequence(buckets[bucket(hash)], before: end - 1)
        while s >= first {
            let slot = s % capacity
            let entry = ring[slot]
            if entry.hash == hash { return (s, slot) }
            let older = RecentResponses.sequence(entry.older, before: s)
            if older == s { break }
            s = older
        }
        return nil
    }

    /// The fingerprint kept with `hash`, unless there is none or it was removed.
    func fingerprint(of hash: UInt64) -> Int? {
        guard let (_, slot) = newest(hash) else { return nil }
        let entry = ring[slot]
        return entry.time == RecentResponses.removed ? nil : entry.fingerprint
    }

    /// Removes what is kept with `hash`.
    func remove(_ hash: UInt64) {
        guard let (s, slot) = newest(hash) else { return }
        if ring[slot].time == RecentResponses.wide { wideTimes[s] = nil }
        ring[slot].time = RecentResponses.removed
    }

    @inline(__always) private func time(of entry: Entry, _ s: Int) -> Int64 {
        entry.time == RecentResponses.wide ? wideTimes[s]! : base &+ Int64(entry.time)
    }

    /// Removes the entries older than `window` at `now` (by their own times, which may be out
    /// of order: the oldest go from the front, any others stale behind them are marked
    /// removed), and counts the times kept from the cut-off.
    func expire(now: Timestamp, window: TimeSpan) {
        // Gone: `now - time > window`, that is a time below the cut-off.
        let cutoff = now.nanoseconds &- window.nanoseconds
        while first < end {
            let entry = ring[firstSlot]
            if entry.time != RecentResponses.removed, time(of: entry, first) >= cutoff { break }
            dropOldest()
        }
        if first == end {
            wideTimes.removeAll()
            return
        }
        // Every entry kept is at or after the cut-off: counted from there, it shrinks. A
        // clock gone back (a cut-off before `base`) leaves `base` and those that fit alone.
        let shift = cutoff &- base
        let newBase = shift > 0 ? cutoff : base
        var s = first, slot = firstSlot
        while s < end {
            let stored = ring[slot].time
            if stored < RecentResponses.wide {
                if shift > 0 {
                    if Int64(stored) < shift {
                        ring[slot].time = RecentResponses.removed
                    } else {
                        ring[slot].time = stored &- UInt32(truncatingIfNeeded: shift)
                    }
                }
            } else if stored == RecentResponses.wide {
                let t = wideTimes[s]!
                if t < cutoff {
                    ring[slot].time = RecentResponses.removed
                    wideTimes[s] = nil
                } else if case let offset = t &- newBase, offset >= 0 && offset < Int64(RecentResponses.wide) {
                    ring[slot].time = UInt32(truncatingIfNeeded: offset)
                    wideTimes[s] = nil
                }
            }
            s += 1
            slot = self.slot(after: slot)
        }
        base = newBase
    }

    /// Drops the entry at the front (what is kept aside of it too).
    private func dropOldest() {
        if ring[firstSlot].time == RecentResponses.wide { wideTimes[first] = nil }
        first += 1
        firstSlot = slot(after: firstSlot)
    }

    func removeAll() {
        first = end
        firstSlot = endSlot
        wideTimes.removeAll()
    }

    /// Half as much room again, the entries at the same sequence numbers. The index holds
    /// sequence numbers, not slots: it stays, unless the buckets grow too.
    private func grow() {
        let oldRing = ring, oldCapacity = capacity
        capacity = min(maxEntries, oldCapacity + oldCapacity / 2)
        ring = .allocate(capacity: capacity)
        var s = first, oldSlot = firstSlot
        firstSlot = first % capacity
        var slot = firstSlot
        while s < end {
            (ring + slot).initialize(to: oldRing[oldSlot])
            s += 1
            oldSlot += 1
            if oldSlot == oldCapacity { oldSlot = 0 }
            slot = self.slot(after: slot)
        }
        endSlot = slot
        oldRing.deallocate()
        let wanted = RecentResponses.bucketCount(for: capacity)
        if wanted != bucketCount {
            buckets.deallocate()
            bucketCount = wanted
            buckets = .allocate(capacity: bucketCount)
            resetIndex()
        }
    }
}
