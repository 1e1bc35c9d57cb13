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
        var e = Event(capacity: 48)
        e.set("@timestamp", timestamp: start)
        e.set("type", type)
        e.set("status", encodedJSON: status == .ok ? TransactionConstants.ok : TransactionConstants.error)
        e.set("event.kind", encodedJSON: TransactionConstants.event)
        e.set("event.category", encodedJSON: TransactionConstants.category)
        e.set("event.type", encodedJSON: TransactionConstants.eventType)
        e.set("event.dataset", type)
        e.set("event.start", timestamp: start)
        if let end {
            e.set("event.end", timestamp: end)
            e.set("event.duration", max(0, (end - start).nanoseconds))
        }
        let flow = connection.encoded
        e.set("source.ip", encodedJSON: flow.clientIP)
        e.set("source.port", encodedJSON: flow.clientPort)
        e.set("source.bytes", requestBytes)
        e.set("client.ip", encodedJSON: flow.clientIP)
        e.set("client.port", encodedJSON: flow.clientPort)
        e.set("client.bytes", requestBytes)
        e.set("destination.ip", encodedJSON: flow.serverIP)
        e.set("destination.port", encodedJSON: flow.serverPort)
        e.set("destination.bytes", responseBytes)
        e.set("server.ip", encodedJSON: flow.serverIP)
        e.set("server.port", encodedJSON: flow.serverPort)
        e.set("server.bytes", responseBytes)
        e.set("network.transport", encodedJSON: connection.transport == .tcp ? TransactionConstants.tcp : TransactionConstants.udp)
        e.set("network.type", encodedJSON: connection.client.ip.isV4 ? TransactionConstants.ipv4 : TransactionConstants.ipv6)
        e.set("network.protocol", type)
        e.set("network.community_id", encodedJSON: flow.communityID)
        if requestBytes != nil || responseBytes != nil {
            e.set("network.bytes", (requestBytes ?? 0) + (responseBytes ?? 0))
        }
        if let vlan = connection.vlans.first { e.set("network.vlan.id", String(vlan)) }
        return e
    }
}

/// Values every transaction event shares, as JSON text, encoded once.
enum TransactionConstants {
    static let event = Array(#""event""#.utf8)
    static let category = Array(#"["network"]"#.utf8)
    static let eventType = Array(#"["connection","protocol"]"#.utf8)
    static let tcp = Array(#""tcp""#.utf8)
    static let udp = Array(#""udp""#.utf8)
    static let ipv4 = Array(#""ipv4""#.utf8)
    static let ipv6 = Array(#""ipv6""#.utf8)
    static let ok = Array(#""OK""#.utf8)
    static let error = Array(#""Error""#.utf8)
}
