/// Where an event stands in the order one sniffer publishes events, as a sortable key.
///
/// A single sniffer publishes in a fixed order: packet by packet; within a packet, first
/// what the packet clock expired (a TCP sweep oldest connection first, or the UDP plugins'
/// `advanceClock` in plugin order and `sweepOrder`), then what the packet itself caused;
/// at the end of input, TCP connections by age, then each UDP plugin's `finish`. Parallel
/// replay runs one sniffer per worker, each owning some flows, and merges their events by
/// this key back into exactly that order.
public struct EventOrderKey: Comparable, Sendable {
    /// `PluginContext.packetIndex` of the packet being handled; `endOfInput` at the end.
    public var packet: Int64
    /// Before the packet (clock sweep) or for the packet itself; at the end of input, TCP or
    /// the index of the UDP plugin.
    public var phase: Int64
    /// TCP sweep: when the connection was last seen; UDP sweep: the plugin's index;
    /// TCP end of input: the connection's id.
    public var first: Int64
    /// TCP sweep: the connection's id; UDP: the plugin's `sweepOrder`.
    public var second: Int64

    public static let endOfInput = Int64.max
    static let sweepPhase: Int64 = 0
    static let packetPhase: Int64 = 1

    public static func < (a: EventOrderKey, b: EventOrderKey) -> Bool {
        (a.packet, a.phase, a.first, a.second) < (b.packet, b.phase, b.first, b.second)
    }
}

/// The key of the events being published right now, kept up to date by the sniffer and the
/// TCP layer as they move from one packet, sweep or connection to the next. A class: they
/// and the publisher of a parallel replay worker share it.
public final class EventOrder {
    @exclusivity(unchecked) public internal(set) var key = EventOrderKey(packet: 0, phase: 1, first: 0, second: 0)
    /// Index of the latest packet (it stays put at the end of input).
    @exclusivity(unchecked) public private(set) var packetIndex = 0
    public init() {}

    func packet(_ index: Int) {
        packetIndex = index
        key = EventOrderKey(packet: Int64(index), phase: EventOrderKey.packetPhase, first: 0, second: 0)
    }

    func sweep(_ first: Int64, _ second: Int64) {
        key.phase = EventOrderKey.sweepPhase
        key.first = first
        key.second = second
    }

    func endOfSweep() {
        key.phase = EventOrderKey.packetPhase
        key.first = 0
        key.second = 0
    }

    func endOfInput(phase: Int64, first: Int64) {
        key = EventOrderKey(packet: EventOrderKey.endOfInput, phase: phase, first: first, second: 0)
    }
}
