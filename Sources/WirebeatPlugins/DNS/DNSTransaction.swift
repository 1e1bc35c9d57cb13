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

/// One message as seen on the wire: the message itself (parsed), and where and when it was
/// seen. A value: a response that pairs at once with its query is one on the stack, published
/// and dropped with no object (allocating, destroying and freeing one cost ~500 instructions
/// a datagram); a query that waits is kept in a `DNSObserved`.
struct DNSSeen {
    /// The parsed message; empty (`isMessage` false) when the payload is shorter than a header.
    /// Not optional, nor are the messages given to `DNSEvents`: an optional of a value this
    /// size is copied (~25 instructions a retain and release, and a `memcpy`) each time one
    /// is made from it or unwrapped.
    let message: DNSMessage
    let isMessage: Bool
    /// Size of the payload in bytes.
    let size: Int
    let time: Timestamp
    let sender: Endpoint
    let receiver: Endpoint
    /// A datagram (loss is likely what cut one short).
    let lossHint: Bool
    /// One more note after those of the parse (TCP framing trouble). The notes are made only
    /// for an event that has some (`hasNotes`): kept as an array, they cost a release a
    /// message, and an array built at each parse.
    let note: String?
    /// `note != nil`, kept: reading the optional string copied it (a retain, and a release
    /// through its type's metadata) twice a pair.
    private let hasNote: Bool

    /// `flow`: the flow it came in; `note`: one more, after those of the parse (TCP framing trouble).
    init(bytes: [UInt8], time: Timestamp, flow: ConnectionInfo, direction: Direction, lossHint: Bool, note: String? = nil) {
        self.time = time
        // As `ConnectionInfo.sender`, which is not inlined across modules.
        if direction == .original {
            sender = flow.client
            receiver = flow.server
        } else {
            sender = flow.server
            receiver = flow.client
        }
        size = bytes.count
        let parsed = bytes.count >= 12 ? try? DNSMessage.read(bytes) : nil
        self.lossHint = lossHint
        self.note = note
        hasNote = note != nil
        isMessage = parsed != nil
        message = DNSMessage(bytes: bytes, parsed: parsed ?? DNSMessage.Parsed.none)
    }

    /// There are `notes`.
    var hasNotes: Bool { !isMessage || !message.faults.isEmpty || hasNote }

    /// Notes about this message (faults, loss).
    var notes: [String] {
        var notes: [String] = []
        if isMessage {
            for fault in message.faults {
                notes.append(fault.description)
                // A datagram that ends before what it announced was most likely cut by the snap length.
                if fault.kind == .truncated && lossHint { notes.append("possible packet loss") }
            }
        } else {
            notes.append("malformed message: \(size) bytes, shorter than a DNS header")
            if lossHint && size > 0 { notes.append("possible packet loss") }
        }
        if let note { notes.append(note) }
        return notes
    }

    private init() {
        message = DNSMessage(bytes: [], parsed: .none)
        isMessage = false
        size = 0
        time = .zero
        sender = Endpoint(ip: IPAddress(v4: 0), port: 0)
        receiver = sender
        lossHint = false
        note = nil
        hasNote = false
    }

    /// What `DNSEvents` is given for a message that is not there (its flag says so).
    static let absent = DNSSeen()

    /// The parsed message's header, if any.
    var header: DNSHeader? { isMessage ? message.header : nil }
}

/// A message that waits for its partner (a query), or a TCP one.
///
/// A class: a message waits in a table for its partner and is then dropped whole, and
/// releasing one reference is far cheaper than destroying a large struct field by field
/// (which the compiler does through generic value witnesses when it sits in a dictionary
/// value tuple).
final class DNSObserved {
    let seen: DNSSeen
    /// The context it came in: its flow's info, as the sniffer describes it, from which the
    /// event of a UDP query that stays unanswered is published (a new ConnectionInfo there,
    /// with its SHA-1 and IP texts, cost ~25,000 instructions an event), and the packet's
    /// index (`sweepOrder`). The context, not a copy of the info: one reference to retain.
    let context: PluginContext
    /// Order of arrival in the plugin (UDP): kept here so that the table of waiting queries
    /// holds one reference per query, not a tuple.
    let serial: Int

    var flow: ConnectionInfo { context.connection }
    var packetIndex: Int { context.packetIndex }
    var time: Timestamp { seen.time }
    /// The parsed message's header, if any.
    var header: DNSHeader? { seen.header }

    init(_ seen: consuming DNSSeen, context: PluginContext, serial: Int = 0) {
        self.seen = seen
        self.context = context
        self.serial = serial
    }
}

