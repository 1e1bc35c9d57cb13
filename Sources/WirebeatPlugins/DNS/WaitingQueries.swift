/// The UDP queries waiting for their response, by key: what `DNSPlugin` pairs responses
/// with. A table of its own instead of a `Dictionary`: every query is stored and every
/// response removes one, and the dictionary's insert, probe and delete cost ~340
/// instructions a pair and ~4% of the DNS bench's cycles. Here the key's hash is the one
/// computed when the key was made (`UDPKey.hash`, seeded per plugin), the slots are probed
/// linearly, and a removal shifts the entries after it back (no tombstones, so a table with
/// as many insertions as removals never fills up with them).
///
/// Iteration order is the slots' order: callers that publish sort by `DNSObserved.serial`.
final class WaitingQueries {
    typealias Key = DNSPlugin.UDPKey

    // Parallel arrays in raw memory: keys are plain values; a slot is occupied when its query
    // is not nil. One thread's (the plugin's): exclusivity unchecked.
    @exclusivity(unchecked) private var keys: UnsafeMutablePointer<Key>
    @exclusivity(unchecked) private var queries: UnsafeMutablePointer<DNSObserved?>
    @exclusivity(unchecked) private var mask: Int
    @exclusivity(unchecked) private(set) var count = 0

    private static let initialCapacity = 64

    init() {
        (keys, queries, mask) = WaitingQueries.allocate(WaitingQueries.initialCapacity)
    }

    deinit {
        queries.deinitialize(count: mask + 1)
        queries.deallocate()
        keys.deallocate()
    }

    private static func allocate(_ capacity: Int) -> (UnsafeMutablePointer<Key>, UnsafeMutablePointer<DNSObserved?>, Int) {
        let keys = UnsafeMutablePointer<Key>.allocate(capacity: capacity)
        let queries = UnsafeMutablePointer<DNSObserved?>.allocate(capacity: capacity)
        queries.initialize(repeating: nil, count: capacity)
        return (keys, queries, capacity - 1)
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// The slot of `key`, or of the free slot where it would go.
    @inline(__always) private func slot(of key: Key) -> (index: Int, found: Bool) {
        var i = home(key.hash)
        while queries[i] != nil {
            if keys[i] == key { return (i, true) }
            i = (i &+ 1) & mask
        }
        return (i, false)
    }

    /// Stores `query` under `key`; returns the query that was there, if any.
    func updateValue(_ query: consuming DNSObserved, forKey key: Key) -> DNSObserved? {
        let (i, found) = slot(of: key)
        if found {
            let old = queries[i].take()
            queries[i] = consume query   // moved in: no retain here and release at the end
            return old
        }
        keys[i] = key
        queries[i] = consume query
        count += 1
        // At most half full: probes stay short.
        if count * 2 > mask + 1 { grow() }
        return nil
    }

    /// Takes the query stored under `key` out of the table.
    @discardableResult
    func removeValue(forKey key: Key) -> DNSObserved? {
        let (found, isThere) = slot(of: key)
        guard isThere else { return nil }
        let query = queries[found].take()
        count -= 1
        // Backward shift: each entry after the hole that may live there (its home slot is not
        // between the hole and itself, cyclically) moves into it, and leaves a hole of its own.
        var hole = found
        var j = found
        while true {
            j = (j &+ 1) & mask
            guard queries[j] != nil else { break }
            let h = home(keys[j].hash)
            // The entry at `j` stays if its home is in (hole, j], cyclically.
            let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if stays { continue }
            keys[hole] = keys[j]
            queries[hole] = queries[j].take()
            hole = j
        }
        return query
    }

    /// Every waiting query with its key (slot order).
    func forEach(_ body: (Key, DNSObserved) -> Void) {
        for i in 0...mask {
            if let query = queries[i] { body(keys[i], query) }
        }
    }

    func removeAll() {
        for i in 0...mask { queries[i] = nil }
        count = 0
    }

    private func grow() {
        let (oldKeys, oldQueries, oldMask) = (keys, queries, mask)
        (keys, queries, mask) = WaitingQueries.allocate((oldMask + 1) * 2)
        for i in 0...oldMask {
            guard let query = oldQueries[i].take() else { continue }
            let (j, _) = slot(of: oldKeys[i])
            keys[j] = oldKeys[i]
            queries[j] = query
        }
        oldQueries.deinitialize(count: oldMask + 1)
        oldQueries.deallocate()
        oldKeys.deallocate()
    }
}
