import WirebeatCore

/// Event templates (`EventTemplate`) of answers from the render cache, by stored pair and
/// flow: an answer whose pair the cache holds (`DNSEvents.cachedAnswer`) differs from the
/// flow's previous answer of that pair only in its times and its ID, so from the second
/// one on it is published as the template and those values, and an output that writes lines
/// builds no event for it.
///
/// What else an answer's event holds comes from the pair's bytes (which a hit matched), the
/// flow (which the template checks: `EventTemplate.isFor`) and the plugin's settings (fixed;
/// `send_request` puts the query's text, ID included, in the event: no templates then).
///
/// Two-way set-associative, like the render cache: a template is made the second time a pair
/// and flow land in their set, so answers that do not repeat on a flow cost a lookup each.
/// One per plugin, used on its thread.
final class DNSAnswerTemplates {
    private struct Entry {
        var slot = -1
        var generation: UInt32 = 0
        var flowHash: UInt64 = 0
        var template: EventTemplate?
        /// `template`, reached without a retain and a release (it holds it).
        var ref: Unmanaged<EventTemplate>?
    }
    private static let setCount = 256
    private var entries = [Entry](repeating: Entry(), count: 2 * setCount)
    /// Per set, the way used last.
    private var recentWay = [UInt8](repeating: 0, count: setCount)
    /// Templates made, and answers published through one (for tests).
    private(set) var made = 0
    var used = 0

    /// The holes of an answer: its times, its duration and its ID's digits in `dns`.
    static func holes(idOffset: Int, id: UInt16) -> [EventTemplate.Hole] {
        let digits = id < 10 ? 1 : id < 100 ? 2 : id < 1_000 ? 3 : id < 10_000 ? 4 : 5
        return [EventTemplate.Hole("@timestamp", .start), EventTemplate.Hole("event.start", .start),
                EventTemplate.Hole("event.end", .end), EventTemplate.Hole("event.duration", .duration),
                EventTemplate.Hole("dns", part: idOffset..<(idOffset + digits), .number)]
    }

    private static func flowHash(_ connection: ConnectionInfo) -> UInt64 {
        Endpoint.foldedHash(connection.client, connection.server, vlans: connection.vlans)
    }

    private static func set(slot: Int, flowHash: UInt64) -> Int {
        let x = (flowHash ^ UInt64(slot) &* 0x9E37_79B9_7F4A_7C15) &* 0xC2B2_AE3D_27D4_EB4F
        return Int(truncatingIfNeeded: x >> 56) & (setCount - 1)
    }

    /// Calls `body` with the template of this pair (`DNSRenderCache.pairIdentity`) on this
    /// flow, if one was made; false if none was.
    func withTemplate(slot: Int, generation: UInt32, connection: ConnectionInfo, _ body: (EventTemplate) -> Void) -> Bool {
        let hash = DNSAnswerTemplates.flowHash(connection)
        let set = DNSAnswerTemplates.set(slot: slot, flowHash: hash)
        let found: Unmanaged<EventTemplate>? = entries.withUnsafeBufferPointer { e in
            for way in 0..<2 {
                let i = 2 * set + way
                if e[i].slot == slot, e[i].generation == generation, e[i].flowHash == hash, let ref = e[i].ref,
                   ref._withUnsafeGuaranteedRef({ $0.isFor(connection) }) {
                    recentWay[set] = UInt8(way)
                    return ref
                }
            }
            return nil
        }
        guard let found else { return false }
        used &+= 1
        found._withUnsafeGuaranteedRef(body)
        return true
    }

    /// An answer of this pair and flow published as an event (no template found): the
    /// second one in its set makes the template from it.
    func saw(_ event: Event, slot: Int, generation: UInt32, idOffset: Int, id: UInt16, values: EventTemplate.Values,
             connection: ConnectionInfo) {
        let hash = DNSAnswerTemplates.flowHash(connection)
        let set = DNSAnswerTemplates.set(slot: slot, flowHash: hash)
        for way in 0..<2 where entries[2 * set + way].slot == slot && entries[2 * set + way].generation == generation
            && entries[2 * set + way].flowHash == hash && entries[2 * set + way].template == nil {
            // Seen before: the template now (nil if the event does not make one; the entry
            // then stays as it is, and the next answer tries again).
            guard let t = EventTemplate(prototype: event, holes: DNSAnswerTemplates.holes(idOffset: idOffset, id: id),
                                        values: values), t.isFor(connection) else { return }
            entries[2 * set + way].template = t
            entries[2 * set + way].ref = Unmanaged.passUnretained(t)
            recentWay[set] = UInt8(way)
            made &+= 1
            return
        }
        // First sight: in the way used less recently.
        let way = 1 - Int(recentWay[set])
        entries[2 * set + way] = Entry(slot: slot, generation: generation, flowHash: hash, template: nil, ref: nil)
        recentWay[set] = UInt8(way)
    }
}
