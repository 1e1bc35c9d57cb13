import WirebeatCore

/// Event templates (`EventTemplate`) of answers from the render cache, by stored pair and
/// flow: an answer whose pair the cache holds (`DNSEvents.cachedAnswer`) differs from the
/// flow's previous answer of that pair only in its times and its ID, so from the second
/// one on it is published as the template and those values, and an output that writes lines
/// builds no event for it.
///
/// What else an answer's event holds comes from the pair's bytes (which a hit matched), the
/// flow (its identity is the template's: `EventTemplate.flowIdentity`) and the plugin's settings (fixed;
/// `send_request` puts the query's text, ID included, in the event: no templates then).
///
/// Two-way set-associative, like the render cache: a template is made the second time a pair
/// and flow land in their set, so answers that do not repeat on a flow cost a lookup each.
/// One per plugin, used on its thread.
final class DNSAnswerTemplates {
    private struct Entry {
        var slot = -1
        var generation: UInt32 = 0
        /// The flow's `ConnectionInfo.flowIdentity`; with a template, that template's.
        var flow: ObjectIdentifier?
        var template: EventTemplate?
        /// `template`, reached without a retain and a release (it holds it).
        var ref: Unmanaged<EventTemplate>?
        /// Sightings without a template.
        var seen: UInt32 = 0
    }
    private static let setCount = 256
    /// In raw memory, read for every cached answer: an array read from an object costs a
    /// retain and a release, and a lookup that compares a `ConnectionInfo` (a copy of it)
    /// or runs a closure cost more (12 atomic operations an answer, against the 6 a
    /// template saves, before this layout).
    private let entries: UnsafeMutablePointer<Entry>
    /// Per set, the way used last.
    private let recentWay: UnsafeMutablePointer<UInt8>
    /// Templates made, and answers published through one (for tests).
    private(set) var made = 0
    var used = 0

    init() {
        entries = .allocate(capacity: 2 * DNSAnswerTemplates.setCount)
        entries.initialize(repeating: Entry(), count: 2 * DNSAnswerTemplates.setCount)
        recentWay = .allocate(capacity: DNSAnswerTemplates.setCount)
        recentWay.initialize(repeating: 0, count: DNSAnswerTemplates.setCount)
    }

    deinit {
        entries.deinitialize(count: 2 * DNSAnswerTemplates.setCount)
        entries.deallocate()
        recentWay.deallocate()
    }

    /// The holes of an answer: its times, its duration and its ID's digits in `dns`.
    static func holes(idOffset: Int, id: UInt16) -> [EventTemplate.Hole] {
        [EventTemplate.Hole("@timestamp", .start), EventTemplate.Hole("event.start", .start),
         EventTemplate.Hole("event.end", .end), EventTemplate.Hole("event.duration", .duration),
         EventTemplate.Hole("dns", part: idOffset..<(idOffset + digits(id)), .number)]
    }

    /// The digits of an ID's text.
    static func digits(_ id: UInt16) -> Int { id < 10 ? 1 : id < 100 ? 2 : id < 1_000 ? 3 : id < 10_000 ? 4 : 5 }

    @inline(__always) private static func set(slot: Int, flow: ObjectIdentifier) -> Int {
        let x = (UInt64(UInt(bitPattern: flow)) ^ UInt64(slot) &* 0x9E37_79B9_7F4A_7C15) &* 0xC2B2_AE3D_27D4_EB4F
        return Int(truncatingIfNeeded: x >> 56) & (setCount - 1)
    }

    /// The template of this pair (`DNSRenderCache.pairIdentity`) on this flow, if one was
    /// made (held by the table until its entry is replaced: use it before `saw`).
    @inline(__always) func template(slot: Int, generation: UInt32, flow: ObjectIdentifier) -> Unmanaged<EventTemplate>? {
        let set = DNSAnswerTemplates.set(slot: slot, flow: flow)
        for way in 0..<2 {
            let e = entries + (2 * set + way)
            // The flow is the template's own, which keeps it alive: the same object.
            if e.pointee.slot == slot, e.pointee.generation == generation, e.pointee.flow == flow, let ref = e.pointee.ref {
                recentWay[set] = UInt8(way)
                used &+= 1
                return ref
            }
        }
        return nil
    }

    /// An answer of this pair and flow published as an event (no template found): the
    /// `sightings`th one in its set (the second, unless said) makes the template from it.
    /// `holes`: the template's, called only to make it.
    func saw(_ event: Event, slot: Int, generation: UInt32, holes: () -> [EventTemplate.Hole],
             values: EventTemplate.Values, flow: ObjectIdentifier, sightings: UInt32 = 2) {
        if sight(slot: slot, generation: generation, flow: flow, sightings: sightings) {
            make(event, slot: slot, generation: generation, holes: holes, values: values, flow: flow)
        }
    }

    /// An answer of this pair and flow without a template (`template` found none), however
    /// it is published: true when it is the `sightings`th in its set, whose event is then to
    /// make the template (`make`, before any other call).
    func sight(slot: Int, generation: UInt32, flow: ObjectIdentifier, sightings: UInt32 = 2) -> Bool {
        let set = DNSAnswerTemplates.set(slot: slot, flow: flow)
        for way in 0..<2 {
            let e = entries + (2 * set + way)
            guard e.pointee.slot == slot, e.pointee.generation == generation, e.pointee.flow == flow,
                  e.pointee.template == nil else { continue }
            recentWay[set] = UInt8(way)
            e.pointee.seen &+= 1
            return e.pointee.seen >= sightings
        }
        // First sight: in the way used less recently. (An identity kept with no template
        // may be of a flow that ended; another flow may then get it, and its next answer
        // makes a template of its own event: still that flow's.)
        let way = 1 - Int(recentWay[set])
        entries[2 * set + way] = Entry(slot: slot, generation: generation, flow: flow, template: nil, ref: nil, seen: 1)
        recentWay[set] = UInt8(way)
        return sightings <= 1
    }

    /// Makes the template of the answer `sight` said true for, from its event: nil if the
    /// event does not make one (the entry then counts its sightings again, so that a failing
    /// one is not tried for every answer). Made on this flow's event, so its identity is the
    /// flow's (checked all the same).
    func make(_ event: Event, slot: Int, generation: UInt32, holes: () -> [EventTemplate.Hole],
              values: EventTemplate.Values, flow: ObjectIdentifier) {
        let set = DNSAnswerTemplates.set(slot: slot, flow: flow)
        for way in 0..<2 {
            let e = entries + (2 * set + way)
            guard e.pointee.slot == slot, e.pointee.generation == generation, e.pointee.flow == flow,
                  e.pointee.template == nil else { continue }
            guard let t = EventTemplate(prototype: event, holes: holes(), values: values), t.flowIdentity == flow else {
                e.pointee.seen = 0
                return
            }
            e.pointee.template = t
            e.pointee.ref = Unmanaged.passUnretained(t)
            made &+= 1
            return
        }
    }
}
