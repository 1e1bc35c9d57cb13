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
        var e = Event(capacity: 64)
        // What the connection's events repeat is encoded once per connection and referred to;
        // a value printed under two names (`source.ip` = `client.ip`) is stored once.
        let flow = connection.encoded
        e.useSharedText(flow.text)
        e.set("@timestamp", timestamp: start)
        e.repeatLastValue(as: "event.start")
        e.set("type", type)
        e.repeatLastValue(as: "event.dataset")
        e.repeatLastValue(as: "network.protocol")
        e.setShared("status", status == .ok ? flow.statusOK : flow.statusError)
        e.setShared("event.kind", flow.eventKind)
        e.setShared("event.category", flow.eventCategory)
        e.setShared("event.type", flow.eventType)
        if let end {
            e.set("event.end", timestamp: end)
            e.set("event.duration", max(0, (end - start).nanoseconds))
        }
        e.setShared("source.ip", flow.clientIP)
        e.setShared("client.ip", flow.clientIP)
        e.setShared("source.port", flow.clientPort)
        e.setShared("client.port", flow.clientPort)
        e.setShared("destination.ip", flow.serverIP)
        e.setShared("server.ip", flow.serverIP)
        e.setShared("destination.port", flow.serverPort)
        e.setShared("server.port", flow.serverPort)
        e.set("source.bytes", requestBytes)
        e.repeatLastValue(as: "client.bytes")
        e.set("destination.bytes", responseBytes)
        e.repeatLastValue(as: "server.bytes")
        e.setShared("network.transport", flow.transport)
        e.setShared("network.type", flow.networkType)
        e.setShared("network.community_id", flow.communityID)
        if requestBytes != nil || responseBytes != nil {
            e.set("network.bytes", (requestBytes ?? 0) + (responseBytes ?? 0))
        }
        if let vlan = connection.vlans.first { e.set("network.vlan.id", String(vlan)) }
        return e
    }
}

