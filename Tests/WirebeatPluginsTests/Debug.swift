import Testing
import WirebeatCore
@testable import WirebeatPlugins
@Test func debugDump() {
    let long = String(repeating: "x", count: 20_000)
    let events = runSMTP([greeting] + ehlo + [
        .client("NOOP \(long)\r\n"), .server("500 5.5.2 line too long\r\n"),
        .client("NOOP\r\n"), .server("250 ok\r\n"),
        .clientBytes(Array(repeating: 0x42, count: 50_000)),
    ] + quit)
    for l in jsonLines(events) { print(l) }
}
