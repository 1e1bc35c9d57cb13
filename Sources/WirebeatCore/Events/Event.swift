/// One published event: a set of dotted ECS field names (`source.ip`, `smtp.mail_from`)
/// that serialises to nested JSON objects with keys in a stable order.
public struct Event: Sendable {
    /// Fields by dotted name; later `set` calls replace earlier ones.
    public private(set) var fields: [String: JSONValue] = [:]

    public init() {}

    public subscript(field: String) -> JSONValue? {
        get { fields[field] }
        set { fields[field] = newValue }
    }

    public mutating func set(_ field: String, _ value: (any JSONRepresentable)?) {
        fields[field] = value?.jsonValue
    }

    /// Appends `note` to `error.message`, keeping earlier notes (they are joined with "; ").
    public mutating func addNote(_ note: String) {
        if case let .string(existing)? = fields["error.message"], !existing.isEmpty {
            if !existing.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }).contains(note) {
                fields["error.message"] = .string(existing + "; " + note)
            }
        } else {
            fields["error.message"] = .string(note)
        }
    }

    public var type: String? { fields["type"]?.stringValue }

    /// Field names in output order: component by component, each in byte order — the order
    /// nested objects with sorted keys print in (a `.` sorts before every other byte).
    var sortedFieldNames: [String] {
        fields.keys.sorted { a, b in
            var i = a.utf8.makeIterator(), j = b.utf8.makeIterator()
            while true {
                guard let x = i.next() else { return j.next() != nil }
                guard let y = j.next() else { return false }
                if x == y { continue }
                return (x == 0x2E ? 0 : UInt16(x) + 1) < (y == 0x2E ? 0 : UInt16(y) + 1)
            }
        }
    }

    /// The nested JSON object, keys sorted at every level.
    public var json: JSONValue {
        // Build bottom-up from the sorted names: each run of names sharing a prefix is one object.
        let names = sortedFieldNames
        let paths = names.map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
        func build(_ range: Range<Int>, depth: Int) -> JSONValue {
            var pairs: [(String, JSONValue)] = []
            var k = range.lowerBound
            while k < range.upperBound {
                let key = paths[k][depth]
                var end = k + 1
                while end < range.upperBound && paths[end].count > depth && paths[end][depth] == key { end += 1 }
                if paths[k].count == depth + 1 && end == k + 1 {
                    pairs.append((key, fields[names[k]]!))
                } else {
                    // A name that is both a value and an object prefix keeps the object.
                    let nested = (k..<end).filter { paths[$0].count > depth + 1 }
                    if let first = nested.first {
                        pairs.append((key, build(first..<(nested.last! + 1), depth: depth + 1)))
                    } else {
                        pairs.append((key, fields[names[end - 1]]!))
                    }
                }
                k = end
            }
            return .object(pairs)
        }
        return build(0..<names.count, depth: 0)
    }

    /// Appends the event as one line of compact JSON (no newline), keys sorted at every
    /// level: the hot path of the output, written straight into bytes.
    public func writeCompactJSON(into out: inout [UInt8]) {
        let names = sortedFieldNames
        var open: [Substring] = []        // object path currently open
        var hasMember: [Bool] = [false]   // per depth: a member was written (comma needed)
        out.append(UInt8(ascii: "{"))
        for name in names {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            var common = 0
            while common < open.count && common < parts.count - 1 && open[common] == parts[common] { common += 1 }
            while open.count > common {
                open.removeLast()
                hasMember.removeLast()
                out.append(UInt8(ascii: "}"))
            }
            for part in parts[common..<(parts.count - 1)] {
                if hasMember[hasMember.count - 1] { out.append(UInt8(ascii: ",")) }
                hasMember[hasMember.count - 1] = true
                JSONWriter.writeString(part, into: &out)
                out.append(UInt8(ascii: ":"))
                out.append(UInt8(ascii: "{"))
                open.append(part)
                hasMember.append(false)
            }
            if hasMember[hasMember.count - 1] { out.append(UInt8(ascii: ",")) }
            hasMember[hasMember.count - 1] = true
            JSONWriter.writeString(parts[parts.count - 1], into: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.write(fields[name]!, into: &out, indent: nil, level: 0)
        }
        for _ in open { out.append(UInt8(ascii: "}")) }
        out.append(UInt8(ascii: "}"))
    }
}

import Foundation  // trimmingCharacters
