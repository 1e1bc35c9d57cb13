import Foundation
import Testing
import WirebeatCore
@testable import WirebeatPlugins

/// After a gap, every event must be one the undamaged stream gives, or carry "packet loss".
func expectLossRule(_ steps: [Step], damaged: [Step], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    let reference = Set(jsonLines(runSMTP(steps)))
    for (line, event) in zip(jsonLines(runSMTP(damaged)), runSMTP(damaged))
    where !reference.contains(line) && !(event.notes?.contains("packet loss") ?? false) {
        Issue.record("event neither undamaged nor marked: \(line)", sourceLocation: sourceLocation)
        return false
    }
    return true
}

@Test func lossRuleHoldsForEveryGapPosition() {
    let env = ProcessInfo.processInfo.environment
    var rng = SplitMix64(seed: env["SMTP_FUZZ_SEED"].flatMap { UInt64($0) } ?? 7)
    let extraRanges = env["SMTP_LOSS_RANGES"].flatMap { Int($0) } ?? 12
    let sessions = [plainSession, pipelinedSession, bdatSession, authSession, pickupSession, starttlsSession,
                    rsetSession]
    for session in sessions {
        for (index, step) in session.enumerated() {
            guard let (direction, bytes) = step.payload, !bytes.isEmpty else { continue }
            var ranges: [Range<Int>] = [0..<bytes.count, 0..<1, (bytes.count - 1)..<bytes.count]
            for _ in 0..<extraRanges {
                let a = Int.random(in: 0..<bytes.count, using: &rng)
                let b = Int.random(in: (a + 1)...bytes.count, using: &rng)
                ranges.append(a..<b)
            }
            for range in ranges {
                var damaged = session
                damaged[index] = .lossy(direction, bytes, lost: range)
                if !expectLossRule(session, damaged: damaged) {
                    Issue.record("session step \(index), lost \(range)")
                    return
                }
            }
        }
    }
}

/// SMTP-shaped noise: real lines and fragments of them, binary bytes, gaps and FINs.
func randomConversation(_ rng: inout SplitMix64) -> [Step] {
    let clientLines = ["EHLO x\r\n", "MAIL FROM:<a@b>\r\n", "RCPT TO:<c@d>\r\n", "DATA\r\n", "BDAT 5\r\n",
                       "BDAT 3 LAST\r\n", "BDAT 99999999999\r\n", ".\r\n", "..\r\n", "AUTH LOGIN\r\n",
                       "AUTH PLAIN AGEAYg==\r\n", "STARTTLS\r\n", "RSET\r\n", "QUIT\r\n", "\r\n", ".", "\r",
                       "\n", "Subject: x\r\n", "NOOP", "mail from:<>\r\n"]
    let serverLines = ["220 hi\r\n", "250 ok\r\n", "250-x\r\n", "354 go\r\n", "334 VXNlcm5hbWU6\r\n",
                       "235 ok\r\n", "550 no\r\n", "221 bye\r\n", "421 closing\r\n", "2", "\r\n", "999 x\r\n"]
    var steps: [Step] = []
    for _ in 0..<Int.random(in: 1...30, using: &rng) {
        let roll = Int.random(in: 0..<100, using: &rng)
        func noise() -> [UInt8] { (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        func lines(_ vocabulary: [String]) -> [UInt8] {
            (0..<Int.random(in: 1...6, using: &rng)).flatMap { _ in Array(vocabulary.randomElement(using: &rng)!.utf8) }
        }
        switch roll {
        case 0..<35: steps.append(.clientBytes(lines(clientLines)))
        case 35..<70: steps.append(.serverBytes(lines(serverLines)))
        case 70..<80: steps.append(.clientBytes(noise()))
        case 80..<88: steps.append(.serverBytes(noise()))
        case 88..<94: steps.append(.gap(Bool.random(using: &rng) ? .original : .reverse, Int.random(in: 1...5000, using: &rng)))
        default: steps.append(.clientBytes(Array(repeating: UInt8.random(in: 0...255, using: &rng), count: Int.random(in: 0...20_000, using: &rng))))
        }
    }
    // FIN at most once per direction, then no more bytes that way.
    if Bool.random(using: &rng) { steps.append(.fin(.original)) }
    if Bool.random(using: &rng) { steps.append(.fin(.reverse)) }
    return steps
}

@Test func randomInputNeverCrashesAndIsSplitInvariant() {
    // SMTP_FUZZ_ITERATIONS / SMTP_FUZZ_SEED for longer runs.
    let env = ProcessInfo.processInfo.environment
    var rng = SplitMix64(seed: env["SMTP_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EED)
    let closes: [CloseReason] = [.closed, .timeout, .endOfInput]
    for iteration in 0..<(env["SMTP_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 400) {
        let steps = randomConversation(&rng)
        let close = closes[iteration % 3]
        let whole = jsonLines(runSMTP(steps, close: close))
        let pieces = jsonLines(runSMTP(steps, split: .random(seed: UInt64(iteration)), close: close))
        if whole != pieces {
            Issue.record("iteration \(iteration): output depends on segmentation")
            return
        }
    }
}

@Test func randomBytesOnlyTerminate() {
    var rng = SplitMix64(seed: 42)
    for _ in 0..<200 {
        var steps: [Step] = []
        for _ in 0..<Int.random(in: 1...10, using: &rng) {
            let bytes = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            steps.append(Bool.random(using: &rng) ? .clientBytes(bytes) : .serverBytes(bytes))
        }
        _ = runSMTP(steps, split: .random(seed: rng.next()))
    }
}
