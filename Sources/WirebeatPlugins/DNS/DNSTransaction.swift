import WirebeatCore

/// Settings of the DNS plugin (`protocols.dns.*`).
struct DNSConfig {
    /// Put the query as dig prints it in `request`.
    var sendRequest = false
    /// Put the response as dig prints it in `response`.
    var sendResponse = false
    /// `dns.authorities` / `dns.additionals` (the counts are always there).
    var includeAuthorities = false
    var includeAdditionals = false
    /// How long a query waits for its response (packet clock); also the TCP idle timeout.
    var transactionTimeout = TimeSpan.seconds(10)
}

/// One message as seen on the wire.
struct DNSObserved {
    /// nil when the payload is shorter than a DNS header.
    var message: DNSMessage?
    var raw: [UInt8]
    var time: Timestamp
    var sender: Endpoint
    var receiver: Endpoint
    /// Notes about this message (faults, loss).
    var notes: [String] = []

    init(bytes: [UInt8], time: Timestamp, sender: Endpoint, receiver: Endpoint, lossHint: Bool) {
        raw = bytes
        self.time = time
        self.sender = sender
        self.receiver = receiver
        do {
            let m = try DNSMessage.parse(bytes)
            message = m
            for fault in m.faults {
                notes.append(fault.description)
                // A datagram that ends before what it announced was most likely cut by the snap length.
                if fault.kind == .truncated && lossHint { notes.append("possible packet loss") }
            }
        } catch {
            message = nil
            notes.append("malformed message: \(bytes.count) bytes, shorter than a DNS header")
            if lossHint && !bytes.isEmpty { notes.append("possible packet loss") }
        }
    }

    var bytes: Int { raw.count }
}

/// Builds the published event of a query and its response (either may be missing).
enum DNSEvents {
    static func event(query: DNSObserved?, response: DNSObserved?, notes extra: [String], transport: Transport,
                      connectionID: UInt64, vlans: [UInt16], settings: DNSConfig, known: ConnectionInfo? = nil) -> Event {
        guard let first = query ?? response else { preconditionFailure("an event needs a message") }
        let client = query?.sender ?? first.receiver
        let server = query?.receiver ?? first.sender
        // The flow's own info (cached by the sniffer) when it describes the same tuple: a new
        // ConnectionInfo costs a SHA-1 (Community ID) and two IP texts per event.
        let connection: ConnectionInfo
        if let known, known.id == connectionID, known.transport == transport, known.client == client,
           known.server == server, known.vlans == vlans {
            connection = known
        } else {
            connection = ConnectionInfo(id: connectionID, transport: transport, client: client, server: server, vlans: vlans)
        }
        var notes = (query?.notes ?? []) + (response?.notes ?? [])
        notes += extra
        let main = response?.message ?? query?.message
        let ok = notes.isEmpty && response?.message.map { $0.rcode == 0 } == true
        var e = Event.transaction(type: "dns", connection: connection, start: first.time, end: response?.time,
                                  status: ok ? .ok : .error, requestBytes: query?.bytes, responseBytes: response?.bytes)
        if let main {
            let h = main.header
            e.set("dns.type", response != nil ? "answer" : "query")
            e.set("dns.id", h.id)
            e.set("dns.op_code", DNSCodes.opcode(h.opcode))
            e.set("method", DNSCodes.opcode(h.opcode))
            e.set("dns.flags.authoritative", h.authoritative)
            e.set("dns.flags.truncated_response", h.truncated)
            e.set("dns.flags.recursion_desired", h.recursionDesired)
            e.set("dns.flags.recursion_available", h.recursionAvailable)
            e.set("dns.flags.authentic_data", h.authenticData)
            e.set("dns.flags.checking_disabled", h.checkingDisabled)
            var headerFlags = ["AA", "TC", "RD", "RA", "AD", "CD"].enumerated()
                .filter { [h.authoritative, h.truncated, h.recursionDesired, h.recursionAvailable, h.authenticData, h.checkingDisabled][$0.offset] }
                .map(\.element)
            if main.edns?.dnssecOK == true { headerFlags.append("DO") }
            e.set("dns.header_flags", headerFlags)
            if let edns = main.edns {
                e.set("dns.opt.version", Int(edns.version))
                e.set("dns.opt.do", edns.dnssecOK)
                e.set("dns.opt.udp_size", edns.udpSize)
                e.set("dns.opt.ext_rcode", DNSCodes.rcode(Int(edns.extendedRcode) << 4))
                setOptions(&e, "dns.opt", edns)
            }
        }
        if response?.message != nil, let edns = query?.message?.edns {
            // What the client asked for (the response's OPT is in dns.opt).
            e.set("dns.query_opt.version", Int(edns.version))
            e.set("dns.query_opt.do", edns.dnssecOK)
            e.set("dns.query_opt.udp_size", edns.udpSize)
            setOptions(&e, "dns.query_opt", edns)
        }
        if let r = response?.message {
            e.set("dns.response_code", DNSCodes.rcode(r.rcode))
            e.set("dns.answers_count", r.header.answerCount)
            e.set("dns.authorities_count", r.header.authorityCount)
            e.set("dns.additionals_count", r.header.additionalCount)
            if !r.answers.isEmpty { e.set("dns.answers", JSONValue.array(r.answers.map(\.json))) }
            if settings.includeAuthorities && !r.authorities.isEmpty {
                e.set("dns.authorities", JSONValue.array(r.authorities.map(\.json)))
            }
            if settings.includeAdditionals && !r.additionals.isEmpty {
                e.set("dns.additionals", JSONValue.array(r.additionals.map(\.json)))
            }
            let ips = r.answers.compactMap { rr -> String? in
                if case .address(let ip) = rr.data { return ip.description }
                return nil
            }
            if !ips.isEmpty { e.set("dns.resolved_ip", ips) }
        }
        if let q = (query?.message ?? response?.message)?.questions.first {
            e.set("dns.question.name", q.name.text)
            e.set("dns.question.type", DNSType.name(q.type))
            e.set("dns.question.class", DNSClass.name(q.qclass))
            e.set("resource", q.name.text)
            e.set("query", "class \(DNSClass.name(q.qclass)), type \(DNSType.name(q.type)), \(q.name.text)")
        }
        if settings.sendRequest, let q = query?.message { e.set("request", q.digText) }
        if settings.sendResponse, let r = response?.message { e.set("response", r.digText) }
        for note in notes { e.addNote(note) }
        return e
    }

    /// One field per option with a value, and `<prefix>.options`: every option's name, in order.
    private static func setOptions(_ e: inout Event, _ prefix: String, _ edns: EDNS) {
        let options = edns.decodedOptions
        guard !options.isEmpty else { return }
        e.set("\(prefix).options", options.map(\.key))
        for option in options { e.set("\(prefix).\(option.key)", option.value) }
    }
}
