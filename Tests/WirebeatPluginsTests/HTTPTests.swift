import Testing
import WirebeatCore
@testable import WirebeatPlugins

// MARK: - Conversations

func httpGet(_ path: String, host: String = "example.com", extra: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: test/1.0\r\n\(extra)\r\n"
}
func httpOK(_ body: String, code: String = "200 OK", extra: String = "") -> String {
    "HTTP/1.1 \(code)\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
}

let pipelinedConversation: [HTTPStep] = [
    .client(httpGet("/a") + httpGet("/b?x=1") + "DELETE /c HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    .server(httpOK("alpha") + httpOK("be")),
    .server(httpOK("not here", code: "404 Not Found")),
    .fin(.original), .fin(.reverse),
]

let chunkedWithTrailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    + "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 42\r\nX-More: yes\r\n\r\n"
let chunkedConversation: [HTTPStep] = [
    .client(httpGet("/chunked")),
    .server(chunkedWithTrailers),
    .client(httpGet("/next")),
    .server(httpOK("n")),
    .fin(.original), .fin(.reverse),
]

let continueConversation: [HTTPStep] = [
    .client("POST /upload HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"),
    .server("HTTP/1.1 100 Continue\r\n\r\n"),
    .client("0123456789"),
    .server(httpOK("stored", code: "201 Created")),
    .fin(.original), .fin(.reverse),
]

let bodylessConversation: [HTTPStep] = [
    .client("HEAD /h HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    .server("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"),
    .client(httpGet("/n", extra: "If-None-Match: \"x\"\r\n")),
    .server("HTTP/1.1 304 Not Modified\r\nContent-Length: 5000\r\n\r\n"),
    .client("DELETE /d HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    .server("HTTP/1.1 204 No Content\r\n\r\n"),
    .client(httpGet("/after")),
    .server(httpOK("done")),
    .fin(.original), .fin(.reverse),
]

// MARK: - Tests

@Test func pipelinedRequestsPairInOrder() {
    let events = runHTTP(pipelinedConversation)
    #expect(events.map(\.httpMethod) == ["GET", "GET", "DELETE"])
    #expect(events.map(\.httpCode) == [200, 200, 404])
    #expect(events.map { $0.httpString("url.path") } == ["/a", "/b", "/c"])
    #expect(events[1].httpString("url.query") == "x=1")
    #expect(events[1].httpString("url.full") == "http://example.com/b?x=1")
    #expect(events[1].httpInt("http.response.body.bytes") == 2)
    #expect(events[2].httpString("status") == "Error")
    #expect(events[0].httpString("status") == "OK")
    #expect(events.allSatisfy { $0.httpNotes == nil })
    expectHTTPSplitInvariant(pipelinedConversation)
}

@Test func chunkedBodyWithTrailersAtEverySplit() {
    let events = runHTTP(chunkedConversation)
    #expect(events.count == 2)
    #expect(events[0].httpInt("http.response.body.bytes") == 31)
    #expect(events[0].httpInt("http.response.bytes") == Int64(chunkedWithTrailers.utf8.count))
    #expect(events[1].httpString("url.path") == "/next")
    #expect(events.allSatisfy { $0.httpNotes == nil })
    expectHTTPSplitInvariant(chunkedConversation)
}

@Test func interimContinueIsNotTheFinalResponse() {
    let events = runHTTP(continueConversation)
    #expect(events.count == 1)
    #expect(events[0].httpCode == 201)
    #expect(events[0].httpValue("http.response.interim_status_codes") == .array([.int(100)]))
    #expect(events[0].httpInt("http.request.body.bytes") == 10)
    #expect(events[0].httpNotes == nil)
    expectHTTPSplitInvariant(continueConversation)
}

@Test func headNotModifiedAndNoContentHaveNoBody() {
    let events = runHTTP(bodylessConversation)
    #expect(events.map(\.httpCode) == [200, 304, 204, 200])
    #expect(events.map { $0.httpInt("http.response.body.bytes") } == [0, 0, 0, 4])
    #expect(events.allSatisfy { $0.httpNotes == nil })
    expectHTTPSplitInvariant(bodylessConversation)
}

@Test func connectAndSwitchingProtocolsEndParsing() {
    let connect: [HTTPStep] = [
        .client("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\u{16}\u{03}\u{01}binary tls"),
        .server("HTTP/1.1 200 Connection established\r\n\r\n\u{16}\u{03}\u{03}more tls HTTP/1.1 200 OK\r\n\r\n"),
        .client("GET /not-http HTTP/1.1\r\n\r\n"),
        .fin(.original), .fin(.reverse),
    ]
    var events = runHTTP(connect)
    #expect(events.count == 1)
    #expect(events.first?.httpMethod == "CONNECT")
    #expect(events.first?.httpString("url.domain") == "example.com")
    #expect(events.first?.httpInt("url.port") == 443)
    #expect(events.first?.httpNotes == nil)
    expectHTTPSplitInvariant(connect)

    let refused: [HTTPStep] = [
        .client("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        .server(httpOK("no", code: "403 Forbidden")),
        .client(httpGet("/x")),
        .server(httpOK("x")),
    ]
    #expect(runHTTP(refused).map(\.httpCode) == [403, 200])

    let upgrade: [HTTPStep] = [
        .client(httpGet("/ws", extra: "Connection: Upgrade\r\nUpgrade: websocket\r\n")),
        .server("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{05}hello"),
        .client("\u{81}\u{85}GET / HTTP/1.1\r\n\r\n"),
        .server("HTTP/1.1 200 OK\r\n\r\n"),
    ]
    events = runHTTP(upgrade)
    #expect(events.map(\.httpCode) == [101])
    expectHTTPSplitInvariant(upgrade)
}

@Test func basicAuthUserWithoutTheSecret() {
    let credentials = Base64.encode(Array("alice:s3cret-Passw0rd".utf8))
    let steps: [HTTPStep] = [
        .client(httpGet("/private/", extra: "Authorization: Basic \(credentials)\r\nProxy-Authorization: Basic \(credentials)\r\n")),
        .server(httpOK("ok")),
    ]
    let config: [String: ConfigValue] = ["send_request": .scalar("true"), "send_response": .scalar("true"),
                                         "send_all_headers": .scalar("true")]
    let events = runHTTP(steps, config: config)
    #expect(events.count == 1)
    #expect(events[0].httpString("user.name") == "alice")
    let text = httpLines(events).joined()
    #expect(!text.contains("s3cret"))
    #expect(!text.contains(credentials))
    #expect(events[0].httpString("request")?.contains("Authorization: Basic [redacted]\r\n") == true)
    #expect(events[0].httpString("http.request.headers.authorization") == "Basic [redacted]")
    // The byte counts are those of the real message.
    #expect(events[0].httpInt("http.request.bytes") == Int64(steps[0].payload!.1.count))
}

@Test func headersRealIPAndMaxMessageSize() {
    let steps: [HTTPStep] = [
        .client(httpGet("/p", extra: "X-Forwarded-For: 203.0.113.7, 10.0.0.9\r\nAccept: a\r\nAccept: b\r\nX.Dotted: d\r\n")),
        .server(httpOK(String(repeating: "z", count: 300), extra: "Content-Type: text/plain; charset=utf-8\r\n")),
    ]
    let config: [String: ConfigValue] = ["send_headers": .list([.scalar("Accept"), .scalar("x.dotted")]),
                                         "real_ip_header": .scalar("X-Forwarded-For"),
                                         "send_response": .scalar("true"), "max_message_size": .scalar("100")]
    let e = runHTTP(steps, config: config)[0]
    #expect(e.httpString("http.request.headers.accept") == "a, b")
    #expect(e.httpString("http.request.headers.x_dotted") == "d")
    #expect(e.httpValue("http.request.headers.host") == nil)
    #expect(e.httpString("network.forwarded_ip") == "203.0.113.7")
    #expect(e.httpString("http.response.mime_type") == "text/plain")
    #expect(e.httpString("response")?.utf8.count == 100)
    #expect(e.httpInt("http.response.body.bytes") == 300)
    #expect(e.httpNotes?.contains("max_message_size") == true)
    #expect(throws: ConfigError.self) { try HTTPPlugin(config: PluginConfig(pluginName: "http", values: ["send_all_headers": .scalar("maybe")])) }
}

@Test func largeBodyIsCountedNotBuffered() {
    let size = 10_000_000
    var steps: [HTTPStep] = [.client(httpGet("/big")), .server("HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n")]
    let piece = [UInt8](repeating: 0x41, count: 100_000)
    for _ in 0..<(size / piece.count) { steps.append(.serverBytes(piece)) }
    let events = runHTTP(steps)
    #expect(events.count == 1)
    #expect(events[0].httpInt("http.response.body.bytes") == Int64(size))
    #expect(events[0].httpNotes == nil)
}

@Test func closeDelimitedBodyEndsAtFIN() {
    let steps: [HTTPStep] = [
        .client("GET /old HTTP/1.0\r\n\r\n"),
        .server("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nline one\n"),
        .server("line two\n"),
        .fin(.reverse), .fin(.original),
    ]
    let events = runHTTP(steps)
    #expect(events.count == 1)
    #expect(events[0].httpInt("http.response.body.bytes") == 18)
    #expect(events[0].httpString("http.version") == "1.0")
    #expect(events[0].httpNotes == nil)
    // A reset is no proof of the end.
    let reset = runHTTP(Array(steps.dropLast(2)) + [.reset])
    #expect(reset[0].httpNotes?.contains("reset") == true)
    expectHTTPSplitInvariant(steps)
}

@Test func gapInBodyKeepsTheEventWithANote() {
    let body = String(repeating: "b", count: 1000)
    let response = Array(httpOK(body).utf8)
    let steps: [HTTPStep] = [
        .client(httpGet("/x")),
        .lossy(.reverse, response, lost: (response.count - 500)..<(response.count - 200)),
        .client(httpGet("/y")),
        .server(httpOK("y")),
    ]
    let events = runHTTP(steps)
    #expect(events.count == 2)
    #expect(events[0].hasLossNote)
    #expect(events[0].httpInt("http.response.body.bytes") == 1000)
    #expect(events[0].httpCode == 200)
    #expect(events[1].httpNotes == nil)
    #expect(events[1].httpString("url.path") == "/y")
}

@Test func gapInHeadersDropsTheMessageAndResyncs() {
    let request = Array(httpGet("/lost", extra: "Accept: */*\r\n").utf8)
    let steps: [HTTPStep] = [
        .lossy(.original, request, lost: 20..<30),
        .server(httpOK("for lost")),
        .client(httpGet("/after")),
        .server(httpOK("after")),
    ]
    let events = runHTTP(steps)
    #expect(events.count == 2)
    #expect(events[0].hasLossNote)
    #expect(events[0].httpMethod == nil)
    #expect(events[1].httpString("url.path") == "/after")
    #expect(events[1].httpNotes == nil)

    // A response header cut: the request is published without it, marked; the next pair is clean.
    let response = Array(httpOK("abc").utf8)
    let serverSide: [HTTPStep] = [
        .client(httpGet("/one")),
        .lossy(.reverse, response, lost: 5..<12),
        .client(httpGet("/two")),
        .server(httpOK("two")),
    ]
    let out = runHTTP(serverSide)
    #expect(out.count == 2)
    #expect(out[0].httpString("url.path") == "/one" && out[0].hasLossNote && out[0].httpCode == nil)
    #expect(out[1].httpString("url.path") == "/two" && out[1].httpNotes == nil)
}

@Test func unmatchedAtFINAndTimeout() {
    let steps: [HTTPStep] = [.client(httpGet("/waiting")), .fin(.original), .fin(.reverse)]
    let events = runHTTP(steps)
    #expect(events.count == 1)
    #expect(events[0].httpNotes == "Unmatched request")
    #expect(events[0].httpString("status") == "Error")

    let response: [HTTPStep] = [.server(httpOK("orphan"))]
    let orphan = runHTTP(response, close: .timeout)
    #expect(orphan.count == 1)
    #expect(orphan[0].httpNotes == "Unmatched response")

    // A response cut by the idle timeout: published with a note, never as complete.
    let cut: [HTTPStep] = [.client(httpGet("/slow")), .server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")]
    let partial = runHTTP(cut, close: .timeout)
    #expect(partial.count == 1)
    #expect(partial[0].httpNotes?.contains("expired") == true)
}

@Test func nonStandardMethodAndAbsoluteTarget() {
    let steps: [HTTPStep] = [
        .client("PURGE /cache HTTP/1.1\r\nHost: example.com\r\n\r\n"
                + "GET http://user:pw@proxy.example:8080/p?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n"),
        .server(httpOK("") + httpOK("p")),
    ]
    let events = runHTTP(steps)
    #expect(events.map(\.httpMethod) == ["PURGE", "GET"])
    #expect(events[1].httpString("url.full") == "http://proxy.example:8080/p?q=1")
    #expect(events[1].httpString("url.original") == "http://user:[redacted]@proxy.example:8080/p?q=1")
    #expect(events[1].httpString("url.domain") == "proxy.example")
}

/// The events of a connection share the JSON text of what repeats (the Host's part of `url`,
/// method, MIME types, phrase): whatever came before it, each event must be written byte for
/// byte as the same transaction alone on a connection of its own is.
@Test func repeatedTextIsWhatEachTransactionMakesAlone() {
    let targets = ["/", "/a?b", "/a?", "/a?b?c", "/a%20b", "/é", "/a:b", "/x?r=http://u:p@h/", "/a\"b", "/q?\\x",
                   "*", "http://user:pw@proxy:8080/p?q=1", "http://h?x", "example.com:443"]
    let hosts: [String?] = ["example.com", "example.com:8080", "", nil, "h:99999", "h:", ":80", "[::1]:80",
                            "ex\"ample", "exämple", "h:-0", "a:b:c", "example.com"]
    let responses = ["HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1\r\n\r\nx",
                     "HTTP/1.1 404 Not Found\r\nContent-Type: Text/HTML; charset=x\r\nContent-Length: 0\r\n\r\n",
                     "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 200 Fine\r\nContent-Type: ;\r\nContent-Length: 0\r\n\r\n"]
    var pairs: [(String, String)] = []
    for host in hosts {
        for target in targets {
            let method = target == "example.com:443" ? "PUT" : (pairs.count % 3 == 0 ? "POST" : "GET")
            let type = pairs.count % 5 == 0 ? "" : "Content-Type: application/json\r\n"
            pairs.append(("\(method) \(target) HTTP/1.1\r\n" + (host.map { "Host: \($0)\r\n" } ?? "") + type + "\r\n",
                          responses[pairs.count % responses.count]))
        }
    }
    func written(_ events: [Event]) -> [String] {
        events.map { e in
            var out: [UInt8] = []
            e.writeCompactJSON(into: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }
    let together = written(runHTTP([.client(pairs.map(\.0).joined()), .server(pairs.map(\.1).joined())]))
    let alone = pairs.flatMap { written(runHTTP([.client($0.0), .server($0.1)])) }
    #expect(together.count == pairs.count)
    #expect(together == alone)
}

/// The server's stream ends while the client still sends its request: the transaction is
/// published then, marked, and the client's side goes on reading the rest of that request
/// (the parser holds it, out of the queue), then the next one. Also an interim response
/// interrupted by the end of the server's stream.
@Test func serverEndsWhileTheClientStillSends() {
    let steps: [HTTPStep] = [
        .client("POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nabc"),
        .server(httpOK("")),
        .fin(.reverse),
        .client("defghij"),
        .client(httpGet("/next")),
        .fin(.original),
    ]
    for split in [HTTPSplit.whole, .bytewise] {
        let events = runHTTP(steps, split: split)
        #expect(events.count == 2)
        #expect(events.first?.httpNotes == HTTPNote.incompleteRequest)
        #expect(events.first?.httpCode == 200)
        #expect(events.last?.httpString("url.path") == "/next")
        #expect(events.last?.httpNotes == HTTPNote.unmatchedRequest)
    }
    let interim: [HTTPStep] = [
        .client("PUT /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"),
        .server("HTTP/1.1 100 Continue\r\n"),
        .fin(.reverse),
        .client("ok"),
        .fin(.original),
    ]
    for split in [HTTPSplit.whole, .bytewise] {
        let events = runHTTP(interim, split: split)
        #expect(events.count == 1)
        #expect(events.first?.httpCode == nil)
        #expect(events.first?.httpValue("http.response.interim_status_codes") == .array([.int(100)]))
    }
}
