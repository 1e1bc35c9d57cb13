import WirebeatCore

/// The notes HTTP events carry in `error.message`.
enum HTTPNote {
    static let packetLoss = "packet loss"
    static let unmatchedRequest = "Unmatched request"
    static let unmatchedResponse = "Unmatched response"
    static let incompleteRequest = "request incomplete: connection ended"
    static let incompleteResponse = "response incomplete: connection ended"
    static let tooLarge = "message larger than max_message_size: not stored beyond it"
    static let badContentLength = "invalid Content-Length"
    static let badChunk = "invalid chunked encoding"
    static let lineTooLong = "line too long"
    static let tooManyPending = "too many requests waiting for a response"
    static let tunnel = "connection switched protocols: not parsed further"
    static let resetBeforeEnd = "connection reset before the end of the response"
    static let timeoutBeforeEnd = "connection expired before the end of the response"
}

/// One request or response, filled in as its bytes are consumed.
///
/// `@exclusivity(unchecked)` on the stored properties here and in `HTTPTransaction` and
/// `HTTPSession`: they are touched only on the pipeline's one thread, never through
/// overlapping inout accesses, and the run-time check of every access cost some 2,000
/// instructions per transaction.
///
/// A session reuses its published messages (see `HTTPSession.makeMessage`): `reset` sets
/// every stored property, as a new message has it.
final class HTTPMessage {
    @exclusivity(unchecked) private(set) var isRequest: Bool
    /// Packet time of the first byte, and of the last byte consumed so far.
    @exclusivity(unchecked) private(set) var start: Timestamp
    @exclusivity(unchecked) var end: Timestamp

    /// The values of the start line and of the headers the event needs, copied out of the
    /// stream buffer (which is reused) into this one buffer (`kept`): the fields below are
    /// ranges of it. No String per value, and the event takes the bytes as they are.
    /// A raw buffer rather than an array: keeping a value is a capacity test and a copy
    /// (`Array.append(contentsOf:)` cost ~90 instructions, four values per transaction), and
    /// reading it retains nothing (each access to an array property is a retain and a
    /// release).
    @exclusivity(unchecked) private var keptBytes: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var keptCount = 0
    @exclusivity(unchecked) private var keptCapacity: Int
    /// The kept bytes: valid until the next `keep` or `reset` (which may move them).
    var kept: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: keptBytes, count: keptCount) }

    // Start line.
    @exclusivity(unchecked) var method: Range<Int> = 0..<0
    @exclusivity(unchecked) var target: Range<Int> = 0..<0
    /// The `x` of `HTTP/1.x`, 0...9.
    @exclusivity(unchecked) var minorVersion = 0
    @exclusivity(unchecked) var statusCode = 0
    @exclusivity(unchecked) var phrase: Range<Int> = 0..<0

    /// Header fields kept for the event: lower-cased name, value (credentials redacted).
    @exclusivity(unchecked) var headers: [(name: String, value: String)] = []
    @exclusivity(unchecked) var contentLength: Int?
    @exclusivity(unchecked) var chunked = false
    /// `Transfer-Encoding` present but not ending in chunked.
    @exclusivity(unchecked) var otherTransferEncoding = false
    @exclusivity(unchecked) var connectionClose = false
    @exclusivity(unchecked) var upgrade = false
    @exclusivity(unchecked) var host: Range<Int>?
    @exclusivity(unchecked) var userAgent: Range<Int>?
    @exclusivity(unchecked) var contentType: Range<Int>?
    @exclusivity(unchecked) var user: String?
    @exclusivity(unchecked) var forwardedFor: String?

    /// Bytes of the whole message (start line, headers, framing, body) and of the body alone.
    @exclusivity(unchecked) var bytes = 0
    @exclusivity(unchecked) var bodyBytes = 0
    @exclusivity(unchecked) var headersComplete = false
    @exclusivity(unchecked) var complete = false
    /// Raw text for `send_request`/`send_response`, up to `max_message_size`.
    @exclusivity(unchecked) var raw: [UInt8]?
    /// `raw` is kept.
    @exclusivity(unchecked) private(set) var keepsRaw: Bool
    @exclusivity(unchecked) var notes = Notes()
    /// Request started when no earlier request was waiting for its response.
    @exclusivity(unchecked) var afterAnswers = false
    /// Loss counter of the session when the message started (see `HTTPSession.lossEpoch`).
    @exclusivity(unchecked) private(set) var epoch: Int

    init(isRequest: Bool, start: Timestamp, epoch: Int, keepRaw: Bool) {
        self.isRequest = isRequest
        self.start = start
        self.end = start
        self.epoch = epoch
        keepsRaw = keepRaw
        raw = keepRaw ? [] : nil
        keptCapacity = HTTPMessage.keptInitialCapacity
        keptBytes = .allocate(capacity: keptCapacity)
    }

    deinit { keptBytes.deallocate() }

    /// A start line and a few values, usually.
    static let keptInitialCapacity = 128

    /// Largest array capacity `reset` keeps.
    static let reusedCapacity = 1 << 16
    /// Bytes of earlier messages' values `reset` leaves in `kept`.
    static let keptBeforeEmptying = 2048

    /// This message made new, as `init` makes it, keeping the capacity of its arrays.
