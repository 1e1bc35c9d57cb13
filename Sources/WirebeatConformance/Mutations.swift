import WirebeatCore

/// The ways the harness damages a capture, at packet level, so that the real TCP/UDP
/// layer runs on every mutated replay.
public enum MutationMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Re-cut TCP payloads: 1-byte segments, every 2-way split, seeded random cuts, coalescing.
    case split
    /// Swap neighbouring segments of one direction.
    case reorder
    /// Retransmit segments, whole and partly overlapping.
    case duplicate
    /// Remove one segment's payload (the bytes are lost for good).
    case gap
    /// End the connection with FIN after segment k.
    case fin
    /// End the connection with RST after segment k.
    case rst
    /// Insert idle time longer than the plugin's timeout after segment k.
    case timeout
    /// Snap-length cut: captured length smaller than the length on the wire.
    case truncate
    /// Seeded byte flips and inserted garbage.
    case corrupt
    /// UDP: drop one datagram.
    case drop

    public var description: String { rawValue }

    /// What a correct plugin must produce under this mode.
    public var expectation: Expectation {
        switch self {
        case .split, .reorder, .duplicate: return .identical
        case .gap, .truncate, .drop: return .lossy(note: "packet loss")
        case .fin, .rst: return .lossy(note: nil)
        case .timeout: return .lossyIgnoringTime
        case .corrupt: return .survives
        }
    }

    public static let tcpModes: [MutationMode] = [.split, .reorder, .duplicate, .gap, .fin, .rst, .timeout, .truncate, .corrupt]
    public static let udpModes: [MutationMode] = [.duplicate, .drop, .truncate, .corrupt]
}

public enum Expectation: Sendable, Equatable {
    /// Output identical to the golden, event for event.
    case identical
    /// Each event equals a golden event or carries a note in `error.message` (containing
    /// `note` when given); events of connections the mutation did not touch are all there.
    case lossy(note: String?)
    /// As `lossy(nil)`, comparing events without their time fields (the clock was shifted).
    case lossyIgnoringTime
    /// No crash, no hang, bounded memory; the output itself is not judged.
    case survives
}

/// How hard to try: `quick` for every `swift test`, `full` for nightly runs.
public enum Budget: String, CaseIterable, Sendable {
    case quick, full
    var positions: Int { self == .quick ? 12 : 96 }
    var splitSegments: Int { self == .quick ? 4 : 32 }
    var splitPoints: Int { self == .quick ? 8 : 64 }
    var seeds: Int { self == .quick ? 3 : 24 }
}

/// One mutated replay: how to rebuild it (mode, seed, parameters) and what it touched.
public struct Mutation: Sendable {
    public let mode: MutationMode
    public let seed: UInt64
    public let parameters: String
    /// Flows whose packets were changed; the others must come out as in the golden.
    public var touchedFlows: Set<FlowID>
    /// Packet time of the damage (for the recovery ratio).
    public let damageTime: Timestamp?
    /// Bytes now arrive at other packet times (reordering, coalescing): an "identical"
    /// expectation then compares events without their time fields.
    public var movesTime = false
    /// Set where the mode's usual expectation does not hold for this mutation.
    public var expectation: Expectation?
    public let packets: [CapturedPacket]
}

/// Plans the mutations of one capture for one mode under a budget.
public struct MutationPlanner {
    public let capture: PacketCapture
    public let budget: Budget
    public let seed: UInt64
    /// The plugin's idle timeout (the `timeout` mode waits longer than this).
    public let connectionTimeout: TimeSpan

    private var packets: [CapturedPacket] { capture.packets }

    public init(capture: PacketCapture, budget: Budget, seed: UInt64, connectionTimeout: TimeSpan) {
        self.capture = capture
        self.budget = budget
        self.seed = seed
        self.connectionTimeout = connectionTimeout
    }

    /// Indices of packets carrying payload, per transport.
    private func dataIndices(_ transport: Transport) -> [Int] {
        packets.indices.filter { packets[$0].transport == transport && !packets[$0].payload.isEmpty }
    }

    /// Evenly spread picks, so a budget covers the start, middle and end of a capture.
    private func spread<T>(_ items: [T], _ limit: Int) -> [T] {
        guard items.count > limit, limit > 0 else { return items }
        return (0..<limit).map { items[$0 * items.count / limit] }
    }

