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
final class HTTPMessage {
    let isRequest: Bool
    /// Packet time of the first byte, and of the last byte consumed so far.
    let start: Timestamp
    var end: Timestamp

    /// The values of the start line and of the headers the event needs, copied out of the
    /// stream buffer (which is reused) into this one array: the fields below are ranges of
    /// it. One allocation per message instead of a String per value, and the event takes
    /// the bytes as they are (`Event.set(_:utf8:)`).
    private(set) var kept: [UInt8] = []

    // Start line.
    var method: Range<Int> = 0..<0
    var target: Range<Int> = 0..<0
    /// The `x` of `HTTP/1.x`, 0...9.
    var minorVersion = 0
    var statusCode = 0
    var phrase: Range<Int> = 0..<0

    /// Header fields kept for the event: lower-cased name, value (credentials redacted).
    var headers: [(name: String, value: String)] = []
    var contentLength: Int?
    var chunked = false
    /// `Transfer-Encoding` present but not ending in chunked.
    var otherTransferEncoding = false
    var connectionClose = false
    var upgrade = false
    var host: Range<Int>?
    var userAgent: Range<Int>?
    var contentType: Range<Int>?
    var user: String?
    var forwardedFor: String?

    /// Bytes of the whole message (start line, headers, framing, body) and of the body alone.
    var bytes = 0
    var bodyBytes = 0
    var headersComplete = false
    var complete = false
    /// Raw text for `send_request`/`send_response`, up to `max_message_size`.
    var raw: [UInt8]?
    /// `raw` is kept: a constant, so reading it needs no exclusivity check (`raw` does, as
    /// it is appended to).
    let keepsRaw: Bool
    var notes = Notes()
    /// Request started when no earlier request was waiting for its response.
    var afterAnswers = false
    /// Loss counter of the session when the message started (see `HTTPSession.lossEpoch`).
    let epoch: Int

    init(isRequest: Bool, start: Timestamp, epoch: Int, keepRaw: Bool) {
        self.isRequest = isRequest
        self.start = start
        self.end = start
        self.epoch = epoch
        keepsRaw = keepRaw
        raw = keepRaw ? [] : nil
        kept.reserveCapacity(128)  // a start line and a few values, usually
    }

    /// Copies `bytes` into `kept`; their range there.
    func keep(_ bytes: ArraySlice<UInt8>) -> Range<Int> {
        let start = kept.count
        kept.append(contentsOf: bytes)
        return start..<kept.count
    }

    /// The request's method is `lowerName` in any case (the framing rules compare it so).
    func methodIs(_ lowerName: StaticString) -> Bool {
        HTTPSyntax.equalsIgnoringCase(kept[method], lowerName)
    }

    var isInterim: Bool { !isRequest && statusCode >= 100 && statusCode < 200 && statusCode != 101 }
}

/// A request and the responses to it (interim ones, then the final one). Either side may be
/// missing: a request lost in a gap (`request == nil`, `standIn`), or a response never seen.
final class HTTPTransaction {
    var request: HTTPMessage?
    var response: HTTPMessage?
    var interimCodes: [Int] = []
    var interimBytes = 0
    var notes = Notes()
    /// A placeholder for requests lost in a gap: the next response pairs with it.
    var standIn = false
    /// Set when the pairing of this transaction cannot be trusted (loss before it settled).
    var pairingLossy = false
    /// The response (or its start) was lost in a gap: the transaction is published without one.
    var responseLost = false

    init(request: HTTPMessage?) { self.request = request }

    var requestDone: Bool { request?.complete ?? true }
    var responseDone: Bool { response?.complete ?? false }
    var hasFinalResponse: Bool { response != nil }
}