/// Builds the published event of a query and its response (either may be missing).
enum DNSEvents {
    /// `known`: the info of the flow the message came in, whose VLAN tags are the event's
    /// (so are its transport and ID, as every caller has it; they are compared anyway).
    /// Of messages kept in objects (TCP, queries left unanswered): each is copied out of its
    /// object here, which the UDP pairing avoids by calling the next one.
    static func event(query: DNSObserved?, response: DNSObserved?, notes extra: [String], transport: Transport,
                      connectionID: UInt64, settings: DNSConfig, known: ConnectionInfo,
                      cache: DNSRenderCache? = nil) -> Event {
        event(query: query?.seen ?? .absent, hasQuery: query != nil, response: response?.seen ?? .absent,
              hasResponse: response != nil, notes: extra, transport: transport, connectionID: connectionID,
              settings: settings, known: known, cache: cache)
    }

    /// The event of `query` and `response`, each there when its flag says so (see `DNSSeen`:
    /// borrowed, a waiting query's from its object, a response from the stack). `cache`: the
    /// plugin's, for values written before from the same messages (see `DNSRenderCache`);
    /// `probe`: its lookup of the pair, when `cachedAnswer` made it already.
    static func event(query: borrowing DNSSeen, hasQuery: Bool, response: borrowing DNSSeen, hasResponse: Bool,
                      notes extra: [String], transport: Transport, connectionID: UInt64, settings: DNSConfig,
                      known: ConnectionInfo, cache: DNSRenderCache? = nil, probe: DNSRenderCache.Probe? = nil) -> Event {
        precondition(hasQuery || hasResponse, "an event needs a message")
        let client = hasQuery ? query.sender : response.receiver
        let server = hasQuery ? query.receiver : response.sender
        // The flow's own info (cached by the sniffer) when it describes the same tuple: a new
        // ConnectionInfo costs a SHA-1 (Community ID) and two IP texts per event. (Passed on,
        // not assigned to a local: that copied the struct, retaining its strings.)
        if known.id == connectionID, known.transport == transport, known.client == client, known.server == server {
            return event(query: query, hasQuery: hasQuery, response: response, hasResponse: hasResponse, notes: extra,
                         connection: known, settings: settings, cache: cache, probe: probe)
        }
        let connection = ConnectionInfo(id: connectionID, transport: transport, client: client, server: server,
                                        vlans: known.vlans)
        return event(query: query, hasQuery: hasQuery, response: response, hasResponse: hasResponse, notes: extra,
                     connection: connection, settings: settings, cache: cache, probe: probe)
    }

    /// A waiting UDP query's response whose values the cache has (`cachedAnswer`): the
    /// stored pair found, whether the response's RCODE is 0, and its ID.
    struct CachedAnswer {
        var probe: DNSRenderCache.Probe
        var rcodeIsZero: Bool
        var id: UInt16
    }