    public func mutations(_ mode: MutationMode) -> [Mutation] {
        switch mode {
        case .split: return splits()
        case .reorder: return reorders()
        case .duplicate: return duplicates()
        case .gap: return spread(dataIndices(.tcp), budget.positions).map { gap(at: $0) }
        case .fin, .rst: return spread(dataIndices(.tcp), budget.positions).map { end(after: $0, reset: mode == .rst) }
        case .timeout: return spread(dataIndices(.tcp), budget.positions).map { idle(after: $0) }
        case .truncate: return truncations()
        case .corrupt: return corruptions()
        case .drop: return spread(dataIndices(.udp), budget.positions).map { drop(at: $0) }
        }
    }

    private func mutation(_ mode: MutationMode, _ parameters: String, touched: [Int], seed: UInt64? = nil,
                          _ result: [CapturedPacket]) -> Mutation {
        Mutation(mode: mode, seed: seed ?? self.seed, parameters: parameters,
                 touchedFlows: Set(touched.map { packets[$0].flow }),
                 damageTime: touched.first.map { packets[$0].timestamp }, packets: result)
    }

    // MARK: split

    /// Replaces packet `i` by pieces cut at `cuts` (offsets into its payload).
    private func cut(_ p: CapturedPacket, at cuts: [Int]) -> [CapturedPacket] {
        let points = ([0] + cuts.filter { $0 > 0 && $0 < p.payload.count }.sorted() + [p.payload.count])
        var pieces: [CapturedPacket] = []
        for k in 0..<(points.count - 1) where points[k] < points[k + 1] {
            var piece = p
            piece.payload = Array(p.payload[points[k]..<points[k + 1]])
            piece.wireLength = piece.payload.count
            piece.sequence = p.sequence &+ UInt32(points[k])
            var flags = p.flags
            if k > 0 { flags.remove(.syn) }
            if k < points.count - 2 { flags.remove(.fin) }
            piece.flags = flags
            pieces.append(piece)
        }
        return pieces
    }

    private func splits() -> [Mutation] {
        let data = dataIndices(.tcp).filter { packets[$0].payload.count == packets[$0].wireLength }
        guard !data.isEmpty else { return [] }
        let isData = Set(data)
        var out: [Mutation] = []
        // Every payload byte in its own segment.
        var oneByte: [CapturedPacket] = []
        for (i, p) in packets.enumerated() {
            if isData.contains(i) { oneByte += cut(p, at: Array(1..<p.payload.count)) } else { oneByte.append(p) }
        }
        out.append(mutation(.split, "1-byte segments", touched: [], oneByte))
        // Every 2-way split point of a sample of segments (the biggest first: most structure).
        let chosen = spread(data.sorted { packets[$0].payload.count > packets[$1].payload.count }, budget.splitSegments)
        for i in chosen.sorted() {
            let length = packets[i].payload.count
            guard length > 1 else { continue }
            for point in spread(Array(1..<length), budget.splitPoints) {
                var result = packets
                result.replaceSubrange(i...i, with: cut(packets[i], at: [point]))
                out.append(mutation(.split, "packet \(i) cut at byte \(point)", touched: [], result))
            }
        }
        // Seeded random cuts everywhere.
        for s in 0..<UInt64(budget.seeds) {
            var rng = SeededRandom(seed: seed &+ s)
            var result: [CapturedPacket] = []
            for (i, p) in packets.enumerated() {
                guard isData.contains(i), p.payload.count > 1 else { result.append(p); continue }
                let n = Int.random(in: 0...3, using: &rng)
                result += cut(p, at: (0..<n).map { _ in Int.random(in: 1..<p.payload.count, using: &rng) })
            }
            out.append(mutation(.split, "random cuts", touched: [], seed: seed &+ s, result))
        }
        // Coalescing: neighbouring segments of one direction merged into one.
        var merged: [CapturedPacket] = []
        for p in packets {
            if var last = merged.last, last.transport == .tcp, p.transport == .tcp, !last.payload.isEmpty,
               !p.payload.isEmpty, last.source == p.source, last.destination == p.destination,
               last.payload.count == last.wireLength, p.payload.count == p.wireLength,
               !last.flags.contains(.fin), last.sequence &+ UInt32(last.payload.count) == p.sequence {
                last.payload += p.payload
                last.wireLength = last.payload.count
                last.flags.formUnion(p.flags)
                last.acknowledgment = p.acknowledgment
                merged[merged.count - 1] = last
            } else {
                merged.append(p)
            }
        }
        if merged.count != packets.count {
            var m = mutation(.split, "coalesced neighbours", touched: [], merged)
            m.movesTime = true
            out.append(m)
        }
        return out
    }