@inline(__always)  // (stores, per message: the call was a sixth of it)
    func reset(isRequest: Bool, start: Timestamp, epoch: Int, keepRaw: Bool) {
        self.isRequest = isRequest
        self.start = start
        end = start
        // The values of a few messages fill `kept` up before it is emptied (the fields are
        // ranges of it, wherever they start): an emptying per message cost more than the rest
        // of `reset`. Its capacity is kept, but not after a rare large message.
        if keptCount > HTTPMessage.keptBeforeEmptying {
            if keptCapacity > HTTPMessage.reusedCapacity {
                keptBytes.deallocate()
                keptCapacity = HTTPMessage.keptInitialCapacity
                keptBytes = .allocate(capacity: keptCapacity)
            }
            keptCount = 0
        }
        method = 0..<0
        target = 0..<0
        minorVersion = 0
        statusCode = 0
        phrase = 0..<0
        if !headers.isEmpty { headers.removeAll(keepingCapacity: true) }
        contentLength = nil
        chunked = false
        otherTransferEncoding = false
        connectionClose = false
        upgrade = false
        host = nil
        userAgent = nil
        contentType = nil
        if user != nil { user = nil }  // (a test is cheaper than releasing nil Strings)
        if forwardedFor != nil { forwardedFor = nil }
        bytes = 0
        bodyBytes = 0
        headersComplete = false
        complete = false
        keepsRaw = keepRaw
        if !keepRaw {
            if raw != nil { raw = nil }
        } else if raw != nil, raw!.capacity <= HTTPMessage.reusedCapacity {
            raw!.removeAll(keepingCapacity: true)
        } else {
            raw = []
        }
        if !notes.isEmpty { notes = Notes() }
        afterAnswers = false
        self.epoch = epoch
    }

    /// Copies `bytes` into `kept`; their range there. Inlined, and a value of up to 32 bytes
    /// (nearly all) copied with two loads and two stores, overlapping: no call of `memmove`.
    @inline(__always)
    func keep(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        let start = keptCount, n = bytes.count
        if n > keptCapacity - start { growKept(to: start + n) }
        if let from = bytes.baseAddress, n > 0 { HTTPMessage.copy(from, to: keptBytes + start, count: n) }
        keptCount = start + n
        return start..<keptCount
    }

    /// `to.update(from:count:)` for buffers that do not overlap, `count > 0`.
    @inline(__always)
    private static func copy(_ from: UnsafePointer<UInt8>, to: UnsafeMutablePointer<UInt8>, count n: Int) {
        let s = UnsafeRawPointer(from), d = UnsafeMutableRawPointer(to)
        // The first and the last piece of the size: together they cover all `n` bytes.
        @inline(__always) func pieces<T: FixedWidthInteger>(_: T.Type) {
            let first = s.loadUnaligned(as: T.self), last = s.loadUnaligned(fromByteOffset: n - MemoryLayout<T>.size, as: T.self)
            d.storeBytes(of: first, as: T.self)
            d.storeBytes(of: last, toByteOffset: n - MemoryLayout<T>.size, as: T.self)
        }
        if n >= 16 {
            guard n <= 32 else { to.update(from: from, count: n); return }
            let first = s.loadUnaligned(as: SIMD16<UInt8>.self), last = s.loadUnaligned(fromByteOffset: n - 16, as: SIMD16<UInt8>.self)
            d.storeBytes(of: first, as: SIMD16<UInt8>.self)
            d.storeBytes(of: last, toByteOffset: n - 16, as: SIMD16<UInt8>.self)
        } else if n >= 8 {
            pieces(UInt64.self)
        } else if n >= 4 {
            pieces(UInt32.self)
        } else if n >= 2 {
            pieces(UInt16.self)
        } else {
            to.pointee = from.pointee
        }
    }

    func keep(_ bytes: ArraySlice<UInt8>) -> Range<Int> { bytes.withUnsafeBufferPointer { keep($0) } }

    /// Room for `needed` kept bytes, doubling as an array grows.
    private func growKept(to needed: Int) {
        keptBytes = ByteBuffers.grow(keptBytes, count: keptCount, capacity: &keptCapacity, toAtLeast: needed)
    }

    /// The request's method is `lowerName` in any case (the framing rules compare it so).
    /// (The lengths compared first, inline: a response's framing asks about HEAD and CONNECT,
    /// and most methods are neither.)
    @inline(__always)
    func methodIs(_ lowerName: StaticString) -> Bool {
        method.count == lowerName.utf8CodeUnitCount
            && HTTPSyntax.equalsIgnoringCase(UnsafeBufferPointer(rebasing: kept[method]), lowerName)
    }

    var isInterim: Bool { !isRequest && statusCode >= 100 && statusCode < 200 && statusCode != 101 }
}

