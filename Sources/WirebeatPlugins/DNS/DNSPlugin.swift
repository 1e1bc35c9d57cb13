import WirebeatCore

/// DNS over UDP and over TCP (2-byte length framing, RFC 1035 §4.2.2 / RFC 7766).
///
/// A query and its response are paired by message ID within (client endpoint, server
/// endpoint, transport) and published as one `type: dns` event at the query's time.
/// Queries without a response are published at `transaction_timeout` (UDP, packet clock),
/// when the connection ends (TCP) or at the end of input, with a note.
public final class DNSPlugin: TCPProtocolPlugin, UDPProtocolPlugin {
    public static let name = "dns"
    public static let defaultPorts: [UInt16] = [53]

    let settings: DNSConfig
    public var connectionTimeout: TimeSpan { settings.transactionTimeout }
    /// A UDP flow's queries wait at most this long; its answered responses, less.
    public var flowStateLifetime: TimeSpan? { settings.transactionTimeout }

    /// Most UDP queries kept waiting at once; beyond it the oldest is published early. (In a
    /// parallel replay each worker has its own plugin and so its own limit: a capture with
    /// this many unanswered queries at once may then come out differently.)
    static let maxPendingUDP = 100_000

    public convenience init(config: PluginConfig) throws { try self.init(config: config, cachesRenderedValues: true) }

    /// `cachesRenderedValues`: false only to check, in tests, that the cache changes nothing.
    init(config: PluginConfig, cachesRenderedValues: Bool) throws {
        rendered = cachesRenderedValues ? DNSRenderCache(fingerprintSeed: fingerprintSeed) : nil
        renderedRef = rendered.map { Unmanaged.passUnretained($0) }
        shapes = cachesRenderedValues ? DNSRenderCache(fingerprintSeed: fingerprintSeed, masksQuestionName: true) : nil
        shapesRef = shapes.map { Unmanaged.passUnretained($0) }
        var s = DNSConfig()
        s.sendRequest = try config.bool("send_request", default: s.sendRequest)
        s.sendResponse = try config.bool("send_response", default: s.sendResponse)
        s.includeAuthorities = try config.bool("include_authorities", default: s.includeAuthorities)
        s.includeAdditionals = try config.bool("include_additionals", default: s.includeAdditionals)
        s.transactionTimeout = try config.duration("transaction_timeout", default: s.transactionTimeout)
        settings = s
        // `send_request` puts the query's text, ID included, in every answer: not a template's.
        answerTemplates = cachesRenderedValues && !s.sendRequest ? DNSAnswerTemplates() : nil
        answerTemplatesRef = answerTemplates.map { Unmanaged.passUnretained($0) }
        // Neither message's text in the event: the same fields in every answer of a flow.
        flowTemplates = cachesRenderedValues && !s.sendRequest && !s.sendResponse ? DNSAnswerTemplates() : nil
        flowTemplatesRef = flowTemplates.map { Unmanaged.passUnretained($0) }
    }

    // MARK: TCP

    public struct ConnectionState {
        /// Queries waiting for their response, in arrival order.
        var pending: [DNSObserved] = []
        /// Per direction: framing is lost (after a gap or a bad length) until a whole, clean
        /// message is found again.
        var lost = [false, false]
        /// A gap happened: what cannot be paired may be its victim.
        var hadGap = false
    }

    public func makeConnectionState(for connection: ConnectionInfo) -> ConnectionState { ConnectionState() }