    // MARK: reorder, duplicate

    /// Pairs (i, j) of consecutive data segments of one direction with no data from the
    /// other direction in between (a reply in between would make the swap impossible on a
    /// real network) and the same acknowledgment number (the sender learned nothing new from
    /// its peer in between, so no ACK evidence of loss moves with the swap).
    private func neighbourPairs() -> [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        var lastData: [FlowID: (index: Int, source: Endpoint)] = [:]
        for i in packets.indices where packets[i].transport == .tcp && !packets[i].payload.isEmpty {
            let p = packets[i]
            if let last = lastData[p.flow], last.source == p.source,
               packets[last.index].acknowledgment == p.acknowledgment {
                pairs.append((last.index, i))
            }
            lastData[p.flow] = (i, p.source)
        }
        return pairs
    }

    private func reorders() -> [Mutation] {
        spread(neighbourPairs(), budget.positions).map { (i, j) in
            var result = packets
            let later = result.remove(at: j)
            result.insert(later, at: i)
            var m = mutation(.reorder, "packet \(j) moved before packet \(i)", touched: [], result)
            m.movesTime = true
            return m
        }
    }

    private func duplicates() -> [Mutation] {
        var out: [Mutation] = []
        let udp = dataIndices(.udp)
        for i in spread(dataIndices(.tcp) + udp, budget.positions) {
            var result = packets
            result.insert(packets[i], at: i + 1)
            if packets[i].transport == .udp {
                // A repeated datagram is new traffic to UDP (no sequence numbers to dedupe by):
                // the plugin may report it, with a note, but must not lose or garble the rest.
                var m = mutation(.duplicate, "datagram \(i) sent twice", touched: [i], result)
                m.expectation = .lossy(note: nil)
                out.append(m)
            } else {
                out.append(mutation(.duplicate, "packet \(i) sent twice", touched: [], result))
            }
        }
        for (i, j) in spread(neighbourPairs(), budget.positions) {
            // A retransmission overlapping the end of segment i and the start of segment j.
            let a = packets[i], b = packets[j]
            guard a.sequence &+ UInt32(a.payload.count) == b.sequence, a.payload.count == a.wireLength,
                  b.payload.count == b.wireLength else { continue }
            var overlap = b
            let head = a.payload.count / 2, tail = (b.payload.count + 1) / 2
            overlap.payload = Array(a.payload[head...]) + Array(b.payload[..<tail])
            overlap.wireLength = overlap.payload.count
            overlap.sequence = a.sequence &+ UInt32(head)
            overlap.flags.remove(.fin)
            var result = packets
            result.insert(overlap, at: j + 1)
            out.append(mutation(.duplicate, "bytes \(head)..<\(a.payload.count) of packet \(i) and 0..<\(tail) of packet \(j) resent", touched: [], result))
        }
        return out
    }

    // MARK: loss and endings

    private func gap(at i: Int) -> Mutation {
        var result = packets
        if packets[i].flags.contains(.fin) || packets[i].flags.contains(.syn) {
            result[i].payload = []
            result[i].wireLength = 0
            // The FIN keeps its place in sequence space after the lost bytes.
            result[i].sequence = packets[i].sequence &+ UInt32(packets[i].payload.count)
        } else {
            result.remove(at: i)
        }
        return mutation(.gap, "payload of packet \(i) (\(packets[i].payload.count) bytes) lost", touched: [i], result)
    }

    private func drop(at i: Int) -> Mutation {
        var result = packets
        result.remove(at: i)
        return mutation(.drop, "datagram \(i) lost", touched: [i], result)
    }

