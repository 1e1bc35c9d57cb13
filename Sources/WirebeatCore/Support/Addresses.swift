/// An IPv4 or IPv6 address, stored in two integers so flow keys hash without strings.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// High and low 64 bits of the IPv6 address; IPv4 is stored as `::ffff:a.b.c.d` with `isV4` set.
    public let high: UInt64
    public let low: UInt64
    public let isV4: Bool

    public init(v4 value: UInt32) {
        high = 0
        low = 0x0000_FFFF_0000_0000 | UInt64(value)
        isV4 = true
    }

    public init(v6High: UInt64, low: UInt64) {
        self.high = v6High
        self.low = low
        isV4 = false
    }

    /// Parses dotted IPv4 or textual IPv6 (used by tests and config).
    public init?(_ text: String) {
        if text.contains(":") {
            var groups: [UInt16] = []
            let halves = text.components(separatedBy: "::")
            guard halves.count <= 2 else { return nil }
            func parse(_ s: String) -> [UInt16]? {
                if s.isEmpty { return [] }
                var out: [UInt16] = []
                for part in s.split(separator: ":", omittingEmptySubsequences: false) {
                    guard let v = UInt16(part, radix: 16) else { return nil }
                    out.append(v)
                }
                return out
            }
            guard let head = parse(halves[0]) else { return nil }
            if halves.count == 2 {
                guard let tail = parse(halves[1]), head.count + tail.count < 8 else { return nil }
                groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
            } else {
                guard head.count == 8 else { return nil }
                groups = head
            }
            var hi: UInt64 = 0, lo: UInt64 = 0
            for i in 0..<4 { hi = hi << 16 | UInt64(groups[i]) }
            for i in 4..<8 { lo = lo << 16 | UInt64(groups[i]) }
            self.init(v6High: hi, low: lo)
        } else {
            let parts = text.split(separator: ".")
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for p in parts {
                guard let b = UInt8(p) else { return nil }
                value = value << 8 | UInt32(b)
            }
            self.init(v4: value)
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.high, a.low) < (b.high, b.low)
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6 (as Community ID hashes them).
    public var bytes: [UInt8] {
        if isV4 {
            let v = UInt32(truncatingIfNeeded: low)
            return [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
        }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(high >> UInt64(shift) & 0xff)) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(low >> UInt64(shift) & 0xff)) }
        return out
    }

    /// Dotted quad, or RFC 5952 IPv6 text (lower case, longest zero run compressed).
    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(39)
        writeText(into: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// Appends `description`'s text: a dotted quad, or RFC 5952 IPv6 (lower-case hex, the
    /// first longest run of two or more zero groups as `::`). Events print addresses with it,
    /// so it makes no String.
    public func writeText(into out: inout [UInt8]) { writeText(to: &out) }

    /// `writeText` into any JSON sink (an event's storage: see `JSONOutput.writeText(of:)`).
    /// Made in a buffer on the stack and appended in one piece: byte by byte through the
    /// sink it cost ~520 instructions an address.
    func writeText<Sink: JSONSink>(to out: inout Sink) {
        var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)  // 40 bytes; 39 at most
        withUnsafeMutableBytes(of: &buffer) { raw in
            let n = formatText(into: raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            out.putRaw(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
        }
    }

    /// `description`'s text at `p` (room for 39 bytes); returns its length.
    private func formatText(into p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        @inline(__always) func put(_ b: UInt8) { p[n] = b; n &+= 1 }
        if isV4 {
            let v = UInt32(truncatingIfNeeded: low)
            var shift: UInt32 = 24
            while true {
                let b = UInt8(truncatingIfNeeded: v >> shift)
                if b >= 100 { put(0x30 &+ b / 100) }
                if b >= 10 { put(0x30 &+ b / 10 % 10) }
                put(0x30 &+ b % 10)
                if shift == 0 { return n }
                put(UInt8(ascii: "."))
                shift &-= 8
            }
        }
        @inline(__always) func group(_ i: Int) -> UInt16 {
            UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 &- 16 &* (i & 3)))
        }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if group(i) == 0 {
                var j = i
                while j < 8 && group(j) == 0 { j &+= 1 }
                if j &- i > bestLength && j &- i >= 2 { bestStart = i; bestLength = j &- i }
                i = j
            } else { i &+= 1 }
        }
        let digits: StaticString = "0123456789abcdef"
        @inline(__always) func groups(_ from: Int, _ to: Int) {
            var k = from
            while k < to {
                if k != from { put(UInt8(ascii: ":")) }
                let g = group(k)
                var shift: UInt16 = 12
                while shift > 0 && g >> shift == 0 { shift &-= 4 }
                while true {
                    put(digits.utf8Start[Int(g >> shift & 0xF)])
                    if shift == 0 { break }
                    shift &-= 4
                }
                k &+= 1
            }
        }
        if bestStart < 0 { groups(0, 8); return n }
        groups(0, bestStart)
        put(UInt8(ascii: ":")); put(UInt8(ascii: ":"))
        groups(bestStart &+ bestLength, 8)
        return n
    }
}

