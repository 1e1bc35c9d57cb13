import Testing
@testable import WirebeatPlugins
import WirebeatCore

/// `RecentResponses` against the dictionary it stands for, on random operations: inserts
/// that replace, removals, sweeps with times that go back, and a table that grows.
struct RecentResponsesTests {
    /// A seeded generator, so that a failure can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ z >> 30) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ z >> 27) &* 0x94D0_49BB_1331_11EB
            return z ^ z >> 31
        }
    }

    /// With a window of 50 ns times stay close; with one of a second and jumps of seconds
    /// (forward and back), times leave the 32 bits counted from the ring's base and are kept
    /// aside, then come back into them at a sweep.
    @Test(arguments: [(1, 50, 0), (2, 50, 0), (3, 50, 0), (4, 50, 0),
                      (5, 1_000_000_000, 7_000_000_000), (6, 1_000_000_000, 3_000_000_000)])
    func behavesAsADictionary(seed: UInt64, window: Int64, jump: Int64) {
        var rng = SplitMix(state: seed)
        let table = RecentResponses(capacity: 4)
        var model: [UInt64: (time: Int64, fingerprint: Int)] = [:]
        // Few distinct hashes, several of them with the same top bits (the same bucket).
        let hashes: [UInt64] = (0..<24).map { i in
            i % 3 == 0 ? UInt64(i) : UInt64(i) << 58 | UInt64.random(in: 0 ... 1 << 20, using: &rng)
        }
        var clock: Int64 = 1_000_000_000
        var mostKept = 0, mostAside = 0
        for step in 0..<20_000 {
            let hash = hashes.randomElement(using: &rng)!
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<55:
                // Mostly forward, sometimes a little back (a capture's times out of order).
                clock += Int64.random(in: -3...6, using: &rng) * (window / 50)
                if jump > 0 && Int.random(in: 0..<50, using: &rng) == 0 { clock += Int64.random(in: -jump...jump, using: &rng) }
                let fingerprint = Int.random(in: 0..<4, using: &rng)
                table.insert(hash: hash, fingerprint: fingerprint, time: Timestamp(nanoseconds: clock))
                model[hash] = (clock, fingerprint)
                mostKept = max(mostKept, table.count)
                mostAside = max(mostAside, table.timesKeptAside)
            case 55..<65:
                table.remove(hash)
                model[hash] = nil
            case 65..<70:
                // Sometimes behind the last insert: a clock gone back leaves the base alone.
                let now = clock + Int64.random(in: -5...20, using: &rng) * (window / 50)
                table.expire(now: Timestamp(nanoseconds: now), window: TimeSpan(nanoseconds: window))
                model = model.filter { now - $0.value.time <= window }
            case 70..<71:
                table.removeAll()
                model.removeAll()
            default:
                #expect(table.fingerprint(of: hash) == model[hash]?.fingerprint, "step \(step)")
            }
        }
        for hash in hashes { #expect(table.fingerprint(of: hash) == model[hash]?.fingerprint) }
        // It grew well past its first four slots, and kept its entries through that.
        #expect(mostKept > 16)
        // With jumps, some times were kept aside (and the others were not).
        #expect(jump == 0 ? mostAside == 0 : mostAside > 0 && mostAside < mostKept)
    }

    @Test func sweepsDropTheOldestFromTheFront() {
        let table = RecentResponses(capacity: 8)
        for i in 0..<6 { table.insert(hash: UInt64(i) << 60, fingerprint: i, time: Timestamp(nanoseconds: Int64(i * 10))) }
        table.expire(now: Timestamp(nanoseconds: 35), window: TimeSpan(nanoseconds: 10))
        #expect(table.count == 3)   // 0, 10 and 20 go; 30, 40 and 50 (ahead of now) stay
        #expect(table.fingerprint(of: 3 << 60) == 3)
        #expect(table.fingerprint(of: 2 << 60) == nil)
    }

    /// At its bound the oldest entry makes room, whatever the clock (here it stands still).
    @Test func atItsBoundTheOldestMakesRoom() {
        let table = RecentResponses(capacity: 4, maxEntries: 10)
        let time = Timestamp(nanoseconds: 5_000_000_000)
        for i in 0..<25 { table.insert(hash: UInt64(i) << 40 | 7, fingerprint: i, time: time) }
        #expect(table.count == 10)
        for i in 0..<25 { #expect(table.fingerprint(of: UInt64(i) << 40 | 7) == (i >= 15 ? i : nil), "entry \(i)") }
        table.expire(now: time, window: TimeSpan(nanoseconds: 1))
        #expect(table.count == 10)
    }

    /// The entry's size is what peak RSS on a busy DNS capture grows with: 24 bytes (the
    /// dictionary it replaced took 24 per slot, with fewer entries per slot than the ring).
    @Test func anEntryTakes24Bytes() {
        #expect(RecentResponses.bytesPerSlot == 24)
    }
}
