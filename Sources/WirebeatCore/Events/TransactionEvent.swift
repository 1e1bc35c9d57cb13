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
        var e = Event()
        e.set("@timestamp", start.rfc3339)
        e.set("type", type)
        e.set("status", status.rawValue)
        e.set("event.kind", "event")
        e.set("event.category", ["network"])
        e.set("event.type", ["connection", "protocol"])
        e.set("event.dataset", type)
        e.set("event.start", start.rfc3339)
        if let end {
            e.set("event.end", end.rfc3339)
            e.set("event.duration", max(0, (end - start).nanoseconds))
        }
        let client = connection.client, server = connection.server
        for (prefix, endpoint, bytes) in [("source", client, requestBytes), ("client", client, requestBytes),
                                          ("destination", server, responseBytes), ("server", server, responseBytes)] {
            e.set("\(prefix).ip", endpoint.ip.description)
            e.set("\(prefix).port", endpoint.port)
            e.set("\(prefix).bytes", bytes)
        }
        e.set("network.transport", connection.transport.rawValue)
        e.set("network.type", client.ip.isV4 ? "ipv4" : "ipv6")
        e.set("network.protocol", type)
        e.set("network.community_id", connection.communityID)
        if requestBytes != nil || responseBytes != nil {
            e.set("network.bytes", (requestBytes ?? 0) + (responseBytes ?? 0))
        }
        if let vlan = connection.vlans.first { e.set("network.vlan.id", String(vlan)) }
        return e
    }
}