/// A request and the responses to it (interim ones, then the final one). Either side may be
/// missing: a request lost in a gap (`request == nil`, `standIn`), or a response never seen.
/// Reused like messages (see `HTTPSession.makeTransaction`): `reset` sets every stored property.
final class HTTPTransaction {
    @exclusivity(unchecked) var request: HTTPMessage?
    @exclusivity(unchecked) var response: HTTPMessage?
    @exclusivity(unchecked) var interimCodes: [Int] = []
    @exclusivity(unchecked) var interimBytes = 0
    @exclusivity(unchecked) var notes = Notes()
    /// A placeholder for requests lost in a gap: the next response pairs with it.
    @exclusivity(unchecked) var standIn = false
    /// Set when the pairing of this transaction cannot be trusted (loss before it settled).
    @exclusivity(unchecked) var pairingLossy = false
    /// The response (or its start) was lost in a gap: the transaction is published without one.
    @exclusivity(unchecked) var responseLost = false

    init(request: HTTPMessage?) { self.request = request }

    /// This transaction made new, as `init(request: nil)` makes it, keeping the capacity of
    /// its arrays. (Its messages are usually taken already: tests are cheaper than releasing
    /// nil references.)
@inline(__always)  // (a few stores, per transaction)
    func reset() {
        if request != nil { request = nil }
        if response != nil { response = nil }
        if !interimCodes.isEmpty { interimCodes.removeAll(keepingCapacity: true) }
        interimBytes = 0
        if !notes.isEmpty { notes = Notes() }
        standIn = false
        pairingLossy = false
        responseLost = false
    }

    var requestDone: Bool { request?.complete ?? true }
    var responseDone: Bool { response?.complete ?? false }
    var hasFinalResponse: Bool { response != nil }
}