    /// Cuts the connection of packet `i` right after it: FIN from both sides, or a RST.
    private func end(after i: Int, reset: Bool) -> Mutation {
        let p = packets[i]
        let flow = p.flow
        var result = Array(packets[...i])
        // Where each side's sequence space stands after packet i.
        var next: [Endpoint: UInt32] = [:]
        var acked: [Endpoint: UInt32] = [:]
        for q in result where q.transport == .tcp && q.flow == flow {
            var end = q.sequence &+ UInt32(q.payload.count)
            if q.flags.contains(.syn) || q.flags.contains(.fin) { end = end &+ 1 }
            if let old = next[q.source], Int32(bitPattern: end &- old) <= 0 { } else { next[q.source] = end }
            if q.flags.contains(.ack) { acked[q.source] = q.acknowledgment }
        }
        let ends = reset ? [p.source] : [p.source, p.destination]
        for (k, side) in ends.enumerated() {
            let peer = side == p.source ? p.destination : p.source
            let seq = next[side] ?? acked[peer] ?? 0
            var packet = CapturedPacket(timestamp: Timestamp(nanoseconds: p.timestamp.nanoseconds + Int64(k + 1) * 1000),
                                        transport: .tcp, source: side, destination: peer, vlans: p.vlans, sequence: seq,
                                        acknowledgment: next[peer] ?? 0, flags: reset ? [.rst] : [.fin, .ack],
                                        payload: [], wireLength: 0)
            if next[peer] == nil { packet.flags.remove(.ack) }
            result.append(packet)
        }
        result += packets[(i + 1)...].filter { $0.flow != flow || $0.transport != .tcp }
        return mutation(reset ? .rst : .fin, "connection ended with \(reset ? "RST" : "FIN") after packet \(i)", touched: [i], result)
    }

    /// Shifts every packet after `i` later by more than the idle timeout. Every connection
    /// with packets on both sides of the pause expires, so all of them count as touched.
    private func idle(after i: Int) -> Mutation {
        var result = packets
        let shift = connectionTimeout.nanoseconds + 1_000_000_000
        for k in (i + 1)..<result.count { result[k].timestamp = Timestamp(nanoseconds: result[k].timestamp.nanoseconds + shift) }
        let before = Set(packets[...i].map(\.flow))
        let across = packets.indices.filter { $0 > i && before.contains(packets[$0].flow) }
        var m = mutation(.timeout, "idle \(TimeSpan(nanoseconds: shift)) after packet \(i)", touched: [i], result)
        m.touchedFlows.formUnion(across.map { packets[$0].flow })
        return m
    }

    private func truncations() -> [Mutation] {
        let data = dataIndices(.tcp) + dataIndices(.udp)
        return spread(data.sorted(), budget.positions).compactMap { i in
            var result = packets
            let keep = packets[i].payload.count / 2
            result[i].payload = Array(packets[i].payload[..<keep])
            return mutation(.truncate, "packet \(i) captured with \(keep) of \(packets[i].wireLength) payload bytes", touched: [i], result)
        }
    }

    private func corruptions() -> [Mutation] {
        let data = dataIndices(.tcp) + dataIndices(.udp)
        guard !data.isEmpty else { return [] }
        var out: [Mutation] = []
        for s in 0..<UInt64(budget.seeds * 2) {
            var rng = SeededRandom(seed: seed &+ 1000 &+ s)
            var result = packets
            var touched: [Int] = []
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = data[Int.random(in: 0..<data.count, using: &rng)]
                touched.append(i)
                if s % 2 == 0 {
                    // Flip bytes in place.
                    for _ in 0..<Int.random(in: 1...8, using: &rng) where !result[i].payload.isEmpty {
                        result[i].payload[Int.random(in: 0..<result[i].payload.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                    }
                } else {
                    // Insert garbage; later segments of that direction move up in sequence space.
                    let garbage = (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    let at = Int.random(in: 0...result[i].payload.count, using: &rng)
                    result[i].payload.insert(contentsOf: garbage, at: at)
                    result[i].wireLength += garbage.count
                    if result[i].transport == .tcp {
                        let src = result[i].source, dst = result[i].destination
                        for k in (i + 1)..<result.count where result[k].transport == .tcp {
                            if result[k].source == src && result[k].destination == dst {
                                result[k].sequence = result[k].sequence &+ UInt32(garbage.count)
                            } else if result[k].source == dst && result[k].destination == src && result[k].flags.contains(.ack) {
                                result[k].acknowledgment = result[k].acknowledgment &+ UInt32(garbage.count)
                            }
                        }
                    }
                }
            }
            out.append(mutation(.corrupt, s % 2 == 0 ? "bytes flipped" : "garbage inserted", touched: touched.sorted(),
                                seed: seed &+ 1000 &+ s, result))
        }
        return out
    }
}
