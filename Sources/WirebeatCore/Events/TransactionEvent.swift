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
        let startText = start.rfc3339
        e.set("@timestamp", startText)
        e.set("type", type)
        e.set("status", status.rawValue)
        e["event.kind"] = TransactionConstants.event
        e["event.category"] = TransactionConstants.category
        e["event.type"] = TransactionConstants.eventType
        e.set("event.dataset", type)
        e.set("event.start", startText)
        if let end {
            e.set("event.end", end.rfc3339)
            e.set("event.duration", max(0, (end - start).nanoseconds))
        }
        let client = connection.client, server = connection.server
        let clientIP = JSONValue.string(connection.clientIPText), serverIP = JSONValue.string(connection.serverIPText)
        let clientPort = JSONValue.int(Int64(client.port)), serverPort = JSONValue.int(Int64(server.port))
        let clientBytes = requestBytes.map { JSONValue.int(Int64($0)) }
        let serverBytes = responseBytes.map { JSONValue.int(Int64($0)) }
        e["source.ip"] = clientIP
        e["source.port"] = clientPort
        e["source.bytes"] = clientBytes
        e["client.ip"] = clientIP
        e["client.port"] = clientPort
        e["client.bytes"] = clientBytes
        e["destination.ip"] = serverIP
        e["destination.port"] = serverPort
        e["destination.bytes"] = serverBytes
        e["server.ip"] = serverIP
        e["server.port"] = serverPort
        e["server.bytes"] = serverBytes
        e["network.transport"] = connection.transport == .tcp ? TransactionConstants.tcp : TransactionConstants.udp
        e["network.type"] = client.ip.isV4 ? TransactionConstants.ipv4 : TransactionConstants.ipv6
        e.set("network.protocol", type)
        e.set("network.community_id", connection.communityID)
        if requestBytes != nil || responseBytes != nil {
            e.set("network.bytes", (requestBytes ?? 0) + (responseBytes ?? 0))
        }
        if let vlan = connection.vlans.first { e.set("network.vlan.id", String(vlan)) }
        return e
    }
}

/// Values every transaction event shares, built once.
enum TransactionConstants {
    static let event = JSONValue.string("event")
    static let category = JSONValue.array([.string("network")])
    static let eventType = JSONValue.array([.string("connection"), .string("protocol")])
    static let tcp = JSONValue.string(Transport.tcp.rawValue)
    static let udp = JSONValue.string(Transport.udp.rawValue)
    static let ipv4 = JSONValue.string("ipv4")
    static let ipv6 = JSONValue.string("ipv6")
}
