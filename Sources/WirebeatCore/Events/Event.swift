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

    /// The nested JSON object, keys sorted at every level.
    public var json: JSONValue {
        guard !fields.isEmpty else { return .object([]) }
        let tree = Node()
        for (path, value) in fields { tree.insert(path.split(separator: ".")[...], value) }
        return tree.json
    }

    private final class Node {
        var leaf: JSONValue?
        var children: [Substring: Node] = [:]
        func insert(_ path: ArraySlice<Substring>, _ value: JSONValue) {
            guard let head = path.first else { leaf = value; return }
            let child = children[head] ?? Node()
            children[head] = child
            child.insert(path.dropFirst(), value)
        }
        var json: JSONValue {
            if children.isEmpty { return leaf ?? .null }
            let keys = children.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            return .object(keys.map { (String($0), children[$0]!.json) })
        }
    }
}

import Foundation  // trimmingCharacters