    public func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout ConnectionState,
                      context: PluginContext) {
        while true {
            if state.lost[direction.rawValue] {
                guard DNSPlugin.resync(&stream) else { return }
                context.logger.debug("dns: \(direction) framing found again")
                state.lost[direction.rawValue] = false
            }
            guard let b0 = stream.byte(at: 0), let b1 = stream.byte(at: 1) else { return }
            let length = Int(b0) << 8 | Int(b1)
            if length < 12 {
                // Not a DNS message: the framing cannot be trusted from here.
                let bytes = Array(stream.readBytes(min(length + 2, stream.readableBytes))!.dropFirst(2))
                context.logger.debug("dns: \(direction) frame of \(length) bytes; resynchronising")
                let observed = observe(bytes, direction, context, lossHint: false, note: "bad TCP frame length \(length)")
                tcpMessage(observed, state: &state, context: context)
                state.lost[direction.rawValue] = true
                continue
            }
            guard stream.readableBytes >= 2 + length else { return }
            stream.skip(2)
            let bytes = Array(stream.readBytes(length)!)
            tcpMessage(observe(bytes, direction, context, lossHint: false), state: &state, context: context)
        }
    }

    private func observe(_ bytes: [UInt8], _ direction: Direction, _ context: PluginContext, lossHint: Bool,
                         note: String? = nil) -> DNSObserved {
        DNSObserved(DNSSeen(bytes: bytes, time: context.timestamp, flow: context.connection, direction: direction,
                            lossHint: lossHint, note: note),
                    context: context)
    }

    private func publish(_ context: PluginContext, query: DNSObserved?, response: DNSObserved?, notes: [String]) {
        context.publish(DNSEvents.event(query: query, response: response, notes: notes,
                                        transport: context.connection.transport, connectionID: context.connection.id,
                                        settings: settings, known: context.connection, cache: rendered))
    }

    private func tcpMessage(_ m: DNSObserved, state: inout ConnectionState, context: PluginContext) {
        guard let header = m.header else {
            publish(context, query: m, response: nil, notes: [])
            return
        }
        if !header.isResponse {
            if let old = state.pending.firstIndex(where: { $0.header?.id == header.id && $0.seen.sender == m.seen.sender }) {
                let previous = state.pending.remove(at: old)
                publish(context, query: previous, response: nil, notes: [DNSPlugin.duplicateIDNote])
            }
            state.pending.append(m)
            return
        }
        if let i = state.pending.firstIndex(where: { $0.header?.id == header.id && $0.seen.sender == m.seen.receiver }) {
            let query = state.pending.remove(at: i)
            publish(context, query: query, response: m, notes: [])
        } else {
            publish(context, query: nil, response: m, notes: ["unmatched response"] + (state.hadGap ? ["packet loss"] : []))
        }
    }

    public func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) -> GapDecision {
        // The bytes before the hole are part of a message that can never be completed, and the
        // bytes after it may start anywhere: look for a message boundary again.
        context.logger.debug("dns: \(byteCount) bytes lost (\(direction)); \(stream.readableBytes) buffered bytes dropped")
        stream.removeAll()
        state.lost[direction.rawValue] = true
        state.hadGap = true
        return .keepState
    }

    public func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) {
        guard !state.lost[direction.rawValue], stream.readableBytes >= 14 else {
            stream.removeAll()
            return
        }
        // A message cut short by the end of the stream: publish what it says, with a note.
        stream.skip(2)
        let bytes = Array(stream.readBytes(stream.readableBytes)!)
        let observed = observe(bytes, direction, context, lossHint: false, note: "stream ended inside a message")
        tcpMessage(observed, state: &state, context: context)
    }

    public func connectionClosed(reason: CloseReason, state: inout ConnectionState, context: PluginContext) {
        for query in state.pending {
            publish(context, query: query, response: nil, notes: ["no response"] + (state.hadGap ? ["packet loss"] : []))
        }
        state.pending.removeAll()
    }

    static let duplicateIDNote = "another query with the same ID was received before a response"

    /// Drops bytes until the stream starts with a length prefix and a whole message that
    /// parses cleanly and looks like DNS. Returns false when more bytes are needed.
    static func resync(_ stream: inout StreamBuffer) -> Bool {
        while stream.readableBytes >= 2 {
            let length = Int(stream.byte(at: 0)!) << 8 | Int(stream.byte(at: 1)!)
            if length >= 17 {
                guard stream.readableBytes >= 14 else { return false }
                if plausibleHeader(stream, length: length) {
                    guard stream.readableBytes >= 2 + length else { return false }
                    let bytes = Array(stream.readable.dropFirst(2).prefix(length))
                    if let m = try? DNSMessage.parse(bytes), m.faults.isEmpty { return true }
                }
            }
            stream.skip(1)
        }
        return false
    }

    private static func plausibleHeader(_ s: StreamBuffer, length: Int) -> Bool {
        func u16(_ i: Int) -> Int { Int(s.byte(at: i)!) << 8 | Int(s.byte(at: i + 1)!) }
        let flags = u16(4)
        let opcode = flags >> 11 & 0xF
        guard [0, 4, 5].contains(opcode), flags & 0x0040 == 0, flags & 0xF <= 10, u16(6) == 1 else { return false }
        return u16(8) + u16(10) + u16(12) <= (length - 17) / 11
    }

    // MARK: UDP

    struct UDPKey: Hashable {
        var client: Endpoint
        var server: Endpoint
        var id: UInt16
        var vlans: VLANTags
        /// A seeded hash of the fields, computed once when the key is made: the table hashes
        /// it with a multiply and a shift (`_rawHashValue`). SipHash (`Hasher`) cost ~300
        /// instructions a lookup.
        let hash: UInt64

        /// `seed`: random per plugin, so that keys cannot be crafted to share a bucket.
        init(client: Endpoint, server: Endpoint, id: UInt16, vlans: VLANTags, seed: UInt64) {
            self.client = client
            self.server = server
            self.id = id
            self.vlans = vlans
            // The fields folded into one word, then mixed with the seed (every bit of the
            // result depends on every bit of both).
            let folded = Endpoint.foldedHash(client, server, vlans: vlans) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(id)
            hash = UInt64(bitPattern: Int64(Endpoint.tableHash(folded, seed: Int(truncatingIfNeeded: seed))))
        }

        static func == (a: UDPKey, b: UDPKey) -> Bool {
            a.hash == b.hash && a.id == b.id && a.client == b.client && a.server == b.server && a.vlans == b.vlans
        }

        func hash(into h: inout Hasher) { h.combine(hash) }

        /// What Dictionary calls (a Hashable requirement; by default it runs `hash(into:)`
        /// through SipHash). `seed` is the table's own: mixed in, so that moving entries to
        /// a table of another size does not pile them into a few buckets.
        func _rawHashValue(seed: Int) -> Int { Endpoint.tableHash(hash, seed: seed) }
    }

    // `@exclusivity(unchecked)`: pairing state touched on the pipeline's one thread, never
    // through overlapping inout accesses; the run-time check cost ~470 instructions a pair.
    /// Queries waiting for their response (`serial` orders them, `packetIndex` publishes the
    /// unanswered ones in order as `sweepOrder`).
    private let udpWaiting = WaitingQueries()
    /// Responses just paired, kept for `duplicateWindow` to recognise a repeated datagram:
    /// by their key's 64-bit seeded hash, with a fingerprint of the bytes (not the key and
    /// the bytes). At tens of thousands of responses a second an entry is what memory grows
    /// with: ~24 bytes here against ~90 with the whole key (see `RecentResponses`); a false
    /// match needs two 64-bit collisions.
    private let udpAnswered = RecentResponses()
    /// Values of recent events, for events of the same messages again (UDP and TCP alike).
    let rendered: DNSRenderCache?
    /// `rendered`, reached for every response without a retain and a release (`rendered`
    /// holds it for the plugin's life).
    private let renderedRef: Unmanaged<DNSRenderCache>?
    /// Values of recent pairs by their shape: their bytes but the ID and the question's name
    /// (`DNSRenderCache`, "Shapes"), for answers the first cache does not have.
    let shapes: DNSRenderCache?
    private let shapesRef: Unmanaged<DNSRenderCache>?
    /// Templates of the events of cached answers, by pair and flow (UDP).
    let answerTemplates: DNSAnswerTemplates?
    private let answerTemplatesRef: Unmanaged<DNSAnswerTemplates>?
    /// Templates of the lines of other answers, by flow (UDP: `DNSEvents.publishAnswer`).
    let flowTemplates: DNSAnswerTemplates?
    private let flowTemplatesRef: Unmanaged<DNSAnswerTemplates>?

    /// How long a paired response is remembered. A duplicated datagram follows its original
    /// within milliseconds; a window as long as `transaction_timeout` only made memory grow
    /// with the query rate (a later copy is still published, as "unmatched response").
    static let duplicateWindow = TimeSpan.seconds(1)
    @exclusivity(unchecked) private var serial = 0
    /// Bytes' buffers of published messages, for the next datagrams (`bytes(of:)`). As many
    /// as a burst of queries takes: with 32, a third of the bench's queries found none and
    /// shared the sniffer's buffer, which then made a new one for the next datagram (~330
    /// instructions and a malloc each). Only small ones are kept: 512 of at most 2 KB.
    @exclusivity(unchecked) private var spareBuffers: [[UInt8]] = []
    static let maxSpareBuffers = 512
    static let maxSpareBufferCapacity = 2048

    /// Seeds of `fingerprint` and of `UDPKey.hash`, random per plugin (as `Hasher`'s is per
    /// process): a response cannot be crafted to pass for a copy of another, nor keys to collide.
    private let fingerprintSeed = UInt64.random(in: .min ... .max)
    private let keySeed = UInt64.random(in: .min ... .max)

    /// A seeded 64-bit hash of a response's bytes and length (`DNSBytesHash`): SipHash
    /// (`Hasher`) cost ~500 instructions a response, for a value only ever compared with
    /// another response's.
    @inline(__always) static func fingerprint(_ bytes: [UInt8], seed: UInt64) -> Int {
        bytes.withUnsafeBufferPointer { fingerprint($0, seed: seed) }
    }

    @inline(__always) static func fingerprint(_ b: UnsafeBufferPointer<UInt8>, seed: UInt64) -> Int {
        let id = b.count >= 2 ? UInt16(b[0]) << 8 | UInt16(b[1]) : 0
        return DNSBytesHash.fingerprint(tail: DNSBytesHash.tail(b, seed: seed), id: id)
    }

    public func parseDatagram(_ payload: Span<UInt8>, direction: Direction, context: PluginContext) {
        serial += 1
        let isResponse = payload.count >= 12 && payload[2] & 0x80 != 0
        // A response to a waiting query may need no parse (see `DNSEvents.cachedAnswer` and
        // `shapeAnswer`); not while both caches sample traffic that repeats neither way (the
        // way there costs ~150 instructions more than the usual one when the pair is not found).
        if isResponse, let renderedRef, let shapesRef,
           renderedRef._withUnsafeGuaranteedRef({ $0.nextProbeLooksUp }) || shapesRef._withUnsafeGuaranteedRef({ $0.nextProbeLooksUp }),
           renderedRef._withUnsafeGuaranteedRef({ cache in
               shapesRef._withUnsafeGuaranteedRef { shapes in
                   payload.withUnsafeBufferPointer { pairCached($0, direction: direction, context: context, cache: cache, shapes: shapes) }
               }
           }) {
            return
        }
        // On the stack: only a query that waits becomes an object.
        // The payload is only lent for the call: its bytes are copied into a spare buffer, if
        // any (`bytes(of:)`).
        let m = DNSSeen(bytes: payload.withUnsafeBufferPointer { bytes(of: $0) }, time: context.timestamp,
                        flow: context.connection, direction: direction, lossHint: true)
        guard let header = m.header else {
            if direction == .original {
                publishUDP(m, true, .absent, false, [], context)
            } else {
                publishUDP(.absent, false, m, true, [], context)
            }
            return
        }
        let vlans = context.connection.vlans
        if !header.isResponse {
            let key = UDPKey(client: m.sender, server: m.receiver, id: header.id, vlans: vlans, seed: keySeed)
            // Moved into its object (`m` is not used after), made in the call: one in a local,
            // even handed over with `consume`, was retained for the table.
            // One lookup stores the query and finds a previous one with the same key; a new
            // waiting query may overflow the table: the oldest one (never this one) makes room.
            if let old = udpWaiting.updateValue(DNSObserved(consume m, context: context, serial: serial), forKey: key) {
                publishUDP(old.seen, true, .absent, false, [DNSPlugin.duplicateIDNote], context)
            } else if udpWaiting.count > DNSPlugin.maxPendingUDP, let oldest = oldestWaiting() {
                removeWaiting(oldest.key)
                publishUDP(oldest.query.seen, true, .absent, false, ["no response", "too many queries waiting"], context)
            }
            // A response paired before with this key is no longer looked for once this query
            // waits. While it waits, a response with its key finds it first (the record is never
            // read); paired, it replaces the record: the record is dropped only when the query
            // leaves unpaired (`removeWaiting`). Dropped here, it cost a lookup per query.
            return
        }
        let key = UDPKey(client: m.receiver, server: m.sender, id: header.id, vlans: vlans, seed: keySeed)
        if let query = udpWaiting.removeValue(forKey: key) {
            udpAnswered.insert(hash: key.hash, fingerprint: fingerprint(m), time: m.time)
            // Not through `publishUDP`: given to that, the query's message was copied out of its
            // object (~250 instructions a pair).
            publishAnswer(query: query, response: m, probe: nil, context: context)
            keepBuffer(of: query)
            keepBuffer(m.message.bytes)
            return
        }
        if let answered = udpAnswered.fingerprint(of: key.hash), answered == fingerprint(m) {
            publishUDP(.absent, false, m, true, ["duplicate response"], context)
        } else {
            // On UDP a response without its query most often means the query was not captured.
            publishUDP(.absent, false, m, true, ["unmatched response", "possible packet loss"], context)
        }
        keepBuffer(m.message.bytes)
    }

    /// Pairs the `response` (a header's worth at least) with its waiting query, if
    /// any, and publishes their event: from the values cached for the pair, when there are
    /// (unparsed, uncopied: `DNSEvents.cachedAnswer`), or for its shape (`shapeAnswer`), else
    /// from the parsed response (and its shape stored, if it is the second sighting). False
    /// (nothing done) when no query waits for it: the caller then goes on as for any datagram.
    private func pairCached(_ response: UnsafeBufferPointer<UInt8>, direction: Direction, context: PluginContext,
                            cache: DNSRenderCache, shapes: DNSRenderCache) -> Bool {
        // (`context.connection` each time, not in a local: a copy retained its strings.)
        let original = direction == .original
        let id = UInt16(response[0]) << 8 | UInt16(response[1])
        // As `DNSSeen`'s sender and receiver: the query's client is this response's receiver.
        let key = UDPKey(client: original ? context.connection.server : context.connection.client,
                         server: original ? context.connection.client : context.connection.server, id: id,
                         vlans: context.connection.vlans, seed: keySeed)
        guard let query = udpWaiting.removeValue(forKey: key) else { return false }
        var probe: DNSRenderCache.Probe?
        // The exact cache first (a pair asked again costs less from it): also while it samples,
        // so that its lookups go on one in `idleSampling`.
        let answer = DNSEvents.cachedAnswer(query: query, response: response, known: context.connection,
                                            settings: settings, cache: cache, probe: &probe)
        // A stored pair's response has this one's bytes but the ID: its fingerprint is
        // known but the ID (hashing the bytes again was a third of this function's cycles).
        udpAnswered.insert(hash: key.hash, fingerprint: probe.flatMap { cache.responseFingerprint($0, id: id) }
                           ?? DNSPlugin.fingerprint(response, seed: fingerprintSeed), time: context.timestamp)
        if let answer {
            publishCachedAnswer(answer, query: query, responseBytes: response.count, context: context, cache: cache)
            keepBuffer(of: query)
            return true
        }
        // Else its shape, unless the exact cache found the pair or is about to store it.
        var shape: DNSRenderCache.Probe?
        if probe.map({ !$0.hit && !$0.store }) ?? true {
            shape = DNSEvents.shapeProbe(query: query, response: response, known: context.connection, settings: settings,
                                         shapes: shapes)
            if let shape, let answer = DNSEvents.shapeAnswer(shape, response: response, shapes: shapes) {
                publishShapeAnswer(answer, query: query, responseBytes: response.count, context: context, shapes: shapes)
                keepBuffer(of: query)
                return true
            }
        }
        let m = DNSSeen(bytes: bytes(of: response), time: context.timestamp, flow: context.connection,
                        direction: direction, lossHint: true)
        publishAnswer(query: query, response: m, probe: probe, context: context)
        if let shape, shape.store { DNSEvents.storeShape(shape, query: query, response: m, settings: settings, shapes: shapes) }
        keepBuffer(m.message.bytes)
        keepBuffer(of: query)
        return true
    }

    /// The event of an answer whose values the cache of shapes has (`DNSEvents.shapeAnswer`),
    /// the cheapest way there is: the shape's template on this flow (`DNSAnswerTemplates`,
    /// the shape's slot after the exact cache's; its values the times, the ID and the name
    /// asked); else the flow's template (`DNSEvents.publishAnswer`'s), its four DNS values
    /// written from the shape; else built. The shape's template is made from its flow's
    /// `flowTemplateSightings`th answer, as a flow's is: traffic of many shapes seen a few
    /// times each on a flow (every name length its own) would never win back the making.
    private func publishShapeAnswer(_ answer: DNSEvents.CachedAnswer, query: DNSObserved, responseBytes: Int,
                                    context: PluginContext, shapes: DNSRenderCache) {
        // The name as the writers print it (a plain name: shorter than its bytes), on the stack.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: query.seen.message.bytes.count) { buffer in
            let count = query.seen.message.bytes.withUnsafeBufferPointer { DNSRenderCache.plainNameText($0, into: buffer.baseAddress!) }
            let name = UnsafeBufferPointer(rebasing: buffer[..<count])
            func build() -> Event {
                DNSEvents.event(of: answer, query: query, responseBytes: responseBytes, time: context.timestamp,
                                known: context.connection, settings: settings, cache: shapes, name: name)
            }
            guard let answerTemplatesRef, let flowTemplatesRef else { return context.publish(build()) }
            let pair = shapes.pairIdentity(answer.probe)
            let shapeSlot = DNSRenderCache.slotCount + pair.slot
            let shapeValues = EventTemplate.Values(start: query.seen.time, end: context.timestamp, number: Int64(answer.id),
                                                   text: name)
            let flow = context.connection.flowIdentity
            answerTemplatesRef._withUnsafeGuaranteedRef { shapeTemplates in
                if let template = shapeTemplates.template(slot: shapeSlot, generation: pair.generation, flow: flow) {
                    template._withUnsafeGuaranteedRef { context.publisher.publish($0, shapeValues, build: build) }
                    return
                }
                let makesShapeTemplate = shapeTemplates.sight(slot: shapeSlot, generation: pair.generation, flow: flow,
                                                              sightings: DNSEvents.flowTemplateSightings)
                let flowSlot = answer.rcodeIsZero ? DNSEvents.flowSlotOK : DNSEvents.flowSlotError
                let flowValues = EventTemplate.Values(start: query.seen.time, end: context.timestamp,
                                                      requestBytes: Int64(query.seen.size), responseBytes: Int64(responseBytes))
                flowTemplatesRef._withUnsafeGuaranteedRef { flowTemplates in
                    let flowTemplate = flowTemplates.template(slot: flowSlot, generation: 0, flow: flow)
                    if !makesShapeTemplate, let flowTemplate {
                        flowTemplate._withUnsafeGuaranteedRef { t in
                            context.publisher.publish(t, flowValues, fields: { number, out in
                                shapes.writeField(number, answer.probe, id: answer.id, name: name, into: &out)
                            }, build: build)
                        }
                        return
                    }
                    let event = build()
                    if makesShapeTemplate {
                        shapeTemplates.make(event, slot: shapeSlot, generation: pair.generation,
                                            holes: { shapes.shapeHoles(answer.probe, id: answer.id, nameCount: count) },
                                            values: shapeValues, flow: flow)
                    }
                    if flowTemplate == nil {
                        flowTemplates.saw(event, slot: flowSlot, generation: 0, holes: { DNSEvents.flowHoles }, values: flowValues,
                                          flow: flow, sightings: DNSEvents.flowTemplateSightings)
                    }
                    context.publish(consume event)
                }
            }
        }
    }

    /// The event of a cached answer: as its template and values when the pair has one on
    /// this flow (`DNSAnswerTemplates`), else built (and offered to make the template).
    private func publishCachedAnswer(_ answer: DNSEvents.CachedAnswer, query: DNSObserved, responseBytes: Int,
                                     context: PluginContext, cache: DNSRenderCache) {
        // (A nested function, not a closure in a constant: that would be allocated.)
        func build() -> Event {
            DNSEvents.event(of: answer, query: query, responseBytes: responseBytes, time: context.timestamp,
                            known: context.connection, settings: settings, cache: cache)
        }
        guard let answerTemplatesRef else { return context.publish(build()) }
        let pair = cache.pairIdentity(answer.probe)
        let values = EventTemplate.Values(start: query.seen.time, end: context.timestamp, number: Int64(answer.id))
        let flow = context.connection.flowIdentity
        answerTemplatesRef._withUnsafeGuaranteedRef { templates in
            if let template = templates.template(slot: pair.slot, generation: pair.generation, flow: flow) {
                template._withUnsafeGuaranteedRef { context.publisher.publish($0, values, build: build) }
                return
            }
            let event = build()
            templates.saw(event, slot: pair.slot, generation: pair.generation,
                          holes: { DNSAnswerTemplates.holes(idOffset: pair.idOffset, id: answer.id) }, values: values, flow: flow)
            context.publish(consume event)
        }
    }

    /// A datagram's bytes as an array: in a spare buffer when there is one (no malloc, and no
    /// free when the message goes, since its buffer comes back: `keepBuffer`). Queries and
    /// responses both: an `Array` of each response was a malloc and a free a pair.
    @inline(__always) private func bytes(of payload: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        guard payload.count >= 12, var buffer = spareBuffers.popLast() else { return Array(payload) }
        // In place of its bytes, in one call (emptying it, then appending, took two).
        buffer.replaceSubrange(0..<buffer.count, with: payload)
        return buffer
    }

    /// Keeps the bytes' buffer of a message for the next datagram: its only reference once
    /// the message is gone (a buffer something else still holds is copied, not changed, when
    /// it is reused: arrays are values).
    @inline(__always) private func keepBuffer(_ bytes: [UInt8]) {
        if spareBuffers.count < DNSPlugin.maxSpareBuffers, bytes.capacity <= DNSPlugin.maxSpareBufferCapacity {
            spareBuffers.append(bytes)
        }
    }

    @inline(__always) private func keepBuffer(of query: DNSObserved) { keepBuffer(query.seen.message.bytes) }

    /// The event of a waiting query and its response (see `DNSEvents.publishAnswer`).
    @inline(__always) private func publishAnswer(query: DNSObserved, response: borrowing DNSSeen, probe: DNSRenderCache.Probe?,
                                                 context: PluginContext) {
        if let flowTemplatesRef {
            flowTemplatesRef._withUnsafeGuaranteedRef { templates in
                DNSEvents.publishAnswer(query: query, response: response, probe: probe, settings: settings, cache: rendered,
                                        templates: templates, context: context)
            }
        } else {
            DNSEvents.publishAnswer(query: query, response: response, probe: probe, settings: settings, cache: rendered,
                                    templates: nil, context: context)
        }
    }

    /// The event of messages seen on UDP (see `DNSEvents.event`).
    private func publishUDP(_ query: borrowing DNSSeen, _ hasQuery: Bool, _ response: borrowing DNSSeen,
                            _ hasResponse: Bool, _ notes: [String], _ context: PluginContext) {
        context.publish(DNSEvents.event(query: query, hasQuery: hasQuery, response: response, hasResponse: hasResponse,
                                        notes: notes, transport: .udp, connectionID: 0, settings: settings,
                                        known: context.connection, cache: rendered))
    }

    /// Of a parsed message (only one with a header gets that far).
    @inline(__always) private func fingerprint(_ m: DNSSeen) -> Int { DNSPlugin.fingerprint(m.message.bytes, seed: fingerprintSeed) }

    /// Drops a query that leaves without its response, and what a response paired before
    /// with its key left (see `parseDatagram`).
    private func removeWaiting(_ key: UDPKey) {
        udpWaiting.removeValue(forKey: key)
        if !udpAnswered.isEmpty { udpAnswered.remove(key.hash) }
    }

    /// The waiting query that came first (only when the table is full).
    private func oldestWaiting() -> (key: UDPKey, query: DNSObserved)? {
        var oldest: (key: UDPKey, query: DNSObserved)?
        udpWaiting.forEach { key, query in
            if oldest.map({ query.serial < $0.query.serial }) ?? true { oldest = (key, query) }
        }
        return oldest
    }

    public func advanceClock(to now: Timestamp, publisher: EventPublisher) {
        let timeout = settings.transactionTimeout
        // Keys first, then removed: a removal moves entries back, under the iteration.
        var expired: [(key: UDPKey, query: DNSObserved)] = []
        udpWaiting.forEach { key, query in
            if now - query.time > timeout { expired.append((key, query)) }
        }
        expired.sort { $0.query.serial < $1.query.serial }
        for (key, query) in expired {
            removeWaiting(key)
            publishUnanswered(query, publisher)
        }
        let window = min(timeout, DNSPlugin.duplicateWindow)
        udpAnswered.expire(now: now, window: window)
    }

    public func finish(publisher: EventPublisher) {
        var waiting: [DNSObserved] = []
        udpWaiting.forEach { _, query in waiting.append(query) }
        for query in waiting.sorted(by: { $0.serial < $1.serial }) { publishUnanswered(query, publisher) }
        udpWaiting.removeAll()
        udpAnswered.removeAll()
    }

    private func publishUnanswered(_ query: DNSObserved, _ publisher: EventPublisher) {
        // A sniffer cannot tell a server that stayed silent from a lost datagram.
        publisher.publish(DNSEvents.event(query: query, response: nil, notes: ["no response", "possible packet loss"],
                                          transport: .udp, connectionID: 0, settings: settings,
                                          known: query.flow, cache: rendered),
                          sweepOrder: query.packetIndex)
    }
}

