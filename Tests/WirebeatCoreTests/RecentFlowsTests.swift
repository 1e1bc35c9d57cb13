import Testing
@testable import WirebeatCore

@Suite struct RecentFlowsTests {
    final class Owner {
        let n: Int
        init(_ n: Int) { self.n = n }
    }

    /// Flows that differ only in the client port, on one server address, as a load generator
    /// makes them: each is found again while there are no more than the cache holds, whatever
    /// the ports' low bits. (Three of the DNS benchmark's eight had the same five low bits,
    /// and shared a set of two ways when the set was taken from the hash's low bits.)
    @Test func flowsOnOneServerAreAllFoundAgain() {
        let server = Endpoint(ip: IPAddress(v4: 0x7F00_3501), port: 53)
        // The benchmark's eight client ports (38619, 47803, 33691: the same low five bits),
        // then runs of ports 32 apart and consecutive ones.
        let portSets: [[UInt16]] = [
            [46910, 39581, 54795, 39499, 38619, 47803, 33691, 48737],
            (0..<8).map { UInt16(40000 + 32 * $0) },
            (0..<8).map { UInt16(50000 + $0) },
        ]
        for ports in portSets {
            var recent = RecentFlows<Owner>()
            let owners = ports.indices.map { Owner($0) }
            // In the order `FlowSharding` folds them: the lower endpoint first.
            func key(_ port: UInt16) -> (UInt64, Endpoint, Endpoint) {
                let client = Endpoint(ip: server.ip, port: port)
                let (a, b) = server < client ? (server, client) : (client, server)
                return (Endpoint.foldedHash(a, b, vlans: VLANTags()), a, b)
            }
            for (port, owner) in zip(ports, owners) {
                let (folded, a, b) = key(port)
                recent.remember(folded: folded, a, b, owner)
            }
            for (port, owner) in zip(ports, owners) {
                let (folded, a, b) = key(port)
                let hit = recent.lookup(folded: folded, a, b)
                #expect(hit?.takeUnretainedValue() === owner, "port \(port) of \(ports) not found again")
            }
        }
    }
}
