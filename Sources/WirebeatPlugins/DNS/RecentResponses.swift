import WirebeatCore

/// Responses paired in the last `DNSPlugin.duplicateWindow`, to recognise a repeated datagram:
/// what a dictionary from a key's 64-bit hash to (time, fingerprint) would do (a later entry
/// replaces an earlier one with the same hash, one can be removed, a sweep drops those older
/// than the window), kept as a ring in arrival order with a chained hash index.
///
/// Why not a `Dictionary`: at tens of thousands of responses a second the table holds tens
/// of thousands of entries, and each insert into a dictionary that size missed the cache in
/// its bitmap, its keys and its values, and each stale entry was hashed out again at the
/// sweep (~4% of the DNS bench's time, in `perf`). Here an insert writes the ring's next slot
/// (memory touched in order) and a sweep drops the oldest entries from the front. The index
/// is brought up to date only when it is read: lookups and removals, which only responses
/// that find no query and queries that find no response make. (Indexed at each insert, the
/// bucket's word missed the cache as the dictionary did.)
final class RecentResponses {
    private struct Entry {
        var hash: UInt64
        var fingerprint: Int
        /// Nanoseconds of the packet clock, or `removed`.
        var time: Int64
        /// Sequence number of the next older entry in the same bucket (below `first`: none).
        var older: Int
    }

    /// Marks an entry that was removed: it still hides the older ones with its hash.
    private static let removed = Int64.min

    // Exclusivity unchecked: used on the plugin's one thread, never through overlapping accesses.
    @exclusivity(unchecked) private var ring: UnsafeMutablePointer<Entry>
    /// Per bucket, the sequence number of its newest entry (-1: none yet).
    @exclusivity(unchecked) private var buckets: UnsafeMutablePointer<Int>
    /// Of the ring and of the buckets: a power of two.
    @exclusivity(unchecked) private var capacity: Int
    /// Sequence numbers of the oldest entry kept and of the next one: entry `s` is in slot
    /// `s & (capacity - 1)` while `first <= s < end`.
    @exclusivity(unchecked) private var first = 0
    @exclusivity(unchecked) private var end = 0
    /// Entries below this sequence number are in the index (those of `first..<end` above it
    /// are not yet).
    @exclusivity(unchecked) private var indexed = 0

    init(capacity: Int = 1024) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "a power of two")
        self.capacity = capacity
        ring = .allocate(capacity: capacity)
        buckets = .allocate(capacity: capacity)
        buckets.initialize(repeating: -1, count: capacity)
    }

    deinit {
        ring.deallocate()
        buckets.deallocate()
    }

    /// No entry at all (removed ones count until swept).
    var isEmpty: Bool { first == end }

    /// Entries kept, removed ones included until swept.
    var count: Int { end - first }

    @inline(__always) private func bucket(_ hash: UInt64) -> Int {
        // The hash is already seeded and mixed: its top bits, as the index.
        Int(truncatingIfNeeded: hash >> UInt64(64 - capacity.trailingZeroBitCount)) & (capacity - 1)
    }

    /// Adds an entry, which hides any older one with the same hash.
    func insert(hash: UInt64, fingerprint: Int, time: Timestamp) {
        if end - first == capacity { grow() }
        (ring + (end & (capacity - 1))).initialize(to: Entry(hash: hash, fingerprint: fingerprint,
                                                             time: time.nanoseconds, older: -1))
        end += 1
    }

    /// Chains the entries not yet indexed into their buckets, oldest first (so that each
    /// bucket's chain runs from its newest entry to older ones).
    private func catchUp() {
        var s = max(indexed, first)
        while s < end {
            let slot = ring + (s & (capacity - 1))
            let b = bucket(slot.pointee.hash)
            slot.pointee.older = buckets[b]
            buckets[b] = s
            s += 1
        }
        indexed = end
    }

    /// The sequence number of the newest entry with `hash`, removed or not.
    private func newest(_ hash: UInt64) -> Int? {
        if indexed < end { catchUp() }
        var s = buckets[bucket(hash)]
        while s >= first {
            let entry = ring[s & (capacity - 1)]
            if entry.hash == hash { return s }
            s = entry.older
        }
        return nil
    }

    /// The fingerprint kept with `hash`, unless there is none or it was removed.
    func fingerprint(of hash: UInt64) -> Int? {
        guard let s = newest(hash) else { return nil }
        let entry = ring[s & (capacity - 1)]
        return entry.time == RecentResponses.removed ? nil : entry.fingerprint
    }

    /// Removes what is kept with `hash`.
    func remove(_ hash: UInt64) {
        if let s = newest(hash) { ring[s & (capacity - 1)].time = RecentResponses.removed }
    }

    /// Removes the entries older than `window` at `now` (by their own times, which may be out
    /// of order: the oldest go from the front, any others stale behind them are marked removed).
    func expire(now: Timestamp, window: TimeSpan) {
        let now = now.nanoseconds, window = window.nanoseconds
        @inline(__always) func gone(_ time: Int64) -> Bool {
            time == RecentResponses.removed || now &- time > window
        }
        while first < end, gone(ring[first & (capacity - 1)].time) { first += 1 }
        var s = first
        while s < end {
            if gone(ring[s & (capacity - 1)].time) { ring[s & (capacity - 1)].time = RecentResponses.removed }
            s += 1
        }
    }

    func removeAll() { first = end }

    /// Twice the room, the entries at the same sequence numbers; the index is made again
    /// when next read.
    private func grow() {
        let oldRing = ring, oldMask = capacity - 1
        capacity *= 2
        ring = .allocate(capacity: capacity)
        for s in first..<end { (ring + (s & (capacity - 1))).initialize(to: oldRing[s & oldMask]) }
        oldRing.deallocate()
        buckets.deallocate()
        buckets = .allocate(capacity: capacity)
        buckets.initialize(repeating: -1, count: capacity)
        indexed = first
    }
}
