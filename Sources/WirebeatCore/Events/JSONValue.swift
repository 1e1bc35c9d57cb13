/// A JSON value whose objects keep their keys sorted, so the same event always prints the
/// same bytes (golden files compare byte for byte).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Keys in ascending byte order; build through `JSONObject` or `Event` to keep it so.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(pairs) = self else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    /// Follows a dotted path such as `smtp.mail_from`.
    public func value(at dottedPath: String) -> JSONValue? {
        var current: JSONValue? = self
        for part in dottedPath.split(separator: ".") { current = current?[String(part)] }
        return current
    }

    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    public var intValue: Int64? { if case let .int(i) = self { return i }; return nil }
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// Values that can be stored in an event field.
public protocol JSONRepresentable {
    var jsonValue: JSONValue { get }
    /// Appends the value's compact JSON text. The default goes through `jsonValue`; the
    /// common types write themselves directly (events encode values as they are set).
    func writeJSON(into out: inout [UInt8])
}

extension JSONRepresentable {
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.write(jsonValue, into: &out, indent: nil, level: 0) }
}

extension String: JSONRepresentable {
    public var jsonValue: JSONValue { .string(self) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeString(self, into: &out) }
}
extension Substring: JSONRepresentable {
    public var jsonValue: JSONValue { .string(String(self)) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeString(self, into: &out) }
}
extension Int: JSONRepresentable {
    public var jsonValue: JSONValue { .int(Int64(self)) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeInt(Int64(self), into: &out) }
}
extension Int64: JSONRepresentable {
    public var jsonValue: JSONValue { .int(self) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeInt(self, into: &out) }
}
extension UInt16: JSONRepresentable {
    public var jsonValue: JSONValue { .int(Int64(self)) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeInt(Int64(self), into: &out) }
}
extension UInt32: JSONRepresentable {
    public var jsonValue: JSONValue { .int(Int64(self)) }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.writeInt(Int64(self), into: &out) }
}
extension Bool: JSONRepresentable {
    public var jsonValue: JSONValue { .bool(self) }
}
extension Double: JSONRepresentable { public var jsonValue: JSONValue { .double(self) } }
extension JSONValue: JSONRepresentable {
    public var jsonValue: JSONValue { self }
    public func writeJSON(into out: inout [UInt8]) { JSONWriter.write(self, into: &out, indent: nil, level: 0) }
}
extension Array: JSONRepresentable where Element: JSONRepresentable {
    // A closure, not `\.jsonValue`: a key path in a generic context is instantiated at run
    // time (swift_getKeyPath) on every call.
    public var jsonValue: JSONValue { .array(map { $0.jsonValue }) }
    public func writeJSON(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, item) in enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            item.writeJSON(into: &out)
        }
        out.append(UInt8(ascii: "]"))
    }
}
