/// `status` of an event, as Packetbeat publishes it.
public enum EventStatus: String, Sendable {
    case ok = "OK"
    case error = "Error"
}

extension Event {
    /// An event with the fields every Wirebeat event carries: time (`@timestamp`,
    /// `event.start/end/duration`), the flow (`source`/`destination` = `client`/`server`,
    /// `network.*` with the Community ID) and `type`/`status`.
    ///
    /// - Parameters:
    ///   - start: packet time of the request (or first message).
    ///   - end: packet time of the last message of the response, when there was one.
    ///   - requestBytes, responseBytes: bytes sent by client and server for this event.
    public static func transaction(type: String, connection: ConnectionInfo, start: Timestamp, end: Timestamp?,
                                   status: EventStatus, requestBytes: Int? = nil,
                                   responseBytes: Int? = nil) -> Event {
        // Every event carries these ~30 fields: literal keys, constant values built once, and
        // per-connection text (IPs, Community ID) computed once per connection, not per event.
        // What the connection's events repeat is encoded once per connection and referred to;
        // a value printed under two names (`source.ip` = `client.ip`) is stored once. The
        // fields every event has come first, in the order of one of the `TransactionFields`
        // name lists (shared, not copied), all written in one call (`appendTransactionFields`:
        // one setter call per field cost ~2.7 k instructions an event).
        let hasBytes = requestBytes != nil || responseBytes != nil
        var e = Event(baseKind: TransactionFields.kind(end: end != nil, bytes: hasBytes))
        e.appendTransactionFields(flow: connection.encoded, ok: status == .ok, type: type, start: start, end: end,
                                  requestBytes: requestBytes, responseBytes: responseBytes)
        if let vlan = connection.vlans.first { e.set("network.vlan.id", String(vlan)) }
        return e
    }
}


/// The names `Event.transaction` sets, in the order it sets them (the order does not show in
/// the output: writing sorts the names).
enum TransactionFields {
    /// Set from the connection's `EncodedFlow.sharedSpans`, all at once.
    static let sharedNames = [
        "event.kind", "event.category", "event.type", "source.ip", "client.ip", "source.port", "client.port",
        "destination.ip", "server.ip", "destination.port", "server.port", "network.transport", "network.type",
        "network.community_id",
    ]
    /// Every event.
    static let baseNames = sharedNames + [
        "status", "@timestamp", "event.start", "type", "event.dataset", "network.protocol", "source.bytes",
        "client.bytes", "destination.bytes", "server.bytes",
    ]
    /// Those of an event with an end time, with byte counts, or both, in the order
    /// `Event.appendTransactionFields` writes them.
    static let withEnd = baseNames + ["event.end", "event.duration"]
    static let withBytes = baseNames + ["network.bytes"]
    static let withEndAndBytes = withEnd + ["network.bytes"]

    /// The number of the list (`EventStorage.baseKind`) of an event with an end time, bytes.
    static func kind(end: Bool, bytes: Bool) -> UInt8 { end ? (bytes ? 4 : 3) : (bytes ? 2 : 1) }

    /// The list of that number.
    static func names(ofKind kind: UInt8) -> [String] {
        switch kind {
        case 1: baseNames
        case 2: withBytes
        case 3: withEnd
        default: withEndAndBytes
        }
    }
}
