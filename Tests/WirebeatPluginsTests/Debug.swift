import Testing
import WirebeatCore
@testable import WirebeatPlugins
@Test func debugDump() {
    var rng = SplitMix64(seed: 0x5EED)
    let closes: [CloseReason] = [.closed, .timeout, .endOfInput]
    for iteration in 0..<400 {
        let steps = randomConversation(&rng)
        let close = closes[iteration % 3]
        let whole = jsonLines(runSMTP(steps, close: close))
        let pieces = jsonLines(runSMTP(steps, split: .random(seed: UInt64(iteration)), close: close))
        if whole != pieces {
            for s in steps { 
                switch s {
                case .clientBytes(let b): print("C", b.count, String(decoding: b.prefix(300), as: UTF8.self).debugDescription)
                case .serverBytes(let b): print("S", b.count, String(decoding: b.prefix(300), as: UTF8.self).debugDescription)
                default: print(s)
                }
            }
            print("WHOLE"); for l in whole { print(l.count > 900 ? String(l.suffix(900)) : l) }
            print("PIECES"); for l in pieces { print(l.count > 900 ? String(l.suffix(900)) : l) }
            return
        }
    }
}