// MARK: tshark cross-check

extension DNSPlugin: DissectorComparable {
    /// "Q name TYPE" per query and "R name TYPE RCODE" per response, from tshark's DNS
    /// dissector and from the events.
    public static var crossCheck: DissectorCrossCheck {
        DissectorCrossCheck(
            decodeAs: "dns", displayFilter: "dns",
            fields: ["dns.qry.name", "dns.qry.type", "dns.flags.response", "dns.flags.rcode"],
            recordsFromRows: { rows in
                var out: [String] = []
                for row in rows where row.count >= 4 {
                    // Several DNS messages in one TCP segment come comma-separated.
                    let names = row[0].split(separator: ",", omittingEmptySubsequences: false)
                    let types = row[1].split(separator: ",", omittingEmptySubsequences: false)
                    let responses = row[2].split(separator: ",", omittingEmptySubsequences: false)
                    let rcodes = row[3].split(separator: ",", omittingEmptySubsequences: false)
                    for i in responses.indices where i < names.count && i < types.count && !types[i].isEmpty {
                        let name = names[i] == "<Root>" ? "." : String(names[i])
                        let type = UInt16(types[i]).map(DNSType.name) ?? String(types[i])
                        let isResponse = responses[i] == "1" || responses[i] == "True"
                        if isResponse {
                            let rcode = i < rcodes.count ? Int(rcodes[i]).map(DNSCodes.rcode) ?? String(rcodes[i]) : "?"
                            out.append("R \(name) \(type) \(rcode)")
                        } else {
                            out.append("Q \(name) \(type)")
                        }
                    }
                }
                return out
            },
            recordsFromEvents: { events in
                var out: [String] = []
                for e in events {
                    guard let name = (e.value(at: "dns.question.name")?.stringValue).map(DNSPlugin.unescaped),
                          let type = e.value(at: "dns.question.type")?.stringValue else { continue }
                    if e.value(at: "source.bytes") != nil { out.append("Q \(name) \(type)") }
                    if e.value(at: "destination.bytes") != nil {
                        // tshark shows the header's 4-bit RCODE.
                        let rcode = e.value(at: "dns.response_code")?.stringValue ?? "?"
                        let base = DNSCodes.rcodes.first(where: { $0.value == rcode }).map { $0.key & 0xF }
                        out.append("R \(name) \(type) \(base.map(DNSCodes.rcode) ?? rcode)")
                    }
                }
                return out
            })
    }

