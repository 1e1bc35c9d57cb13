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
        func hash(into hasher: inout Hasher) {
            hasher.combine(Endpoint.foldedHash(flow.low, flow.high, vlans: flow.vlans) ^ (transport == .tcp ? 0 : 1))
        }
    }
    private struct Owner {
        var worker: Int
        var lastSeen: Timestamp
    }
    @exclusivity(unchecked) private var owners: [Key: Owner] = [:]
    @exclusivity(unchecked) private var nextWorker = 0

    init(worker: Int, workers: Int, tcpIdleLimit: TimeSpan, udpIdleLimit: TimeSpan) {
        self.worker = worker
        self.workers = workers
        self.tcpIdleLimit = tcpIdleLimit
        self.udpIdleLimit = udpIdleLimit
    }

    /// Notes that the packet's flow was seen at `now` and says whether this worker owns it.
    func owns(_ packet: DecodedPacket, now: Timestamp) -> Bool {
        let key = Key(flow: FlowKey(packet.source, packet.destination, vlans: packet.vlans), transport: packet.transport)
        if let i = owners.index(forKey: key) {
            owners.values[i].lastSeen = now
            return owners.values[i].worker == worker
        }
        let owner = nextWorker
        nextWorker = (nextWorker + 1) % workers
        owners[key] = Owner(worker: owner, lastSeen: now)
        return owner == worker
    }

    /// Forgets the flows of `transport` idle for longer than every plugin keeps their state.
    /// Called right after the sweep that expired that state, on the same clock.
    func forgetIdle(_ transport: Transport, now: Timestamp) {
        let limit = transport == .tcp ? tcpIdleLimit : udpIdleLimit
        let idle = owners.compactMap { $0.key.transport == transport && now - $0.value.lastSeen > limit ? $0.key : nil }
        for key in idle { owners.removeValue(forKey: key) }
    }
}
