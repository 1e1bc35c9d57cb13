/// Which worker of a parallel replay owns each flow.
///
/// Every worker sees every packet and keeps the same table, so all agree without talking:
/// flows are dealt round-robin in order of first appearance (a hash would put the four
/// connections of a benchmark on one worker as often as not). A flow is forgotten once it
/// has been idle longer than any plugin keeps state for it, at the clock sweeps that
/// expire that state, so a flow that comes back later finds no state anywhere, as it would
/// with one sniffer, and may go to another worker.
final class FlowSharding {
    let worker: Int
    let workers: Int
    private let tcpIdleLimit: TimeSpan
    private let udpIdleLimit: TimeSpan

    private struct Key: Hashable {
        let flow: FlowKey
        let transport: Transport
        var folded: UInt64 { Endpoint.foldedHash(flow.low, flow.high, vlans: flow.vlans) ^ (transport == .tcp ? 0 : 1) }
        func hash(into hasher: inout Hasher) { hasher.combine(folded) }
        func _rawHashValue(seed: Int) -> Int { Endpoint.tableHash(folded, seed: seed) }
    }
    /// A class: its `lastSeen` is updated in place for every packet, through the table or the
    /// cache, without writing a dictionary entry back.
    private final class Owner {
        let worker: Int
        var lastSeen: Timestamp
        init(worker: Int, lastSeen: Timestamp) {
            self.worker = worker
            self.lastSeen = lastSeen
        }
    }
    @exclusivity(unchecked) private var owners: [Key: Owner] = [:]
    @exclusivity(unchecked) private var nextWorker = 0
    /// Every worker looks every packet up: the `Dictionary` (SipHash, a key holding an array,
    /// the entry written back) cost ~770 instructions a packet per worker before this cache.
    @exclusivity(unchecked) private var recent = RecentFlows<Owner>()

    init(worker: Int, workers: Int, tcpIdleLimit: TimeSpan, udpIdleLimit: TimeSpan) {
        self.worker = worker
        self.workers = workers
        self.tcpIdleLimit = tcpIdleLimit
        self.udpIdleLimit = udpIdleLimit
    }

    /// Notes that the packet's flow was seen at `now` and says whether this worker owns it.
    func owns(_ packet: DecodedPacket, now: Timestamp) -> Bool {
        let (low, high) = packet.source < packet.destination ? (packet.source, packet.destination)
                                                             : (packet.destination, packet.source)
        let untagged = packet.vlans.isEmpty
        let folded = Endpoint.foldedHash(low, high, vlans: VLANTags()) ^ (packet.transport == .tcp ? 0 : 1)
        if untagged, let hit = recent.lookup(folded: folded, low, high) {
            return hit._withUnsafeGuaranteedRef { owner in
                owner.lastSeen = now
                return owner.worker == worker
            }
        }
        let key = Key(flow: FlowKey(packet.source, packet.destination, vlans: packet.vlans), transport: packet.transport)
        let owner: Owner
        if let known = owners[key] {
            owner = known
            owner.lastSeen = now
        } else {
            owner = Owner(worker: nextWorker, lastSeen: now)
            nextWorker = (nextWorker + 1) % workers
            owners[key] = owner
        }
        if untagged { recent.remember(folded: folded, low, high, owner) }
        return owner.worker == worker
    }

    /// Forgets the flows of `transport` idle for longer than every plugin keeps their state.
    /// Called right after the sweep that expired that state, on the same clock.
    func forgetIdle(_ transport: Transport, now: Timestamp) {
        let limit = transport == .tcp ? tcpIdleLimit : udpIdleLimit
        let idle = owners.compactMap { $0.key.transport == transport && now - $0.value.lastSeen > limit ? $0.key : nil }
        for key in idle { owners.removeValue(forKey: key) }
        if !idle.isEmpty { recent.forgetAll() }  // no forgotten flow stays cached
    }
}
