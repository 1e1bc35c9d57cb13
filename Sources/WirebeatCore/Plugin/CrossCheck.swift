/// How to compare what a plugin extracts with an independent dissector (tshark).
///
/// The harness runs `tshark -r CAPTURE -d tcp.port==P,<decodeAs> -Y <displayFilter>
/// -T fields -E separator=/t -e <fields…>` (one `-d` per configured port and transport),
/// turns tshark's rows and the plugin's events into records (strings), and compares the
/// two as multisets. Keep records to what both sides surely agree on (an envelope, a
/// method and path, a query name and type), not to every field.
public struct DissectorCrossCheck: Sendable {
    /// tshark's name for the protocol, for `-d tcp.port==P,<decodeAs>`.
    public var decodeAs: String
    /// tshark display filter selecting the packets of interest (e.g. `smtp.req`).
    public var displayFilter: String
    /// tshark fields, one column each; the values of a field that occurs several times in a
    /// packet (pipelined commands) are joined with `DissectorCrossCheck.aggregator`.
    public var fields: [String]
    /// Joins multiple occurrences of a field in one cell (ASCII unit separator: never in text).
    public static let aggregator = "\u{1F}"
    /// Records from tshark's rows (each row has one string per field, in order).
    public var recordsFromRows: @Sendable ([[String]]) -> [String]
    /// Records from the plugin's events.
    public var recordsFromEvents: @Sendable ([JSONValue]) -> [String]

    public init(decodeAs: String, displayFilter: String, fields: [String],
                recordsFromRows: @escaping @Sendable ([[String]]) -> [String],
                recordsFromEvents: @escaping @Sendable ([JSONValue]) -> [String]) {
        self.decodeAs = decodeAs
        self.displayFilter = displayFilter
        self.fields = fields
        self.recordsFromRows = recordsFromRows
        self.recordsFromEvents = recordsFromEvents
    }
}

/// A plugin that says how to cross-check it with tshark.
public protocol DissectorComparable: ProtocolPlugin {
    static var crossCheck: DissectorCrossCheck { get }
}