    /// tshark prints label bytes as they are: `odd\032name\.x` → `odd name.x`.
    static func unescaped(_ name: String) -> String {
        var out: [UInt8] = []
        let b = Array(name.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count {
                if i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self)) {
                    out.append(v); i += 4; continue
                }
                out.append(b[i + 1]); i += 2; continue
            }
            out.append(b[i]); i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The byte hash of the DNS plugin's keys (a response's fingerprint, `DNSRenderCache`'s
/// key): eight bytes a step, mixed into a seeded word. Callers mix the lengths in first.
enum DNSBytesHash {
    @inline(__always) static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        let x = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        return x ^ x >> 32
    }

    /// Folds `b[start...]` into `h`: eight bytes a step, the last ones in one load that
    /// overlaps the step before when there is room (else byte by byte).
    @inline(__always) static func fold(_ b: UnsafeBufferPointer<UInt8>, from start: Int, into h: UInt64) -> UInt64 {
        guard b.count > start, let base = b.baseAddress else { return h }
        let raw = UnsafeRawPointer(base)
        var h = h
        var i = start
        // Two words a step, into two words mixed together after: each mix waits for the one
        // before it (a multiply), and one chain through a response's ~13 words was most of
        // the time of the response's fingerprint.
        if i &+ 16 <= b.count {
            var other = h ^ 0x9E37_79B9_7F4A_7C15
            repeat {
                h = mix(h, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                other = mix(other, raw.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self))
                i &+= 16
            } while i &+ 16 <= b.count
            h = mix(h, other)
        }
        if i &+ 8 <= b.count {
            h = mix(h, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i &+= 8
        }
        guard i < b.count else { return h }
        if b.count &- 8 >= start { return mix(h, raw.loadUnaligned(fromByteOffset: b.count &- 8, as: UInt64.self)) }
        var tail: UInt64 = 0
        while i < b.count {
            tail = tail << 8 | UInt64(base[i])
            i &+= 1
        }
        return mix(h, tail)
    }

    /// A response's fingerprint in two steps: its length and bytes after the ID (`tail`),
    /// then the ID, so that the render cache can keep a stored pair's tail
    /// (`DNSRenderCache.responseFingerprint`).
    @inline(__always) static func tail(_ b: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
        fold(b, from: 2, into: mix(seed, UInt64(b.count)))
    }

    @inline(__always) static func fingerprint(tail: UInt64, id: UInt16) -> Int {
        Int(truncatingIfNeeded: finish(mix(tail, UInt64(id))))
    }

    /// MurmurHash3's finaliser: every bit of the result depends on every bit of `h`.
    @inline(__always) static func finish(_ h: UInt64) -> UInt64 {
        let x = (h ^ h >> 33) &* 0xC4CE_B9FE_1A85_EC53
        return x ^ x >> 33
    }
}
