import Testing
import WirebeatCore
@testable import WirebeatPlugins

/// After a loss, every event must be one the undamaged conversation gives, or carry "packet loss".
@Test func httpLossRuleHoldsForEveryGapPosition() {
    var rng = HTTPRandom(seed: 11)
    for conversation in [pipelinedConversation, chunkedConversation, continueConversation, bodylessConversation] {
        let reference = Set(httpLines(runHTTP(conversation)))
        for (index, step) in conversation.enumerated() {
            guard let (direction, bytes) = step.payload, !bytes.isEmpty else { continue }
            var ranges: [Range<Int>] = [0..<bytes.count, 0..<1, (bytes.count - 1)..<bytes.count]
            for _ in 0..<12 {
                let a = Int.random(in: 0..<bytes.count, using: &rng)
                ranges.append(a..<Int.random(in: (a + 1)...bytes.count, using: &rng))
            }
            for range in ranges {
                var damaged = conversation
                damaged[index] = .lossy(direction, bytes, lost: range)
                let events = runHTTP(damaged)
                for (line, event) in zip(httpLines(events), events) where !reference.contains(line) && !event.hasLossNote {
                    Issue.record("step \(index), lost \(range): event neither undamaged nor marked: \(line)")
                    return
                }
            }
        }
    }
}

/// HTTP-shaped noise: real lines and pieces of them, binary bytes, gaps, FINs and resets.
func randomHTTPConversation(_ rng: inout HTTPRandom) -> [HTTPStep] {
    let clientPieces = ["GET / HTTP/1.1\r\n", "POST /p HTTP/1.1\r\n", "HEAD /h HTTP/1.0\r\n", "CONNECT a:1 HTTP/1.1\r\n",
                        "Host: x\r\n", "Content-Length: 5\r\n", "Content-Length: 99999999999999999999\r\n",
                        "Transfer-Encoding: chunked\r\n", "Connection: upgrade\r\n", "Expect: 100-continue\r\n",
                        "Authorization: Basic YTpi\r\n", "\r\n", "5\r\nhello\r\n", "0\r\n\r\n", "zz\r\n", "\r", "\n", " folded\r\n"]
    let serverPieces = ["HTTP/1.1 200 OK\r\n", "HTTP/1.1 100 Continue\r\n", "HTTP/1.0 101 x\r\n", "HTTP/1.1 204 No\r\n",
                        "HTTP/1.1 304 x\r\n", "Content-Length: 3\r\n", "Content-Length: -1\r\n", "Transfer-Encoding: chunked\r\n",
                        "Transfer-Encoding: gzip\r\n", "\r\n", "abc", "3\r\nabc\r\n", "0\r\nT: 1\r\n\r\n", "ffffffffffffffff\r\n", "HTTP/1.1 2"]
    var steps: [HTTPStep] = []
    for _ in 0..<Int.random(in: 1...30, using: &rng) {
        func noise() -> [UInt8] { (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        func pieces(_ vocabulary: [String]) -> [UInt8] {
            (0..<Int.random(in: 1...8, using: &rng)).flatMap { _ in Array(vocabulary.randomElement(using: &rng)!.utf8) }
        }
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<35: steps.append(.clientBytes(pieces(clientPieces)))
        case 35..<70: steps.append(.serverBytes(pieces(serverPieces)))
        case 70..<80: steps.append(.clientBytes(noise()))
        case 80..<88: steps.append(.serverBytes(noise()))
        case 88..<95: steps.append(.gap(Bool.random(using: &rng) ? .original : .reverse, Int.random(in: 1...5000, using: &rng)))
        default: steps.append(.serverBytes(Array(repeating: UInt8.random(in: 0...255, using: &rng), count: Int.random(in: 0...80_000, using: &rng))))
        }
    }
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: steps.append(.fin(.original))
    case 1: steps += [.fin(.reverse), .fin(.original)]
    case 2: steps.append(.reset)
    default: break
    }
    return steps
}

@Test func httpGarbageNeverCrashesAndIsSplitInvariant() {
    var rng = HTTPRandom(seed: 0x4854_5450)
    let closes: [CloseReason] = [.closed, .timeout, .endOfInput]
    for iteration in 0..<300 {
        let steps = randomHTTPConversation(&rng)
        let close = closes[iteration % 3]
        let whole = httpLines(runHTTP(steps, close: close))
        let pieces = httpLines(runHTTP(steps, split: .random(seed: UInt64(iteration)), close: close))
        if whole != pieces {
            Issue.record("iteration \(iteration): output depends on segmentation")
            return
        }
    }
}

@Test func httpRandomBytesOnlyTerminate() {
    var rng = HTTPRandom(seed: 99)
    for _ in 0..<200 {
        var steps: [HTTPStep] = []
        for _ in 0..<Int.random(in: 1...10, using: &rng) {
            let bytes = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            steps.append(Bool.random(using: &rng) ? .clientBytes(bytes) : .serverBytes(bytes))
        }
        _ = runHTTP(steps, split: .random(seed: rng.next()))
    }
}