    /// Whether the event of a waiting UDP query and its response, not yet parsed nor copied
    /// out of the sniffer's buffer (`response`), can be made from the values the cache has
    /// of a pair whose response had no fault: nothing else of the response is needed then
    /// (see `DNSRenderCache.faultlessAnswer`), and its parse (~600 instructions), its copy and
    /// the malloc of that are saved (the event: `event(of:...)`). Nil when the event needs
    /// more: `probe` is then the lookup made here, if any, for `event` to use (a second lookup
    /// would count as a second sighting).
    static func cachedAnswer(query waiting: DNSObserved, response: UnsafeBufferPointer<UInt8>, known: ConnectionInfo,
                             settings: DNSConfig, cache: DNSRenderCache, probe: inout DNSRenderCache.Probe?) -> CachedAnswer? {
        // (Read in its object: a copy of the message retained its arrays.)
        // What `event` checks before it looks the pair up, and what only the parse would give:
        // the request's text, notes, a connection of its own.
        guard !settings.sendResponse, response.count >= 12, waiting.seen.isMessage, !waiting.seen.hasNotes,
              !waiting.seen.message.parsed.mayReadID, known.id == 0, known.transport == .udp,
              known.client == waiting.seen.sender, known.server == waiting.seen.receiver else { return nil }
        let id = UInt16(response[0]) << 8 | UInt16(response[1])
        guard id == waiting.seen.message.header.id else { return nil }
        let flags = DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true)
        let found = waiting.seen.message.bytes.withUnsafeBufferPointer { cache.probe(query: $0, response: response, flags: flags) }
        probe = found
        guard found.hit, let rcodeIsZero = cache.faultlessAnswer(found) else { return nil }
        cache.unparsedAnswers &+= 1
        return CachedAnswer(probe: found, rcodeIsZero: rcodeIsZero, id: id)
    }

    /// The lookup of a waiting UDP query's response, not yet parsed, in the cache of shapes
    /// (`DNSRenderCache`, "Shapes"): nil when the pair cannot have a shape, else the probe
    /// (its `store` for the caller to do once the response is parsed: `storeShape`).
    /// The same conditions as `cachedAnswer`'s, and neither message's text in the event.
    static func shapeProbe(query waiting: DNSObserved, response: UnsafeBufferPointer<UInt8>, known: ConnectionInfo,
                           settings: DNSConfig, shapes: DNSRenderCache) -> DNSRenderCache.Probe? {
        guard !settings.sendRequest, !settings.sendResponse, response.count >= 12, waiting.seen.isMessage,
              !waiting.seen.hasNotes, !waiting.seen.message.parsed.mayReadID, known.id == 0, known.transport == .udp,
              known.client == waiting.seen.sender, known.server == waiting.seen.receiver,
              UInt16(response[0]) << 8 | UInt16(response[1]) == waiting.seen.message.header.id else { return nil }
        return waiting.seen.message.bytes.withUnsafeBufferPointer { q -> DNSRenderCache.Probe? in
            guard q.count + response.count <= DNSRenderCache.slotBytes / 2 else { return nil }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: q.count + response.count) { key in
                guard DNSRenderCache.shapeKey(query: q, response: response, into: key.baseAddress!) else { return nil }
                return shapes.probe(query: UnsafeBufferPointer(rebasing: key[..<q.count]),
                                    response: UnsafeBufferPointer(rebasing: key[q.count...]),
                                    flags: DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true))
            }
        }
    }

    /// A hit of `shapeProbe` the event can be made from: one whose stored pair's response
    /// had no fault (every stored shape: `storeShape`), with its RCODE and ID.
    static func shapeAnswer(_ probe: DNSRenderCache.Probe, response: UnsafeBufferPointer<UInt8>,
                            shapes: DNSRenderCache) -> CachedAnswer? {
        guard probe.hit, let rcodeIsZero = shapes.faultlessAnswer(probe) else { return nil }
        shapes.unparsedAnswers &+= 1
        return CachedAnswer(probe: probe, rcodeIsZero: rcodeIsZero, id: UInt16(response[0]) << 8 | UInt16(response[1]))
    }

    /// Stores the shape of a waiting UDP query and its parsed `response` (`probe`: a
    /// `store` of `shapeProbe`), if neither has a fault and the values differ by the name only.
    static func storeShape(_ probe: DNSRenderCache.Probe, query waiting: DNSObserved, response: borrowing DNSSeen,
                           settings: DNSConfig, shapes: DNSRenderCache) {
        let q = waiting.seen.message, r = response.message
        guard response.isMessage, !response.hasNotes, !r.parsed.mayReadID,
              q.header.id == r.header.id, let a = shapeValues(query: q, response: r, settings: settings) else { return }
        // The same pair with another name, parsed again (nothing of a parse is reused).
        let otherQuery = DNSRenderCache.otherName(q.bytes), otherResponse = DNSRenderCache.otherName(r.bytes)
        guard let pq = try? DNSMessage.read(otherQuery), let pr = try? DNSMessage.read(otherResponse),
              pq.faults.isEmpty, pr.faults.isEmpty, !pq.mayReadID, !pr.mayReadID,
              let b = shapeValues(query: DNSMessage(bytes: otherQuery, parsed: pq), response: DNSMessage(bytes: otherResponse, parsed: pr),
                                  settings: settings) else { return }
        var key = q.bytes + r.bytes
        let keyed = key.withUnsafeMutableBufferPointer { k in
            q.bytes.withUnsafeBufferPointer { qb in
                r.bytes.withUnsafeBufferPointer { DNSRenderCache.shapeKey(query: qb, response: $0, into: k.baseAddress!) }
            }
        }
        guard keyed else { return }
        key.withUnsafeBufferPointer { k in
            shapes.storeShape(probe, query: UnsafeBufferPointer(rebasing: k[..<q.bytes.count]),
                              response: UnsafeBufferPointer(rebasing: k[q.bytes.count...]),
                              flags: DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true),
                              a, b, rcodeIsZero: r.rcode == 0)
        }
    }

    /// The four values of a UDP answer as `publishAnswer` writes them, each in an array of
    /// its own; nil unless the query's question is at 12.
    static func shapeValues(query q: borrowing DNSMessage, response r: borrowing DNSMessage,
                            settings: DNSConfig) -> DNSRenderCache.Values? {
        guard let question = q.firstQuestionPlace, question.start == 12 else { return nil }
        var name: [UInt8] = []
        q.bytes.withUnsafeBufferPointer { DNSName.write($0, at: 12, into: &name, json: true) }
        return name.withUnsafeBufferPointer { n in
            var dns: [UInt8] = [], method: [UInt8] = [], query: [UInt8] = [], resource: [UInt8] = []
            let id = writeDNS(query: q, hasQuery: true, response: r, hasResponse: true, question: question, questionName: n,
                              questionLength: question.nameLength, isAnswer: true, settings: settings, into: &dns)
            writeMethod(r.header, store: nil, into: &method)
            writeQuery(question, name: n, store: nil, into: &query)
            writeResource(name: n, store: nil, into: &resource)
            return DNSRenderCache.Values(dns: dns, id: id, method: method, query: query, resource: resource, name: name)
        }
    }

    /// The event of a cached answer (`cachedAnswer`) to `waiting`, whose response of
    /// `responseBytes` came at `time`. Its bytes are what `event` makes of the parsed response.
    /// `name`: the question's name as the writers print it, for a hit in a cache of shapes.
    static func event(of answer: CachedAnswer, query waiting: DNSObserved, responseBytes: Int, time: Timestamp,
                      known: ConnectionInfo, settings: DNSConfig, cache: DNSRenderCache,
                      name: UnsafeBufferPointer<UInt8> = .init(start: nil, count: 0)) -> Event {
        var e = Event.transaction(type: "dns", connection: known, start: waiting.seen.time, end: time,
                                  status: answer.rcodeIsZero ? .ok : .error, requestBytes: waiting.seen.size,
                                  responseBytes: responseBytes)
        e.set("dns", writingJSONTo: { out in cache.write(answer.probe, id: answer.id, name: name, into: &out) })
        if settings.sendRequest { e.set("request", waiting.seen.message.digText) }
        return e
    }

    private static func event(query: borrowing DNSSeen, hasQuery: Bool, response: borrowing DNSSeen, hasResponse: Bool,
                              notes extra: [String], connection: ConnectionInfo, settings: DNSConfig,
                              cache: DNSRenderCache?, probe given: DNSRenderCache.Probe?) -> Event {
        // Nearly every event has no note: no array is joined then.
        let hasNotes = (hasQuery && query.hasNotes) || (hasResponse && response.hasNotes) || !extra.isEmpty
        // Parsed messages, read where they are (`query.message`, `response.message`): a local
        // copy of either cost a retain and a release of each of its arrays.
        let hasQ = hasQuery && query.isMessage, hasR = hasResponse && response.isMessage
        let ok = !hasNotes && hasR && response.message.rcode == 0
        var e = Event.transaction(type: "dns", connection: connection, start: hasQuery ? query.time : response.time,
                                  end: hasResponse ? response.time : nil, status: ok ? .ok : .error,
                                  requestBytes: hasQuery ? query.size : nil, responseBytes: hasResponse ? response.size : nil)
        // Values written before from the same messages (but their ID) are copied.
        var probe = DNSRenderCache.Probe.none
        if hasQ || hasR {
            // (Not for a pair in which a name may read the ID, `Parsed.mayReadID`: it is never
            // stored, and none stored has its bytes, so it could never be found either.)
            if let cache, !(hasQ && hasR && query.message.header.id != response.message.header.id),
               !(hasQ && query.message.parsed.mayReadID), !(hasR && response.message.parsed.mayReadID) {
                let flags = DNSRenderCache.flags(hasQuery: hasQ, hasResponse: hasR, isAnswer: hasResponse)
                probe = given ?? withMessageBytes(query.message, hasQ, response.message, hasR) { q, r in
                    cache.probe(query: q, response: r, flags: flags)
                }
                if probe.hit {
                    let id = hasR ? response.message.header.id : query.message.header.id
                    e.set("dns", writingJSONTo: { out in cache.write(probe, id: id, into: &out) })
                } else if probe.store {
                    withMessageBytes(query.message, hasQ, response.message, hasR) { q, r in
                        cache.begin(probe, query: q, response: r, flags: flags,
                                    faultlessAnswer: hasR && response.message.faults.isEmpty,
                                    rcodeIsZero: hasR && response.message.rcode == 0)
                    }
                }
            }
        }
        if (hasQ || hasR) && !probe.hit {
            let question = hasQ ? query.message.firstQuestionPlace : response.message.firstQuestionPlace
            // The question's name (the inside of its JSON string) is printed three times: made
            // once, on the stack. Room for the longest text: 255 octets at most in the message
            // (checked when parsed), each printed as 5 bytes at most (`\\DDD`).
            let length = question?.nameLength   // found once: `writeDNS` needs it too
            let room = question == nil ? 1 : 5 * (length ?? 255)
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { buffer in
                var text = DNSTextBuffer(buffer)
                if let question {
                    // (Not through a ternary of the messages: that copied one.)
                    if hasQ {
                        query.message.bytes.withUnsafeBufferPointer { DNSName.write($0, at: question.start, into: &text, json: true) }
                    } else {
                        response.message.bytes.withUnsafeBufferPointer {
                            DNSName.write($0, at: question.start, into: &text, json: true)
                        }
                    }
                }
                setValues(query: query.message, hasQuery: hasQ, response: response.message, hasResponse: hasR,
                          question: question, questionName: text.text, questionLength: length, isAnswer: hasResponse,
                          settings: settings, store: probe.store ? cache : nil, in: &e)
            }
        }
        if settings.sendRequest && hasQ { e.set("request", query.message.digText) }
        if settings.sendResponse && hasR { e.set("response", response.message.digText) }
        if hasNotes {
            var message: String?
            for notes in [hasQuery ? query.notes : [], hasResponse ? response.notes : [], extra] {
                for note in notes { Event.addNote(note, to: &message) }
            }
            if let message { e.set("error.message", message) }
        }
        return e
    }

    /// `dns`, `method`, `query` and `resource` of the parsed messages `q` and `r`, each there
    /// when its flag says so, one at least (`questionName`: the question's name as written in
    /// a JSON string; `questionLength`: its `uncompressedLength`; `isAnswer`: there is a
    /// response, parsed or not).
    private static func setValues(query q: borrowing DNSMessage, hasQuery hasQ: Bool, response r: borrowing DNSMessage,
                                  hasResponse hasR: Bool, question: DNSQuestionPlace?, questionName name: UnsafeBufferPointer<UInt8>,
                                  questionLength: Int?, isAnswer: Bool, settings: DNSConfig, store: DNSRenderCache?,
                                  in e: inout Event) {
        // The whole `dns` object as one value, members in key order: the event prints it
        // where its members would go (it nests dotted names into objects, and nothing else
        // sets `dns.*`), and one value costs far less to set than a dozen.
        // The four values in one call (`nextValue`): a call each cost ~150 instructions more.
        // (In the order a line has them, as a flow's template writes them: `DNSFlowLines`.)
        e.set("dns", writingJSONTo: { out in
            writeDNSValue(query: q, hasQuery: hasQ, response: r, hasResponse: hasR, question: question,
                          questionName: name, questionLength: questionLength, isAnswer: isAnswer, settings: settings,
                          store: store, into: &out)
            out.nextValue("method")
            writeMethod(hasR ? r.header : q.header, store: store, into: &out)
            guard let question else {
                store?.finish()
                return
            }
            out.nextValue("query")
            writeQuery(question, name: name, store: store, into: &out)
            out.nextValue("resource")
            writeResource(name: name, store: store, into: &out)
        })
    }

    /// The value of `dns` (see `writeDNS`), its text given to `store` (the cache's pair being stored).
    static func writeDNSValue<Out: DNSValueOutput>(query q: borrowing DNSMessage, hasQuery hasQ: Bool,
                                                   response r: borrowing DNSMessage, hasResponse hasR: Bool,
                                                   question: DNSQuestionPlace?, questionName name: UnsafeBufferPointer<UInt8>,
                                                   questionLength: Int?, isAnswer: Bool, settings: DNSConfig,
                                                   store: DNSRenderCache?, into out: inout Out) {
        let id = writeDNS(query: q, hasQuery: hasQ, response: r, hasResponse: hasR, question: question,
                          questionName: name, questionLength: questionLength, isAnswer: isAnswer, settings: settings,
                          into: &out)
        if let store {
            out.withValueBytes { text in
                store.add(.beforeID, UnsafeBufferPointer(rebasing: text[..<id.lowerBound]))
                store.add(.afterID, UnsafeBufferPointer(rebasing: text[id.upperBound...]))
            }
        }
    }

    /// The value of `method`, from the header `h` (the response's, else the query's).
    @inline(__always) static func writeMethod<Out: DNSValueOutput>(_ h: DNSHeader, store: DNSRenderCache?, into out: inout Out) {
        DNSEncoded.writeOpcode(h.opcode, into: &out)
        if let store { out.withValueBytes { store.add(.method, $0) } }
    }

    /// The value of `query`: "class IN, type A, example.test".
    @inline(__always) static func writeQuery<Out: DNSValueOutput>(_ question: DNSQuestionPlace, name: UnsafeBufferPointer<UInt8>,
                                                                  store: DNSRenderCache?, into out: inout Out) {
        DNSEncoded.writeQueryStart(qclass: question.qclass, type: question.type, into: &out)
        out.append(name)
        out.append(DNSJSON.quote)
        if let store { out.withValueBytes { store.add(.query, $0) } }
    }

    /// The value of `resource`, the question's name; the last of a stored pair's values.
    @inline(__always) static func writeResource<Out: DNSValueOutput>(name: UnsafeBufferPointer<UInt8>, store: DNSRenderCache?,
                                                                     into out: inout Out) {
        out.append(DNSJSON.quote)
        out.append(name)
        out.append(DNSJSON.quote)
        if let store {
            out.withValueBytes { store.add(.resource, $0) }
            store.finish()
        }
    }

    /// The bytes of the two messages, empty for one that is not there (the key of `DNSRenderCache`).
    private static func withMessageBytes<R>(_ q: borrowing DNSMessage, _ hasQ: Bool, _ r: borrowing DNSMessage, _ hasR: Bool,
                                            _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> R) -> R {
        let none = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
        return q.bytes.withUnsafeBufferPointer { qb in
            r.bytes.withUnsafeBufferPointer { rb in body(hasQ ? qb : none, hasR ? rb : none) }
        }
    }

    /// Appends the `dns` object of an event (of the response, else of the query; the rest as
    /// `setValues`). Returns where the ID's digits are in it.
    private static func writeDNS<Out: DNSJSONOutput>(query q: borrowing DNSMessage, hasQuery hasQ: Bool,
                                                     response r: borrowing DNSMessage, hasResponse hasR: Bool,
                                                     question: DNSQuestionPlace?, questionName: UnsafeBufferPointer<UInt8>,
                                                     questionLength: Int?, isAnswer: Bool, settings: DNSConfig,
                                                     into json: inout Out) -> Range<Int> {
        let h = hasR ? r.header : q.header
        // Where the answers' addresses are in `json`: `resolved_ip` lists them again.
        var addresses = AddressRanges()
        let object = json.count
        if hasR {
            // Answers mostly name the question by a pointer to it: its text is reused when the
            // response's question name has the same bytes as the one in `questionName`.
            var nameAt12: UnsafeBufferPointer<UInt8>? = nil
            // (The question is the query's, else the response's own.)
            if let question, question.start == 12, let questionLength,
               !hasQ || DNSName.sameBytes(q.bytes, r.bytes, at: 12, length: questionLength) {
                nameAt12 = questionName
            }
            var ignored = AddressRanges()
            if settings.includeAdditionals {
                json.append(UInt8(ascii: "{"))
                writeRecords(#""additionals":["#, r, r.additionalSection, skipOPT: true, object: object, nameAt12: nameAt12,
                             addresses: &ignored, into: &json)
                DNSJSON.raw(json.count > object + 1 ? #","additionals_count":"# : #""additionals_count":"#, into: &json)
            } else {
                // Literals in as few pieces as can be: each append costs about as much as a short one.
                DNSJSON.raw(#"{"additionals_count":"#, into: &json)
            }
            DNSJSON.int(UInt32(r.header.additionalCount), into: &json)
            writeRecords(#""answers":["#, r, r.answerSection, skipOPT: false, object: object, nameAt12: nameAt12,
                         addresses: &addresses, into: &json)
            DNSJSON.raw(#","answers_count":"#, into: &json)
            DNSJSON.int(UInt32(r.header.answerCount), into: &json)
            if settings.includeAuthorities {
                writeRecords(#""authorities":["#, r, r.authoritySection, skipOPT: false, object: object, nameAt12: nameAt12,
                             addresses: &ignored, into: &json)
            }
            DNSJSON.raw(#","authorities_count":"#, into: &json)
            DNSJSON.int(UInt32(r.header.authorityCount), into: &json)
        } else {
            json.append(UInt8(ascii: "{"))
        }
        // `flags` and `header_flags` are pre-built, with the keys around them. (The common
        // values below are written with their keys: each append costs about as much as a
        // short literal.)
        // The response's OPT, else the query's.
        let dnssecOK = (hasR ? r.edns?.dnssecOK : q.edns?.dnssecOK) == true
        DNSEncoded.writeFlagMembers(h, dnssecOK: dnssecOK, comma: hasR, into: &json)
        let idStart = json.count
        DNSJSON.int(UInt32(h.id), into: &json)
        let id = idStart..<json.count
        if h.opcode == 0 {
            DNSJSON.raw(#","op_code":"QUERY""#, into: &json)
        } else {
            DNSJSON.raw(#","op_code":"#, into: &json)
            DNSEncoded.writeOpcode(h.opcode, into: &json)
        }
        if let edns = hasR ? r.edns : q.edns {
            DNSJSON.raw(#","opt":"#, into: &json)
            writeOpt(edns, extendedRcode: true, into: &json)
        }
        if hasR && hasQ, let edns = q.edns {
            // What the client asked for (the response's OPT is in dns.opt).
            DNSJSON.raw(#","query_opt":"#, into: &json)
            writeOpt(edns, extendedRcode: false, into: &json)
        }
        if let question {
            // Keys in byte order: class, name, type.
            if question.qclass == 1 {
                DNSJSON.raw(#","question":{"class":"IN","name":""#, into: &json)
            } else {
                DNSJSON.raw(#","question":{"class":"#, into: &json)
                DNSEncoded.writeClass(question.qclass, into: &json)
                DNSJSON.raw(#","name":""#, into: &json)
            }
            json.append(questionName)
            DNSEncoded.writeQuestionEnd(type: question.type, into: &json)
        }
        if hasR {
            // The addresses among the answers, as a JSON array of strings: their text is
            // already in `json`.
            if let first = addresses.first {
                DNSJSON.raw(#","resolved_ip":["#, into: &json)
                json.appendCopy(of: first)
                for range in addresses.rest {
                    json.append(UInt8(ascii: ","))
                    json.appendCopy(of: range)
                }
                json.append(UInt8(ascii: "]"))
            }
            if r.rcode == 0 {
                DNSJSON.raw(#","response_code":"NOERROR","type":"answer"}"#, into: &json)
                return id
            }
            DNSJSON.raw(#","response_code":"#, into: &json)
            DNSEncoded.writeRcode(r.rcode, into: &json)
        }
        DNSJSON.raw(isAnswer ? #","type":"answer"}"# : #","type":"query"}"#, into: &json)
        return id
    }

    /// Ranges of the JSON being written where the answers' addresses are: the first one
    /// without an array (an array cost an allocation in most events).
    struct AddressRanges {
        private(set) var first: Range<Int>?
        private(set) var rest: [Range<Int>] = []

        mutating func append(_ range: Range<Int>) {
            if first == nil { first = range } else { rest.append(range) }
        }
    }

    /// `"key":[records]`, after a comma unless it is the first member of the object that
    /// starts at `json[object]`; nothing when the section has no records.
    /// `addresses` gets where the JSON strings of A and AAAA data are.
    private static func writeRecords<Out: DNSJSONOutput>(_ key: StaticString, _ m: borrowing DNSMessage, _ section: DNSSection,
                                                         skipOPT: Bool, object: Int, nameAt12: UnsafeBufferPointer<UInt8>?,
                                                         addresses: inout AddressRanges, into json: inout Out) {
        guard section.count > 0 else { return }
        var first = true
        m.bytes.withUnsafeBufferPointer { b in
            // The records where they are (`parse` checked them), each written from a view of its RDATA.
            var p = section.start
            for _ in 0..<section.count {
                let rr = DNSMessage.RecordSpan(checkedAt: p, in: b)
                p = rr.end
                if skipOPT && rr.type == DNSType.OPT { continue }
                if first {
                    if json.count > object + 1 { json.append(UInt8(ascii: ",")) }
                    DNSJSON.raw(key, into: &json)
                } else {
                    json.append(UInt8(ascii: ","))
                }
                first = false
                let rdata = rr.rdata
                if m.dataDecodes, let place = RDataPlace.read(b, type: rr.type, start: rdata.lowerBound, end: rdata.upperBound) {
                    let range = DNSRecord.writeJSON(b, owner: rr.owner, rclass: rr.rclass(in: b), ttl: rr.ttl(in: b),
                                                    type: rr.type, data: place, other: nil, nameAt12: nameAt12, into: &json)
                    if case .address = place { addresses.append(range) }
                } else {
                    let data = m.dataView(of: rr, in: b)
                    let range = DNSRecord.writeJSON(b, owner: rr.owner, rclass: rr.rclass(in: b), ttl: rr.ttl(in: b),
                                                    type: rr.type, data: data, nameAt12: nameAt12, into: &json)
                    if case .place(.address) = data { addresses.append(range) }
                }
            }
        }
        if !first { json.append(UInt8(ascii: "]")) }
    }

    /// `dns.opt` / `dns.query_opt`: the OPT record's fields, each option with a value under
    /// its name, and `options`, every option's name in order. Rare: built from a list of
    /// members sorted by key, as the event would sort them as separate fields.
    private static func writeOpt<Out: DNSJSONOutput>(_ edns: EDNS, extendedRcode: Bool, into json: inout Out) {
        var members: [(key: String, value: [UInt8])] = []
        func add(_ key: String, _ value: JSONValue) {
            var text: [UInt8] = []
            value.writeJSON(into: &text)
            members.append((key, text))
        }
        add("version", .int(Int64(edns.version)))
        add("do", .bool(edns.dnssecOK))
        add("udp_size", .int(Int64(edns.udpSize)))
        if extendedRcode { add("ext_rcode", .string(DNSCodes.rcode(Int(edns.extendedRcode) << 4))) }
        let options = edns.decodedOptions
        if !options.isEmpty {
            add("options", .array(options.map { .string($0.key) }))
            // Of an option given twice the last counts; one without a value removes the field.
            for option in options {
                members.removeAll { $0.key == option.key }
                if let value = option.value { add(option.key, value) }
            }
        }
        members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        json.append(UInt8(ascii: "{"))
        for (i, member) in members.enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            DNSJSON.string(member.key, into: &json)
            json.append(UInt8(ascii: ":"))
            json.append(member.value)
        }
        json.append(UInt8(ascii: "}"))
    }
}

// MARK: Lines from a flow's template

extension DNSEvents {
    /// The holes of a UDP answer's line in its flow's template (`publishAnswer`): its times
    /// and byte counts, and the four values the plugin writes for each line. What is left is
    /// the flow's (addresses, ports, Community ID), the type's and the status.
    static let flowHoles: [EventTemplate.Hole] = [
        .init("@timestamp", .start), .init("event.start", .start), .init("event.end", .end),
        .init("event.duration", .duration), .init("client.bytes", .requestBytes), .init("source.bytes", .requestBytes),
        .init("destination.bytes", .responseBytes), .init("server.bytes", .responseBytes),
        .init("network.bytes", .bytes), .value(of: "dns", number: 0), .value(of: "method", number: 1),
        .value(of: "query", number: 2), .value(of: "resource", number: 3),
    ]

    /// A flow's template is made from its 64th plain answer (counted while its entry stays in
    /// its set): making one costs ~56,000 instructions (five events' worth), which a flow of a
    /// few answers (a stub's A and AAAA from one socket; most stubs take a new port for each
    /// query) would never win back. Each answer after it saves ~1,000 instructions: a flow
    /// of 64 answers pays ~8% more for them, one of 120 or more comes out ahead.
    static let flowTemplateSightings: UInt32 = 64

    /// The keys of flow templates in `DNSAnswerTemplates` (no pair's slot is near as large):
    /// answers of status OK and Error have a template each.
    static let flowSlotOK = Int.max, flowSlotError = Int.max - 1

    /// Publishes the event of a waiting UDP query and its parsed response (`probe`: the
    /// cache's lookup of the pair, if made already). When both are plain messages (no note,
    /// a question, the flow's own connection, neither message's text asked for), the event
    /// has the same fields as every other such answer of its flow, and once the flow has had
    /// many (`flowTemplateSightings`), the line is written from the flow's template
    /// (`templates`), the four DNS values straight into it: no event built, set and laid out
    /// (~1,000 instructions of a pair's ~11,000, in traffic whose names never repeat). Any
    /// other answer is an event, as before.
    static func publishAnswer(query waiting: DNSObserved, response: borrowing DNSSeen, probe given: DNSRenderCache.Probe?,
                              settings: DNSConfig, cache: DNSRenderCache?, templates: DNSAnswerTemplates?,
                              context: PluginContext) {
        // (`context.connection` each time, not in a local: a copy retained its strings.)
        guard let templates, !settings.sendRequest, !settings.sendResponse, waiting.seen.isMessage, response.isMessage,
              !waiting.seen.hasNotes, !response.hasNotes, context.connection.id == 0, context.connection.transport == .udp,
              context.connection.client == waiting.seen.sender, context.connection.server == waiting.seen.receiver,
              let question = waiting.seen.message.firstQuestionPlace else {
            return context.publish(event(query: waiting.seen, hasQuery: true, response: response, hasResponse: true,
                                         notes: [], transport: .udp, connectionID: 0, settings: settings,
                                         known: context.connection, cache: cache, probe: given))
        }
        // The lookup `event` would make, made once for both ways.
        var probe = DNSRenderCache.Probe.none
        if let cache, waiting.seen.message.header.id == response.message.header.id,
           !waiting.seen.message.parsed.mayReadID, !response.message.parsed.mayReadID {
            let flags = DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true)
            probe = given ?? withMessageBytes(waiting.seen.message, true, response.message, true) { q, r in
                cache.probe(query: q, response: r, flags: flags)
            }
        }
        let slot = response.message.rcode == 0 ? flowSlotOK : flowSlotError
        let values = EventTemplate.Values(start: waiting.seen.time, end: response.time,
                                          requestBytes: Int64(waiting.seen.size), responseBytes: Int64(response.size))
        let flow = context.connection.flowIdentity
        // A hit's values are the cache's: an event (rare here: most hits take `cachedAnswer`'s way).
        guard !probe.hit, let template = templates.template(slot: slot, generation: 0, flow: flow) else {
            let e = event(query: waiting.seen, hasQuery: true, response: response, hasResponse: true, notes: [],
                          transport: .udp, connectionID: 0, settings: settings, known: context.connection,
                          cache: cache, probe: probe)
            if !probe.hit {
                templates.saw(e, slot: slot, generation: 0, holes: { flowHoles }, values: values, flow: flow,
                              sightings: flowTemplateSightings)
            }
            return context.publish(consume e)
        }
        let store = probe.store ? cache : nil
        // The question's name as `event` writes it (see there), on the stack.
        let length = question.nameLength
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 5 * (length ?? 255)) { buffer in
            var text = DNSTextBuffer(buffer)
            waiting.seen.message.bytes.withUnsafeBufferPointer { DNSName.write($0, at: question.start, into: &text, json: true) }
            let name = text.text
            template._withUnsafeGuaranteedRef { template in
                context.publisher.publish(template, values, fields: { number, out in
                    switch number {
                    case 0:
                        if let store {
                            withMessageBytes(waiting.seen.message, true, response.message, true) { q, r in
                                store.begin(probe, query: q, response: r, flags: DNSRenderCache.flags(hasQuery: true, hasResponse: true, isAnswer: true),
                                            faultlessAnswer: response.message.faults.isEmpty, rcodeIsZero: response.message.rcode == 0)
                            }
                        }
                        writeDNSValue(query: waiting.seen.message, hasQuery: true, response: response.message, hasResponse: true,
                                      question: question, questionName: name, questionLength: length, isAnswer: true,
                                      settings: settings, store: store, into: &out)
                    case 1: writeMethod(response.message.header, store: store, into: &out)
                    case 2: writeQuery(question, name: name, store: store, into: &out)
                    default: writeResource(name: name, store: store, into: &out)
                    }
                }, build: {
                    event(query: waiting.seen, hasQuery: true, response: response, hasResponse: true, notes: [],
                          transport: .udp, connectionID: 0, settings: settings, known: context.connection,
                          cache: cache, probe: probe)
                })
            }
        }
    }
}
