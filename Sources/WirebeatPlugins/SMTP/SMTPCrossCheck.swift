import WirebeatCore

/// SMTP is cross-checked on the envelope: for each mail transaction, the sender and the
/// recipients in order, as tshark's MAIL FROM / RCPT TO commands give them.
extension SMTPPlugin: DissectorComparable {
    public static var crossCheck: DissectorCrossCheck {
        DissectorCrossCheck(
            decodeAs: "smtp",
            displayFilter: "smtp.req.command",
            fields: ["tcp.stream", "smtp.command_line"],
            recordsFromRows: { rows in
                var records: [String] = []
                var open: [String: (from: String, to: [String])] = [:]
                var order: [String] = []
                func close(_ stream: String) {
                    if let t = open.removeValue(forKey: stream) { records.append(envelope(t.from, t.to)) }
                }
                // One row per packet; pipelined commands share a cell, joined by the aggregator.
                let lines = rows.filter { $0.count >= 2 }.flatMap { row in
                    row[1].components(separatedBy: DissectorCrossCheck.aggregator).map { (row[0], $0) }
                }
                for (stream, rawLine) in lines {
                    var line = rawLine
                    if line.hasSuffix("\\r\\n") { line.removeLast(4) }
                    let words = line.split(separator: " ", maxSplits: 1)
                    let command = words.first.map { $0.uppercased() } ?? ""
                    let parameter = words.count > 1 ? String(words[1]) : ""
                    if !order.contains(stream) { order.append(stream) }
                    switch command {
                    case "MAIL":
                        close(stream)
                        open[stream] = (address(in: parameter), [])
                    case "RCPT":
                        open[stream]?.to.append(address(in: parameter))
                    case "RSET", "QUIT", "HELO", "EHLO":
                        close(stream)
                    default: break
                    }
                }
                for stream in order { close(stream) }
                return records
            },
            recordsFromEvents: { events in
                events.compactMap { event -> String? in
                    guard let type = event.value(at: "smtp.type")?.stringValue, type == "MAIL" || type == "ABORTED",
                          let from = event.value(at: "smtp.mail_from")?.stringValue else { return nil }
                    let to = event.value(at: "smtp.rcpt_to")?.arrayValue?.compactMap(\.stringValue) ?? []
                    return envelope(from, to)
                }
            })
    }

    private static func envelope(_ from: String, _ to: [String]) -> String {
        "MAIL FROM <\(from)> RCPT TO " + to.map { "<\($0)>" }.joined(separator: " ")
    }

    /// The address between angle brackets of `FROM:<a@b> SIZE=1` (lower-cased domain kept as sent).
    private static func address(in parameter: String) -> String {
        guard let open = parameter.firstIndex(of: "<"),
              let close = parameter[open...].firstIndex(of: ">") else {
            let afterColon = parameter.split(separator: ":", maxSplits: 1).last.map(String.init) ?? parameter
            return afterColon.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
        }
        return String(parameter[parameter.index(after: open)..<close])
    }
}

import Foundation
