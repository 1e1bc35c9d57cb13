import WirebeatCore

/// Cross-check with tshark's `memcache` dissector (Wireshark 4.0).
///
/// What both sides agree on: for each request, the client port, the command, its keys and
/// `noreply`. tshark is left to decide the rest because, on real captures, its text-protocol
/// dissector (a) dissects only the first request of a segment (the other pipelined requests
/// of that segment are not shown), (b) does not know `touch`, `verbosity`, `gat`/`gats` or
/// unknown commands (the request row has no command), and (c) loses keys and values in
/// replies to `gets` and in multi-`VALUE` replies. So records are requests only; on the
/// plugin side, of the requests that completed in the same packet (same client port and
/// `@timestamp`) only the first is kept, and only for the commands tshark dissects.
extension MemcachePlugin: DissectorComparable {
    static let tsharkCommands: Set<String> = ["get", "gets", "set", "add", "replace", "append", "prepend", "cas",
                                              "delete", "incr", "decr", "flush_all", "version", "stats", "quit"]

    public static var crossCheck: DissectorCrossCheck {
        DissectorCrossCheck(
            decodeAs: "memcache",
            displayFilter: "memcache.command",
            fields: ["tcp.srcport", "memcache.command", "memcache.key", "memcache.noreply"],
            recordsFromRows: { rows in
                rows.compactMap { row -> String? in
                    guard row.count >= 4 else { return nil }
                    let sep = DissectorCrossCheck.aggregator
                    // The first command of the packet; its keys (tshark shows no other request's).
                    guard let command = row[1].components(separatedBy: sep).first,
                          tsharkCommands.contains(command) else { return nil }
                    let keys = row[2].isEmpty ? [] : row[2].components(separatedBy: sep)
                    return record(port: row[0], command: command, keys: keys, noreply: !row[3].isEmpty)
                }
            },
            recordsFromEvents: { events in
                var seen = Set<String>()
                return events.compactMap { event -> String? in
                    guard let command = event.value(at: "memcache.request.command")?.stringValue,
                          let port = event.value(at: "client.port")?.intValue,
                          let time = event["@timestamp"]?.stringValue,
                          seen.insert("\(port) \(time)").inserted,
                          tsharkCommands.contains(command) else { return nil }
                    let keys = event.value(at: "memcache.request.keys")?.arrayValue?.compactMap(\.stringValue) ?? []
                    let noreply = event.value(at: "memcache.request.noreply") == .bool(true)
                    return record(port: String(port), command: command, keys: keys, noreply: noreply)
                }
            })
    }

    static func record(port: String, command: String, keys: [String], noreply: Bool) -> String {
        "client port \(port): \(command) [\(keys.joined(separator: " "))]" + (noreply ? " noreply" : "")
    }
}