/// The messages and transactions of a session, used through unretained references where a
/// strong one would cost a retain and a release (~40 instructions) for nothing: loading a
/// class reference from a property, or binding one with `if let`, retains it whenever a call
/// follows that the optimiser cannot see through, and a transaction's path took some 25 of
/// those. The caller must know the object alive meanwhile (held by the session, the
/// transaction or the caller's caller).
protocol HTTPBorrowable: AnyObject {}
extension HTTPMessage: HTTPBorrowable {}
extension HTTPTransaction: HTTPBorrowable {}

extension Optional where Wrapped: HTTPBorrowable {
    /// The reference, not retained (see `Unmanaged.borrow`).
    @inline(__always) var unretained: Unmanaged<Wrapped>? { map(Unmanaged.passUnretained) }
}

extension Unmanaged where Instance: HTTPBorrowable {
    /// `body` with the object as a borrowed reference: no retain and release around it.
    @inline(__always) func borrow<R>(_ body: (Instance) -> R) -> R { _withUnsafeGuaranteedRef { body($0) } }
}

/// The transactions of a session in flight, oldest first: a ring buffer of strong references
/// (`Array.removeFirst` moved the rest down with two memmoves per transaction published, and
/// reading `first` retained it). Taking one out moves the reference: nothing is retained.
struct TransactionQueue: ~Copyable {
    /// `capacity` slots (a power of 2, or none), `count` of them initialised from `head` on.
    private var slots: UnsafeMutablePointer<HTTPTransaction>?
    private var capacity = 0
    private var head = 0
    private(set) var count = 0

    init() {}

    deinit {
        for i in 0..<count { slot(i).deinitialize(count: 1) }
        slots?.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    /// The `i`th oldest (`0 <= i < count`).
    @inline(__always) private func slot(_ i: Int) -> UnsafeMutablePointer<HTTPTransaction> {
        slots.unsafelyUnwrapped + ((head &+ i) & (capacity &- 1))
    }

    /// The oldest, not retained: alive while it is in the queue.
    var first: Unmanaged<HTTPTransaction>? { count == 0 ? nil : Unmanaged.passUnretained(slot(0).pointee) }

    mutating func append(_ t: consuming HTTPTransaction) {
        if count == capacity { grow() }
        slot(count).initialize(to: t)
        count += 1
    }

    /// The oldest, taken out (its reference moved to the caller).
    mutating func removeFirst() -> HTTPTransaction {
        precondition(count > 0)
        let t = slot(0).move()
        head = (head &+ 1) & (capacity &- 1)
        count -= 1
        return t
    }

    /// Keeps the `n` oldest only.
    mutating func removeAll(after n: Int) {
        while count > n {
            count -= 1
            slot(count).deinitialize(count: 1)
        }
    }

    /// Index of the oldest one `predicate` holds for.
    func firstIndex(where predicate: (HTTPTransaction) -> Bool) -> Int? {
        for i in 0..<count where predicate(slot(i).pointee) { return i }
        return nil
    }

    func contains(where predicate: (HTTPTransaction) -> Bool) -> Bool { firstIndex(where: predicate) != nil }

    /// The oldest one `predicate` holds for, not retained (see `first`).
    func first(where predicate: (HTTPTransaction) -> Bool) -> Unmanaged<HTTPTransaction>? {
        firstIndex(where: predicate).map { Unmanaged.passUnretained(slot($0).pointee) }
    }

    /// Twice the room, the transactions moved to the start.
    private mutating func grow() {
        let larger = Swift.max(capacity * 2, 4)
        let new = UnsafeMutablePointer<HTTPTransaction>.allocate(capacity: larger)
        for i in 0..<count { (new + i).moveInitialize(from: slot(i), count: 1) }
        slots?.deallocate()
        slots = new
        capacity = larger
        head = 0
    }
}
