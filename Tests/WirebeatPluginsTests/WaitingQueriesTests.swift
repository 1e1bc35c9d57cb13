import Testing
@testable import WirebeatPlugins
import WirebeatCore

/// `WaitingQueries` against the dictionary it stands for, on random operations: stores that
/// replace, removals (each shifting the entries of its cluster back), growth, emptying.
struct WaitingQueriesTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func behavesAsADictionary(seed: UInt64) {
        var rng = RecentResponsesTests.SplitMix(state: seed)
        let h = DNSHarness()
        let context = h.context(.udp)
        let seen = DNSSeen(bytes: DNSBuilder.query(id: 1, "a.example", DNSType.A), time: context.timestamp,
                           flow: context.connection, direction: .original, lossHint: true)
        // Up to 300 keys at once: the table grows from 64 slots, with clusters that wrap.
        let client = IPAddress(v4: 0x0A00_0001), server = Endpoint(ip: IPAddress(v4: 0x0A00_0035), port: 53)
        var keys: [DNSPlugin.UDPKey] = []
        for i in 0..<300 {
            let port = UInt16(40000 + i % 7)
            let vlans: VLANTags = i % 11 == 0 ? [5] : []
            keys.append(DNSPlugin.UDPKey(client: Endpoint(ip: client, port: port), server: server, id: UInt16(i / 7),
                                         vlans: vlans, seed: seed))
        }
        let table = WaitingQueries()
        var model: [DNSPlugin.UDPKey: Int] = [:]
        var serial = 0
        for step in 0..<30_000 {
            // Keys drawn from a window that moves, so the table fills and empties.
            let window = 60 + (step / 3000 % 5) * 60
            let key = keys[Int.random(in: 0..<window, using: &rng)]
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<52:
                serial += 1
                let old = table.updateValue(DNSObserved(copy seen, context: context, serial: serial), forKey: key)
                #expect(old?.serial == model.updateValue(serial, forKey: key), "step \(step)")
            case 52..<97:
                #expect(table.removeValue(forKey: key)?.serial == model.removeValue(forKey: key), "step \(step)")
            case 97..<99:
                var seenHere: [DNSPlugin.UDPKey: Int] = [:]
                table.forEach { k, q in
                    #expect(seenHere.updateValue(q.serial, forKey: k) == nil, "a key twice")
                }
                #expect(seenHere == model, "step \(step)")
            default:
                if step % 7 == 0 {
                    table.removeAll()
                    model.removeAll()
                }
            }
            #expect(table.count == model.count)
        }
        // Every key still finds its query after all the shifting.
        for (key, s) in model { #expect(table.removeValue(forKey: key)?.serial == s) }
        #expect(table.isEmpty)
    }
}
