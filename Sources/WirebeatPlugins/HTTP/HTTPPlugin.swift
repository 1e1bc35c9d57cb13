import WirebeatCore

/// Settings of the HTTP plugin (`protocols.http.*`), named as in Packetbeat.
struct HTTPConfig {
    /// Raw request text (headers and body up to `max_message_size`) in `request`; the
    /// credentials of `Authorization`/`Proxy-Authorization` are redacted.
    var sendRequest = false
    /// Raw response text in `response`.
    var sendResponse = false
    /// Header names (any case) published under `http.request.headers.*` / `http.response.headers.*`.
    var sendHeaders: [String] = []
    /// Publish every header.
    var sendAllHeaders = false
    /// Header holding the real client address behind proxies (e.g. `X-Forwarded-For`),
    /// published as `network.forwarded_ip`.
    var realIPHeader: String?
    /// Messages larger than this are still parsed and counted, but no more of them is stored
    /// (`request`/`response` text) and the event says so.
    var maxMessageSize = 10 * 1024 * 1024
    var transactionTimeout = TimeSpan.seconds(10)
    /// Longest start, header, chunk-size or trailer line (without CRLF) that is parsed.
    static let maxLineLength = 65_536
    /// Transactions waiting for their responses; beyond this the oldest is published unanswered.
    static let maxPending = 1024
}

/// HTTP/1.0 and HTTP/1.1: requests paired with responses in order (pipelining), keep-alive
/// and close, bodies framed by Content-Length, chunked encoding (with trailers) or the end of
/// the connection; HEAD, 1xx (interim), 204 and 304 without bodies; CONNECT and
/// `101 Switching Protocols` end the parsing of their connection. Bodies are counted as they
/// arrive, never buffered.
///
/// One event per transaction (`type: http`), published when both messages are complete, or
/// with a note when one side never completes.
public final class HTTPPlugin: TCPProtocolPlugin {
    public static let name = "http"
    public static let defaultPorts: [UInt16] = [80, 8080, 8000, 5000, 8002]

    let settings: HTTPConfig
    public var connectionTimeout: TimeSpan { settings.transactionTimeout }

    public init(config: PluginConfig) throws {
        var s = HTTPConfig()
        s.sendRequest = try config.bool("send_request", default: s.sendRequest)
        s.sendResponse = try config.bool("send_response", default: s.sendResponse)
        s.sendHeaders = try config.stringList("send_headers", default: []).map { $0.lowercased() }
        s.sendAllHeaders = try config.bool("send_all_headers", default: s.sendAllHeaders)
        s.realIPHeader = try config.string("real_ip_header", default: nil)?.lowercased()
        s.maxMessageSize = try config.int("max_message_size", default: s.maxMessageSize, range: 1...Int(Int32.max))
        s.transactionTimeout = try config.duration("transaction_timeout", default: s.transactionTimeout)
        settings = s
    }

    public func makeConnectionState(for connection: ConnectionInfo) -> HTTPSession {
        HTTPSession(config: settings)
    }

    public func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout HTTPSession,
                      context: PluginContext) {
        state.parse(&stream, direction, context)
    }

    public func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                            state: inout HTTPSession, context: PluginContext) {
        state.streamEnded(direction, reason: reason, remaining: &stream, context)
    }

    public func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                            state: inout HTTPSession, context: PluginContext) -> GapDecision {
        state.gap(direction, byteCount: byteCount, stream: &stream, context)
        return .keepState
    }

    public func connectionClosed(reason: CloseReason, state: inout HTTPSession, context: PluginContext) {
        state.close(reason, context)
    }
}

/// Request methods Wireshark's HTTP dissector recognises (its `is_http_request_or_reply`).
let tsharkMethods: Set<String> = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT",
    "CHECKIN", "CHECKOUT", "UNCHECKOUT", "MKACTIVITY", "MERGE", "LABEL", "UPDATE", "VERSION-CONTROL",
    "BASELINE-CONTROL", "MKWORKSPACE", "ORDERPATCH", "ACL", "POLL", "BMOVE", "BCOPY", "BDELETE",
    "BPROPFIND", "BPROPPATCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "M-SEARCH", "SSDP", "MKCALENDAR",
]

extension HTTPPlugin: DissectorComparable {
    /// Requests as `REQ <method> <request-target>` (methods tshark knows), responses
    /// (interim ones too) as `RESP <code>`.
    public static var crossCheck: DissectorCrossCheck {
        DissectorCrossCheck(
            decodeAs: "http",
            displayFilter: "http.request || http.response",
            fields: ["http.request.method", "http.request.uri", "http.response.code"],
            recordsFromRows: { rows in
                var out: [String] = []
                let separator = DissectorCrossCheck.aggregator
                for row in rows {
                    // Pipelined messages in one packet share a row, their values joined by the aggregator.
                    let methods = row.count > 0 ? row[0].components(separatedBy: separator) : []
                    let uris = row.count > 1 ? row[1].components(separatedBy: separator) : []
                    for (i, m) in methods.enumerated() where !m.isEmpty {
                        out.append("REQ \(m) \(i < uris.count ? uris[i] : "")")
                    }
                    if row.count > 2 {
                        for code in row[2].components(separatedBy: separator) where !code.isEmpty { out.append("RESP \(code)") }
                    }
                }
                return out
            },
            recordsFromEvents: { events in
                var out: [String] = []
                for e in events {
                    // tshark dissects only the methods it knows as requests (not e.g. BREW).
                    if let method = e.value(at: "http.request.method")?.stringValue, tsharkMethods.contains(method) {
                        out.append("REQ \(method) \(e.value(at: "url.original")?.stringValue ?? "")")
                    }
                    if let interim = e.value(at: "http.response.interim_status_codes")?.arrayValue {
                        for code in interim { if let c = code.intValue { out.append("RESP \(c)") } }
                    }
                    if let code = e.value(at: "http.response.status_code")?.intValue { out.append("RESP \(code)") }
                }
                return out
            })
    }
}

import Foundation
