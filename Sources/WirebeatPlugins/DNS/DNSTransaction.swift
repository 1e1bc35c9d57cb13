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
///
/// A class: a message waits in a table for its partner and is then dropped whole, and
/// releasing one reference is far cheaper than destroying a large struct field by field
/// (which the compiler does through generic value witnesses when it sits in a dictionary
/// value tuple).
final class DNSObserved {
    /// nil when the payload is shorter than a DNS header.
    let message: DNSMessage?
    let raw: [UInt8]
    let time: Timestamp
    let sender: Endpoint
    let receiver: Endpoint
    /// Notes about this message (faults, loss).
    var notes: [String] = []

    init(bytes: [UInt8], time: Timestamp, sender: Endpoint, receiver: Endpoint, lossHint: Bool) {
        raw = bytes
        self.time = time
        self.sender = sender
        self.receiver = receiver
        let m = try? DNSMessage.parse(bytes)
        message = m
        if let m {
            for fault in m.faults {
                notes.append(fault.description)
                // A datagram that ends before what it announced was most likely cut by the snap length.
                if fault.kind == .truncated && lossHint { notes.append("possible packet loss") }
            }
        } else {
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
        // Values are JSON text made here (tables of constant text, bytes written into `json`):
        // no String, array or `JSONValue` tree per field.
        var json: [UInt8] = []
        json.reserveCapacity(512)
        if let main {
            let h = main.header
            e.set("dns.type", encodedJSON: response != nil ? DNSEncoded.answer : DNSEncoded.query)
            setNumber(&e, "dns.id", h.id, &json)
            let opcode = DNSEncoded.opcode(h.opcode)
            e.set("dns.op_code", encodedJSON: opcode)
            e.set("method", encodedJSON: opcode)
            // The whole `dns.flags` object as one value: it prints where its six members would
            // (the event nests dotted names into objects), and one value is cheaper to set than six.
            e.set("dns.flags", encodedJSON: DNSEncoded.flags(h))
            e.set("dns.header_flags", encodedJSON: DNSEncoded.headerFlags(h, dnssecOK: main.edns?.dnssecOK == true))
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
            e.set("dns.response_code", encodedJSON: DNSEncoded.rcode(r.rcode))
            setNumber(&e, "dns.answers_count", r.header.answerCount, &json)
            setNumber(&e, "dns.authorities_count", r.header.authorityCount, &json)
            setNumber(&e, "dns.additionals_count", r.header.additionalCount, &json)
            if !r.answers.isEmpty { setRecords(&e, "dns.answers", r.answers, &json) }
            if settings.includeAuthorities && !r.authorities.isEmpty { setRecords(&e, "dns.authorities", r.authorities, &json) }
            if settings.includeAdditionals && !r.additionals.isEmpty { setRecords(&e, "dns.additionals", r.additionals, &json) }
            // The addresses among the answers, as a JSON array of strings.
            json.removeAll(keepingCapacity: true)
            for rr in r.answers {
                guard case .address(let ip) = rr.data else { continue }
                json.append(json.isEmpty ? UInt8(ascii: "[") : UInt8(ascii: ","))
                json.append(DNSJSON.quote)
                DNSJSON.ip(ip, into: &json)
                json.append(DNSJSON.quote)
            }
            if !json.isEmpty {
                json.append(UInt8(ascii: "]"))
                e.set("dns.resolved_ip", encodedJSON: json)
            }
        }
        if let q = (query?.message ?? response?.message)?.questions.first {
            let type = DNSEncoded.type(q.type), qclass = DNSEncoded.class(q.qclass)
            json.removeAll(keepingCapacity: true)
            json.append(DNSJSON.quote)
            q.name.write(into: &json, json: true)
            json.append(DNSJSON.quote)
            e.set("resource", encodedJSON: json)
            // `dns.question` as one object (keys in byte order), as `dns.flags`.
            json.removeAll(keepingCapacity: true)
            DNSJSON.raw(#"{"class":"#, into: &json)
            json.append(contentsOf: qclass)
            DNSJSON.raw(#","name":""#, into: &json)
            q.name.write(into: &json, json: true)
            DNSJSON.raw(#"","type":"#, into: &json)
            json.append(contentsOf: type)
            json.append(UInt8(ascii: "}"))
            e.set("dns.question", encodedJSON: json)
            // "class IN, type A, example.test": the names' text is the inside of their JSON strings.
            json.removeAll(keepingCapacity: true)
            DNSJSON.raw(#""class "#, into: &json)
            json.append(contentsOf: qclass.dropFirst().dropLast())
            DNSJSON.raw(", type ", into: &json)
            json.append(contentsOf: type.dropFirst().dropLast())
            DNSJSON.raw(", ", into: &json)
            q.name.write(into: &json, json: true)
            json.append(DNSJSON.quote)
            e.set("query", encodedJSON: json)
        }
        if settings.sendRequest, let q = query?.message { e.set("request", q.digText) }
        if settings.sendResponse, let r = response?.message { e.set("response", r.digText) }
        for note in notes { e.addNote(note) }
        return e
    }

    /// A number, written by hand into `json` (scratch space). `e.set(name, someInt)` would pick
    /// the overload taking `any JSONRepresentable`, and the generic one is not specialised
    /// across modules: either costs about twice as much as this.
    private static func setNumber(_ e: inout Event, _ name: String, _ value: UInt16, _ json: inout [UInt8]) {
        json.removeAll(keepingCapacity: true)
        DNSJSON.int(UInt32(value), into: &json)
        e.set(name, encodedJSON: json)
    }

    /// A section's records as a JSON array (`json` is scratch space).
    private static func setRecords(_ e: inout Event, _ name: String, _ records: [DNSRecord], _ json: inout [UInt8]) {
        json.removeAll(keepingCapacity: true)
        json.append(UInt8(ascii: "["))
        for (i, rr) in records.enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            rr.writeJSON(into: &json)
        }
        json.append(UInt8(ascii: "]"))
        e.set(name, encodedJSON: json)
    }

    /// One field per option with a value, and `<prefix>.options`: every option's name, in order.
    private static func setOptions(_ e: inout Event, _ prefix: String, _ edns: EDNS) {
        let options = edns.decodedOptions
        guard !options.isEmpty else { return }
        e.set("\(prefix).options", options.map(\.key))
        for option in options { e.set("\(prefix).\(option.key)", option.value) }
    }
}
