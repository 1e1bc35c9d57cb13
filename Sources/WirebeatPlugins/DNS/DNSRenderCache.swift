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

    /// A cache of shapes (see "Shapes" below): its keys are pairs with the question's name
    /// masked, and its text has a marker where that name goes.
    let masksQuestionName: Bool

    init(seed: UInt64 = UInt64.random(in: .min ... .max), fingerprintSeed: UInt64 = UInt64.random(in: .min ... .max),
         masksQuestionName: Bool = false) {
        self.masksQuestionName = masksQuestionName
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
    /// writer), with `id` in its place (and, in a cache of shapes, `name`, the question's
    /// name as the writers print it, where it goes).
    func write(_ probe: Probe, id: UInt16, name: UnsafeBufferPointer<UInt8> = .init(start: nil, count: 0),
               into out: inout JSONOutput) {
        writeField(0, probe, id: id, name: name, into: &out)
        out.nextValue("method")
        writeField(1, probe, id: id, name: name, into: &out)
        guard slots[probe.slot].hasQuestion else { return }
        out.nextValue("query")
        writeField(2, probe, id: id, name: name, into: &out)
        out.nextValue("resource")
        writeField(3, probe, id: id, name: name, into: &out)
    }

    /// Writes value `number` of a hit into a template's line (`DNSEvents.flowHoles`: 0 `dns`,
    /// 1 `method`, 2 `query`, 3 `resource`), as `write` does.
    func writeField<Out: DNSJSONOutput>(_ number: Int, _ probe: Probe, id: UInt16, name: UnsafeBufferPointer<UInt8>,
                                        into out: inout Out) {
        // Read in place: a copy of the slot for each of a line's four values cost more than they.
        let slot = slots + probe.slot
        let p = text(of: probe)
        let beforeID = slot.pointee.beforeID, method = beforeID + slot.pointee.afterID
        switch number {
        case 0:
            append(UnsafeBufferPointer(start: p, count: beforeID), name: name, into: &out)
            out.writeInt(Int64(id))
            append(UnsafeBufferPointer(start: p + beforeID, count: slot.pointee.afterID), name: name, into: &out)
        case 1: append(UnsafeBufferPointer(start: p + method, count: slot.pointee.method), name: name, into: &out)
        case 2:
            append(UnsafeBufferPointer(start: p + method + slot.pointee.method, count: slot.pointee.query), name: name, into: &out)
        default:
            let resource = method + slot.pointee.method + slot.pointee.query
            append(UnsafeBufferPointer(start: p + resource, count: slot.pointee.resource), name: name, into: &out)
        }
    }

    /// Of a hit in a cache of shapes: the holes of its event's line in a template, a stored
    /// pair's (`DNSAnswerTemplates.holes`: its times and its ID's digits) and the question's
    /// name (as long as `nameCount`, its text) at each marker of the `dns`, `query` and
    /// `resource` values.
    func shapeHoles(_ probe: Probe, id: UInt16, nameCount: Int) -> [EventTemplate.Hole] {
        let slot = slots[probe.slot]
        let p = text(of: probe)
        var holes: [EventTemplate.Hole] = []
        // The markers of `count` bytes of text at `at`, as holes of `field` from `written` on
        // in its value (each marker there becomes the name); returns where the text ends.
        func names(_ field: String, at: Int, count: Int, written: Int) -> Int {
            var out = written
            for k in at..<(at + count) {
                if p[k] == DNSRenderCache.nameMarker {
                    holes.append(EventTemplate.Hole(field, part: out..<(out + nameCount), .text))
                    out += nameCount
                } else {
                    out += 1
                }
            }
            return out
        }
        let idAt = names("dns", at: 0, count: slot.beforeID, written: 0)
        holes += DNSAnswerTemplates.holes(idOffset: idAt, id: id)
        _ = names("dns", at: slot.beforeID, count: slot.afterID, written: idAt + DNSAnswerTemplates.digits(id))
        let method = slot.beforeID + slot.afterID
        _ = names("method", at: method, count: slot.method, written: 0)
        guard slot.hasQuestion else { return holes }
        _ = names("query", at: method + slot.method, count: slot.query, written: 0)
        _ = names("resource", at: method + slot.method + slot.query, count: slot.resource, written: 0)
        return holes
    }

    /// Where a hit's text starts in its slot (after its key).
    @inline(__always) private func text(of probe: Probe) -> UnsafePointer<UInt8> {
        let slot = slots + probe.slot
        return UnsafePointer(memory + probe.slot * DNSRenderCache.slotBytes + max(slot.pointee.queryCount - 2, 0)
                             + max(slot.pointee.responseCount - 2, 0))
    }

    /// Stored text, with `name` for each marker in a cache of shapes.
    @inline(__always) private func append<Out: DNSTextOutput>(_ text: UnsafeBufferPointer<UInt8>, name: UnsafeBufferPointer<UInt8>,
                                                             into out: inout Out) {
        guard masksQuestionName else { return out.append(text) }
        var rest = text
        while let base = rest.baseAddress, !rest.isEmpty {
            guard let marker = memchr(base, Int32(DNSRenderCache.nameMarker), rest.count) else { return out.append(rest) }
            let k = UnsafeRawPointer(marker) - UnsafeRawPointer(base)
            out.append(UnsafeBufferPointer(start: base, count: k))
            out.append(name)
            rest = UnsafeBufferPointer(start: base + k + 1, count: rest.count - k - 1)
        }
    }

    /// Of a hit whose stored pair has a response: that response's fingerprint with `id`,
    /// which is the fingerprint of the response looked up (`DNSPlugin.fingerprint`): the same
    /// length and bytes after the ID. Nil otherwise.
    func responseFingerprint(_ probe: Probe, id: UInt16) -> Int? {
        guard probe.hit, !masksQuestionName, slots[probe.slot].responseCount > 0 else { return nil }
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

    // MARK: Shapes (pairs that differ but in the question's name)

    // Traffic whose names never repeat (a random-subdomain flood, a DGA, a lookup of hashed
    // or numbered names) still gives its pairs one shape: the same bytes but the ID and the
    // name asked, the same records. A second cache (`masksQuestionName`) keys pairs by their
    // bytes with the content of the question's name masked (its label lengths kept, so
    // every offset and pointer is the same), and stores their text with `nameMarker` where
    // the name goes; a hit writes the stored text with the event's own name there.
    //
    // Exact by construction: a shape is stored only when its text, written again from the
    // same pair with every byte of the name's labels changed, differs from the first in
    // nothing but whole copies of the name at the markers (`marked`). A name whose text
    // shows up any other way (a pointer to one of its suffixes, say) is seen there and the
    // shape is not stored. Only plain names (letters, digits, hyphens: each byte printed as
    // it is) on both sides, the response's the same bytes as the query's.

    /// Marks where the question's name goes in a shape's text (JSON text has no raw NUL).
    static let nameMarker: UInt8 = 0

    /// Writes the key of the pair's shape into `key` (room for both messages): their bytes,
    /// the question's name's label bytes all `a`. False (`key` then undefined) when the pair
    /// may have no shape: the query asks no question, or its name at 12 is not plain (a
    /// pointer, the root, a byte not printed as it is), or the response's is not the same bytes.
    static func shapeKey(query q: UnsafeBufferPointer<UInt8>, response r: UnsafeBufferPointer<UInt8>,
                         into key: UnsafeMutablePointer<UInt8>) -> Bool {
        guard q.count > 13, r.count > 13, q[4] | q[5] != 0, let qb = q.baseAddress, let rb = r.baseAddress else { return false }
        key.update(from: qb, count: q.count)
        var i = 12
        var notPlain: UInt8 = 0
        while qb[i] != 0 {
            let n = Int(qb[i])
            guard n & 0xC0 == 0, i &+ 1 &+ n < q.count else { return false }
            var k = i &+ 1
            while k <= i &+ n {
                notPlain |= DNSName.notPlainBit(qb[k])
                key[k] = UInt8(ascii: "a")
                k &+= 1
            }
            i &+= 1 &+ n
        }
        let length = i &+ 1 &- 12
        guard length > 1, notPlain == 0, r.count >= 12 &+ length, memcmp(qb + 12, rb + 12, length) == 0 else { return false }
        let responseKey = key + q.count
        responseKey.update(from: rb, count: r.count)
        (responseKey + 12).update(from: key + 12, count: length)  // the same name, masked
        return true
    }

    /// The text of the plain name at 12 of `m` (`shapeKey` checked it) into `out` (room for
    /// its length), as `DNSName.write` prints it: its labels, dots between; returns its length.
    static func plainNameText(_ m: UnsafeBufferPointer<UInt8>, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var end = 12
        while m[end] != 0 { end &+= 1 &+ Int(m[end]) }
        let count = end &- 13
        out.update(from: m.baseAddress! + 13, count: count)
        var j = 12 &+ 1 &+ Int(m[12])
        while j < end {
            out[j &- 13] = UInt8(ascii: ".")
            j &+= 1 &+ Int(m[j])
        }
        return count
    }

    /// The same pair with another name of the same shape: every label byte of the (plain)
    /// name at 12 changed (`a` and `b` are plain, and neither is the other).
    static func otherName(_ m: [UInt8]) -> [UInt8] {
        var out = m
        var i = 12
        while out[i] != 0 {
            let n = Int(out[i])
            for k in (i + 1)...(i + n) { out[k] = out[k] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a") }
            i += 1 + n
        }
        return out
    }

    /// A value as written for a pair (`a`) and for the same pair with another name (`b`), its
    /// name's text `nameA` and `nameB` (of one length): `a` with a marker for each copy of
    /// the name, if that is all that differs; nil otherwise.
    static func marked(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>, nameA: [UInt8], nameB: [UInt8]) -> [UInt8]? {
        guard a.count == b.count, nameA.count == nameB.count, !a.contains(nameMarker) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(a.count)
        var i = a.startIndex, j = b.startIndex
        while i < a.endIndex {
            if a[i] == b[j] {
                out.append(a[i])
                i += 1
                j += 1
                continue
            }
            // A difference starts a copy of the name (its first byte is a label's: it differs).
            guard a.endIndex - i >= nameA.count, a[i..<(i + nameA.count)].elementsEqual(nameA),
                  b[j..<(j + nameB.count)].elementsEqual(nameB) else { return nil }
            out.append(nameMarker)
            i += nameA.count
            j += nameB.count
        }
        return out
    }

    /// The four values of a pair, as the writers make them (`DNSEvents.shapeValues`).
    struct Values {
        var dns: [UInt8]
        /// Where the ID's digits are in `dns`.
        var id: Range<Int>
        var method: [UInt8]
        var query: [UInt8]
        var resource: [UInt8]
        /// The question's name as the writers print it.
        var name: [UInt8]
    }

    /// Stores a pair's shape (`probe` found it the second time), given its values written
    /// from it (`a`) and from it with another name (`b`), if they differ only by the name.
    /// `query` and `response`: the pair's key (`shapeKey`).
    func storeShape(_ probe: Probe, query: UnsafeBufferPointer<UInt8>, response: UnsafeBufferPointer<UInt8>, flags: UInt8,
                    _ a: Values, _ b: Values, rcodeIsZero: Bool) {
        guard masksQuestionName, probe.store, a.id == b.id,
              let beforeID = DNSRenderCache.marked(a.dns[..<a.id.lowerBound], b.dns[..<b.id.lowerBound], nameA: a.name, nameB: b.name),
              let afterID = DNSRenderCache.marked(a.dns[a.id.upperBound...], b.dns[b.id.upperBound...], nameA: a.name, nameB: b.name),
              let method = DNSRenderCache.marked(a.method[...], b.method[...], nameA: a.name, nameB: b.name),
              let queryText = DNSRenderCache.marked(a.query[...], b.query[...], nameA: a.name, nameB: b.name),
              let resource = DNSRenderCache.marked(a.resource[...], b.resource[...], nameA: a.name, nameB: b.name)
        else { return }
        begin(probe, query: query, response: response, flags: flags, faultlessAnswer: true, rcodeIsZero: rcodeIsZero)
        beforeID.withUnsafeBufferPointer { add(.beforeID, $0) }
        afterID.withUnsafeBufferPointer { add(.afterID, $0) }
        method.withUnsafeBufferPointer { add(.method, $0) }
        queryText.withUnsafeBufferPointer { add(.query, $0) }
        resource.withUnsafeBufferPointer { add(.resource, $0) }
        finish()
    }

    // MARK: Keys

    @inline(__always) private static func sameAfterID(_ stored: UnsafePointer<UInt8>, _ m: UnsafeBufferPointer<UInt8>) -> Bool {
        guard m.count > 2, let base = m.baseAddress else { return true }
        return memcmp(stored, base + 2, m.count - 2) == 0
    }
}