/// An IP address and a transport port.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16
    public init(ip: IPAddress, port: UInt16) { self.ip = ip; self.port = port }
    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.ip, a.port) < (b.ip, b.port) }
    public var description: String { ip.isV4 ? "\(ip):\(port)" : "[\(ip)]:\(port)" }
}

/// The VLAN ids of a frame, outermost first (empty when untagged), kept inline: up to
/// `capacity` stacked tags of 12 bits in one word. A plain value, so that copying a decoded
/// packet, a flow key or a connection's info costs no retain and release (an array, even
/// an empty one, cost ~10 of each per packet on every worker).
public struct VLANTags: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// Deeper stacks are not seen on real networks; the decoder counts such a frame as
    /// malformed.
    public static let capacity = 5
    /// Tag `i` in bits `12 i ..< 12 i + 12`, the count in the top 4 bits.
    private var packed: UInt64 = 0

    public init() {}
    /// The first `capacity` of `tags`, each cut to its 12-bit VLAN id.
    public init<S: Sequence>(_ tags: S) where S.Element == UInt16 {
        for tag in tags where !append(tag) { break }
    }
    public init(arrayLiteral tags: UInt16...) { self.init(tags) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(truncatingIfNeeded: packed >> 60) }
    public var isEmpty: Bool { packed == 0 }
    public subscript(position: Int) -> UInt16 {
        precondition(position >= 0 && position < endIndex, "VLAN tag index out of range")
        return UInt16(truncatingIfNeeded: packed >> UInt64(12 * position)) & 0x0FFF
    }

    /// Adds an inner tag (its low 12 bits); false, and nothing added, when full.
    @discardableResult
    public mutating func append(_ tag: UInt16) -> Bool {
        let n = endIndex
        guard n < VLANTags.capacity else { return false }
        packed = (packed & ((1 << 60) - 1)) | UInt64(tag & 0x0FFF) << UInt64(12 * n) | UInt64(n + 1) << 60
        return true
    }

    public var description: String { Array(self).description }
}

extension Endpoint {
    /// A flow's endpoints and VLAN tags folded into one word with multiply-xor steps, for
    /// flow tables looked up once per packet: hashing that word is one SipHash block instead
    /// of a dozen fields and an array. Equality still compares every field.
    @inlinable
    public static func foldedHash(_ a: Endpoint, _ b: Endpoint, vlans: VLANTags) -> UInt64 {
        let k: UInt64 = 0x9E37_79B9_7F4A_7C15
        var x = a.ip.high &* k ^ a.ip.low
        x = (x &* k) ^ b.ip.high
        x = (x &* k) ^ b.ip.low
        x = (x &* k) ^ (UInt64(a.port) << 16 | UInt64(b.port))
        for tag in vlans { x = (x &* k) ^ UInt64(tag) }
        return x
    }

    /// The hash a `Dictionary` uses for a key whose `hash(into:)` combines only `folded`
    /// (its `_rawHashValue(seed:)`): the dictionary's own seed mixed in with MurmurHash3's
    /// finaliser, which spreads every bit of the word over the bucket bits as SipHash does,
    /// in ~10 instructions instead of ~150 (SipHash of one word, plus the `Hasher` set-up).
    /// No weaker against crafted collisions than SipHash of the same word: a collision of
    /// `folded` is one of both.
    @inline(__always)
    public static func tableHash(_ folded: UInt64, seed: Int) -> Int {
        var x = folded ^ UInt64(bitPattern: Int64(seed)) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ x >> 33) &* 0xFF51_AFD7_ED55_8CCD
        x = (x ^ x >> 33) &* 0xC4CE_B9FE_1A85_EC53
        return Int(truncatingIfNeeded: x ^ x >> 33)
    }
}

public enum Transport: String, Sendable { case tcp, udp }

/// Which way a payload travels: `original` is client to server, `reverse` server to client
/// (Packetbeat's TcpDirectionOriginal / TcpDirectionReverse).
public enum Direction: Int, Sendable, CustomStringConvertible {
    case original = 0
    case reverse = 1
    public var opposite: Direction { self == .original ? .reverse : .original }
    public var description: String { self == .original ? "original" : "reverse" }
}

