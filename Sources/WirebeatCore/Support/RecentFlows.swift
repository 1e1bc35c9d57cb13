/// The flows seen last, in front of a flow table: 64 slots, two-way set-associative by the
/// flow's folded hash (`Endpoint.foldedHash`), each holding the two endpoints and an unretained
/// reference to what the table holds for the flow.
///
/// Why: the tables are `Dictionary`s looked up for every packet (hashing, the key's
/// synthesized `==` over both endpoints and its VLAN array, the entry copied out); a hit
/// here is a few compares. It counts most where every worker of a parallel replay looks
/// every packet up (`FlowSharding`: ~770 instructions a packet with SipHash); in front of
/// the TCP and UDP tables, whose keys hash with `Endpoint.tableHash`, it saves ~30 a packet. Only untagged flows are cached (the
/// endpoints are the whole key then). The owner must `forgetAll` whenever it drops an entry
/// from its table, since the references here are not retained.
struct RecentFlows<Value: AnyObject> {
    private struct Slot {
        var folded: UInt64 = 0
        var a = Endpoint(ip: IPAddress(v4: 0), port: 0)
        var b = Endpoint(ip: IPAddress(v4: 0), port: 0)
        var value: Unmanaged<Value>?
    }
    /// 32 sets of two ways (slots 2s and 2s + 1): with one way per set, two busy flows that
    /// fell in the same slot missed on every packet (the 12 flows of the DNS benchmark
    /// missed on half of them, ~350 instructions each in `FlowSharding`).
    private var slots = [Slot](repeating: Slot(), count: 64)

    /// The set: the top 5 bits of the folded hash times an odd constant, where every bit of
    /// it has been mixed in. (Its low bits with a few shifted ones XORed in, before, were the
    /// client port's low bits unmixed, `foldedHash` XORing the ports in last: three of the
    /// eight flows of the DNS benchmark, on one server address, fell in one set, and a third
    /// of the packets missed, in `FlowSharding` and in each sniffer.)
    @inline(__always) private static func set(_ folded: UInt64) -> Int {
        Int(truncatingIfNeeded: (folded &* 0x9E37_79B9_7F4A_7C15) >> 59) &<< 1
    }

    /// What was remembered for the flow of `a` and `b` (in the order they were remembered).
    @inline(__always) func lookup(folded: UInt64, _ a: Endpoint, _ b: Endpoint) -> Unmanaged<Value>? {
        slots.withUnsafeBufferPointer { s in
            let i = RecentFlows.set(folded)
            let first = s[i]
            if first.folded == folded && first.a == a && first.b == b { return first.value }
            let second = s[i + 1]
            return second.folded == folded && second.a == a && second.b == b ? second.value : nil
        }
    }

    /// Puts the flow in the first way of its set; what was there moves to the second.
    mutating func remember(folded: UInt64, _ a: Endpoint, _ b: Endpoint, _ value: Value) {
        let i = RecentFlows.set(folded)
        slots.withUnsafeMutableBufferPointer { s in
            s[i + 1] = s[i]
            s[i] = Slot(folded: folded, a: a, b: b, value: Unmanaged.passUnretained(value))
        }
    }

    mutating func forgetAll() {
        for i in slots.indices { slots[i].value = nil }
    }
}
