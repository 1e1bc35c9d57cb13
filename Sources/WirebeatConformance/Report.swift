/// Text table and JUnit XML for conformance results.
public enum ConformanceReport {
    /// One table per plugin: a row per capture, a column per mode, cells `passed/runs`.
    public static func table(_ results: [ConformanceResult]) -> String {
        var out: [String] = []
        let plugins = Array(Set(results.map(\.plugin))).sorted()
        for plugin in plugins {
            let rows = results.filter { $0.plugin == plugin }
            let modes = MutationMode.allCases.filter { m in rows.contains { $0.mode == m } }
            let captures = Array(Set(rows.map(\.capture))).sorted()
            let width = max(7, (captures.map(\.count).max() ?? 0) + 2)
            out.append("plugin \(plugin)")
            out.append(pad("capture", width) + modes.map { pad($0.rawValue, 11) }.joined())
            for capture in captures {
                var line = pad(capture, width)
                for mode in modes {
                    guard let r = rows.first(where: { $0.capture == capture && $0.mode == mode }) else {
                        line += pad("-", 11); continue
                    }
                    line += pad("\(r.passed)/\(r.runs)" + (r.failedCount > 0 ? " ✗" : ""), 11)
                }
                out.append(line)
            }
            let runs = rows.map(\.runs).reduce(0, +), passed = rows.map(\.passed).reduce(0, +)
            out.append("\(runs) runs, \(passed) passed, \(runs - passed) failed")
            // Recovery: golden events after the damage that still came out unchanged, per mode
            // (fin/rst end the connection, so only what came before the cut can be there).
            var recovery: [String] = []
            for mode in modes {
                let r = rows.filter { $0.mode == mode }
                let got = r.map(\.recovered).reduce(0, +), total = r.map(\.recoverable).reduce(0, +)
                if total > 0 { recovery.append("\(mode) \(got)/\(total) (\(got * 100 / total)%)") }
            }
            if !recovery.isEmpty { out.append("recovery after damage: " + recovery.joined(separator: ", ")) }
            out.append("")
        }
        return out.joined(separator: "\n")
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    public static func junit(_ results: [ConformanceResult]) -> String {
        func esc(_ s: String) -> String {
            var out = ""
            for ch in s.unicodeScalars {
                switch ch {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                default:
                    if ch.value < 0x20 && ch != "\n" && ch != "\t" { out += "?" } else { out.unicodeScalars.append(ch) }
                }
            }
            return out
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"wirebeat conformance\">\n"
        for plugin in Array(Set(results.map(\.plugin))).sorted() {
            let rows = results.filter { $0.plugin == plugin }.sorted { ($0.capture, $0.mode.rawValue) < ($1.capture, $1.mode.rawValue) }
            let failures = rows.filter { $0.failedCount > 0 }.count
            xml += "  <testsuite name=\"\(esc(plugin))\" tests=\"\(rows.count)\" failures=\"\(failures)\">\n"
            for r in rows {
                xml += "    <testcase classname=\"\(esc(plugin)).\(esc(r.capture))\" name=\"\(r.mode.rawValue)\">"
                if r.failedCount > 0 {
                    let detail = r.failures.map(\.description).joined(separator: "\n\n")
                    xml += "\n      <failure message=\"\(r.failedCount) of \(r.runs) mutated replays failed\">\(esc(detail))</failure>\n    "
                }
                xml += "</testcase>\n"
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }
}
