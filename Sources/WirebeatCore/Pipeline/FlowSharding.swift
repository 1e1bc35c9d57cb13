/// Which worker of a parallel replay owns each flow (kept by the thread that reads the
/// capture and routes its packets).
///
/// Flows are dealt round-robin in order of first appearance (a hash would put the four
/// connections of a benchmark on one worker as often as not). A flow is forgotten once it
/// has been idle longer than any plugin keeps state for it, at the clock sweeps that
/// expire that state, so a flow that comes back later finds no state anywhere, as it would
/// with one sniffer, and may go to another worker.
final class FlowSharding {
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
    /// Every packet is looked up: the `Dictionary` (SipHash, a key holding an array, the
    /// entry written back) cost ~770 instructions a packet before this cache.
    @exclusivity(unchecked) private var recent = RecentFlows<Owner>()

    init(workers: Int, tcpIdleLimit: TimeSpan, udpIdleLimit: TimeSpan) {
        self.workers = workers
        self.tcpIdleLimit = tcpIdleLimit
        self.udpIdleLimit = udpIdleLimit
    }

    /// Notes that the packet's flow was seen at `now` and says which worker owns it.
    func owner(of packet: DecodedPacket, now: Timestamp) -> Int {
        let (low, high) = packet.source < packet.destination ? (packet.source, packet.destination)
                                                             : (packet.destination, packet.source)
        let untagged = packet.vlans.isEmpty
        let folded = Endpoint.foldedHash(low, high, vlans: VLANTags()) ^ (packet.transport == .tcp ? 0 : 1)
        if untagged, let hit = recent.lookup(folded: folded, low, high) {
            return hit._withUnsafeGuaranteedRef { owner in
                owner.lastSeen = now
                return owner.worker
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
        return owner.worker
    }

    /// Forgets the flows of `transport` idle for longer than every plugin keeps their state.
    /// Called at the packets where the workers sweep (the same `SweepSchedule`, on the same
    /// clock), so that a flow is forgotten here when its state expires there.
    func forgetIdle(_ transport: Transport, now: Timestamp) {
        let limit = transport == .tcp ? tcpIdleLimit : udpIdleLimit
        let idle = owners.compactMap { $0.key.transport == transport && now - $0.value.lastSeen > limit ? $0.key : nil }
        for key in idle { owners.removeValue(forKey: key) }
        if !idle.isEmpty { recent.forgetAll() }  // no forgotten flow stays cached
    }
}