/// What a plugin knows about the connection (or UDP flow) it is parsing.
///
/// It travels by value with every payload (`PluginContext`), so what is not plain data (the
/// texts) lives in the one `EncodedFlow` object: copying a ConnectionInfo is then one
/// retain, not one per String.
public struct ConnectionInfo: Sendable {
    /// Serial number in order of first sight: stable across runs of the same capture.
    public let id: UInt64
    public let transport: Transport
    public let client: Endpoint
    public let server: Endpoint
    /// TCP: no SYN was seen, so the first bytes may be the middle of a message (a capture
    /// started late, or state expired and picked up again).
    public let startedMidStream: Bool
    /// The per-connection values of every event, as JSON text, encoded once.
    @usableFromInline let encoded: EncodedFlow

    /// 802.1Q VLAN ids, outermost first (empty when untagged).
    public let vlans: VLANTags
    /// Community ID v1 flow hash (seed 0).
    public var communityID: String { encoded.communityIDText }
    /// The identity of the connection's shared values (`EncodedFlow`), one object per flow:
    /// two connections with the same identity at the same time are the same flow. Read
    /// without copying the connection (no reference counting), to compare with
    /// `EventTemplate.flowIdentity`, which keeps its flow alive, so the identity cannot be
    /// reused while the template lives.
    @inlinable public var flowIdentity: ObjectIdentifier { ObjectIdentifier(encoded) }
    /// `client.ip` and `server.ip` as events print them, formatted once per connection.
    var clientIPText: String { encoded.clientIPText }
    var serverIPText: String { encoded.serverIPText }

    public init(id: UInt64, transport: Transport, client: Endpoint, server: Endpoint, vlans: VLANTags = VLANTags(),
                startedMidStream: Bool = false) {
        self.id = id
        self.vlans = vlans
        self.transport = transport
        self.client = client
        self.server = server
        self.startedMidStream = startedMidStream
        self.encoded = EncodedFlow(client: client, server: server, transport: transport)
    }

    /// Endpoint that sends in the given direction.
    public func sender(_ direction: Direction) -> Endpoint { direction == .original ? client : server }
}

/// JSON text of the values every event of a connection repeats (see `Event.transaction`),
/// encoded once per connection into one buffer that its events refer to.
@usableFromInline final class EncodedFlow: Sendable {
    /// The values' JSON text, then `EventLayout.slack` zero bytes: never changed, and read
    /// through this pointer by every event of the flow (an array read from an object cost
    /// its events a retain and a release each).
    nonisolated(unsafe) let text: UnsafeMutablePointer<UInt8>
    /// `status` of an event, OK or Error, in `text`.
    let statusOK, statusError: SharedRange
    /// The spans of `TransactionFields.sharedNames`, in that order: what every event of the
    /// connection sets the same way (addresses, ports, Community ID, the constant `event.*`),
    /// added to an event in one copy.
    let sharedSpans: [Event.ValueSpan]
    /// Their values' bytes, counted once per connection (`EventStorage.valueBytes`).
    let sharedValueBytes: Int
    // What `ConnectionInfo` shows of the flow beyond plain data.
    let communityIDText: String
    let clientIPText: String
    let serverIPText: String

    init(client: Endpoint, server: Endpoint, transport: Transport) {
        let communityID = CommunityID.v1(transport: transport, a: client, b: server)
        let clientIP = client.ip.description, serverIP = server.ip.description
        self.communityIDText = communityID
        self.clientIPText = clientIP
        self.serverIPText = serverIP
        var text: [UInt8] = []
        func add(_ value: some JSONRepresentable) -> SharedRange {
            let start = text.count
            value.writeJSON(into: &text)
            return SharedRange(start: Int32(start), end: Int32(text.count))
        }
        let clientIPRange = add(clientIP), serverIPRange = add(serverIP)
        let clientPort = add(client.port), serverPort = add(server.port)
        // In the order of `TransactionFields.sharedNames`; `client.*` repeats `source.*`.
        let ranges = [add("event"), add(["network"]), add(["connection", "protocol"]),
                      clientIPRange, clientIPRange, clientPort, clientPort,
                      serverIPRange, serverIPRange, serverPort, serverPort,
                      add(transport.rawValue), add(client.ip.isV4 ? "ipv4" : "ipv6"), add(communityID)]
        statusOK = add(EventStatus.ok.rawValue)
        statusError = add(EventStatus.error.rawValue)
        text.append(contentsOf: repeatElement(0, count: EventLayout.slack))  // see `Event.copy`
        self.text = .allocate(capacity: text.count)
        self.text.initialize(from: text, count: text.count)
        sharedSpans = ranges.map { Event.ValueSpan(start: $0.start, end: $0.end, isShared: true) }
        sharedValueBytes = ranges.reduce(0) { $0 + Int($1.end - $1.start) }
        assert(sharedSpans.count == TransactionFields.sharedNames.count)
    }

    deinit { text.deallocate() }
}

/// Bytes `start..<end` of a buffer of JSON text shared by events.
struct SharedRange: Sendable {
    let start: Int32
    let end: Int32
}
