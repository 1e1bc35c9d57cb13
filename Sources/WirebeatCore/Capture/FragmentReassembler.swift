struct FragmentKey: Hashable {
    let source: IPAddress
    let destination: IPAddress
    let protocolNumber: UInt8
    let identification: UInt32
}

/// IPv4/IPv6 fragment reassembly with bounds: datagrams up to 64 KiB, at most
/// `maxPending` incomplete datagrams, each discarded after `timeout` of packet time.
struct FragmentReassembler {
    enum Result {
        case pending
        case dropped
        case complete([UInt8])
    }

    private struct Pending {
        var pieces: [(offset: Int, data: [UInt8])] = []
        var totalLength: Int?
        var firstSeen: Timestamp
    }

    private var pending: [FragmentKey: Pending] = [:]
    let maxPending = 1024
    let maxDatagram = 65_535
    let timeout = TimeSpan.seconds(30)
    private(set) var expired = 0

    mutating func add(key: FragmentKey, offset: Int, isLast: Bool, data: UnsafeRawBufferPointer, now: Timestamp) -> Result {
        expireOld(now: now)
        guard offset + data.count <= maxDatagram else { pending[key] = nil; return .dropped }
        var entry = pending[key] ?? Pending(firstSeen: now)
        if pending[key] == nil && pending.count >= maxPending { return .dropped }
        entry.pieces.append((offset, Array(data)))
        if isLast { entry.totalLength = offset + data.count }
        if let total = entry.totalLength {
            // Complete when the pieces, sorted, cover 0..<total without holes.
            let sorted = entry.pieces.sorted { $0.offset < $1.offset }
            var covered = 0
            for piece in sorted where piece.offset <= covered { covered = max(covered, piece.offset + piece.data.count) }
            if covered >= total {
                var datagram = [UInt8](repeating: 0, count: total)
                for piece in sorted {
                    let end = min(total, piece.offset + piece.data.count)
                    if end > piece.offset {
                        datagram.replaceSubrange(piece.offset..<end, with: piece.data[0..<(end - piece.offset)])
                    }
                }
                pending[key] = nil
                return .complete(datagram)
            }
        }
        pending[key] = entry
        return .pending
    }

    private mutating func expireOld(now: Timestamp) {
        guard !pending.isEmpty else { return }
        let before = pending.count
        pending = pending.filter { now - $0.value.firstSeen < timeout }
        expired += before - pending.count
    }
}
