#if canImport(Glibc)
import Glibc  // memcmp
#elseif canImport(Darwin)
import Darwin
#endif

/// The compact JSON line of an event, cut at the values that change from one event to the
/// next of the same kind: its times, its duration, a number (e.g. a DNS ID). A plugin whose
/// events repeat but for those (a DNS answer asked again on the same flow) makes one from the
/// first such event (`init(prototype:holes:values:)`), then publishes the next ones as the
/// template and their values (`EventPublisher.publish(_:_:fields:build:)`): an output that writes
/// lines copies the text and writes the values, with no event built, set and laid out
/// (~2,600 instructions of a DNS answer's ~7,400, most of them).
///
/// Exact: the holes are where the prototype's own values were written (`Event` says where),
/// and a template is only made when writing it with the prototype's values gives back the
/// prototype's line byte for byte. What the template does not cut out is the prototype's:
/// the plugin uses it only for events whose every other value is the same.
public final class EventTemplate {
    /// The values of one event.
    public struct Values: @unchecked Sendable {  // `text` is lent for one call
        public var start: Timestamp
        public var end: Timestamp
        public var number: Int64
        /// The bytes of the request and of the response (as `Event.transaction` writes them).
        public var requestBytes: Int64
        public var responseBytes: Int64
        /// What every hole of kind `text` holds, as it is written (e.g. a DNS name's text
        /// inside a JSON string): memory the caller keeps valid for the publish call.
        public var text: UnsafeBufferPointer<UInt8>
        public init(start: Timestamp, end: Timestamp, number: Int64 = 0, requestBytes: Int64 = 0,
                    responseBytes: Int64 = 0, text: UnsafeBufferPointer<UInt8> = .init(start: nil, count: 0)) {
            self.start = start
            self.end = end
            self.number = number
            self.requestBytes = requestBytes
            self.responseBytes = responseBytes
            self.text = text
        }
    }

    /// What goes in a hole: a time (as `Event.transaction` writes `@timestamp`, `event.start`
    /// and `event.end`), `max(0, end - start)` in nanoseconds (`event.duration`), `number`,
    /// a byte count (`requestBytes`, `responseBytes`, or their sum as `network.bytes`), a
    /// field's whole value written by the plugin when the line is (`field`: see `write`), or
    /// the values' `text` (`text`: the same bytes in each such hole of a line).
    public enum Kind: UInt8, Sendable { case start, end, duration, number, requestBytes, responseBytes, bytes, field, text }

    /// A hole: the value of `field`, or (`part`) a range of bytes of it, holding `kind`.
    /// Of kind `field`, the whole value, numbered `fieldNumber` for the plugin's writer.
    public struct Hole: Sendable {
        public var field: String
        public var part: Range<Int>?
        public var kind: Kind
        public var fieldNumber: Int
        public init(_ field: String, part: Range<Int>? = nil, _ kind: Kind) {
            self.field = field
            self.part = part
            self.kind = kind
            fieldNumber = 0
        }
        /// The whole value of `field`, written by the plugin for each line as field `number`.
        public static func value(of field: String, number: Int) -> Hole {
            var hole = Hole(field, .field)
            hole.fieldNumber = number
            return hole
        }
    }

    /// The prototype's `type`, for publishers that count events by type.
    public let type: String?
    /// The connection whose values the text holds, kept alive so that its `flowIdentity` is
    /// not reused by another flow while the template lives.
    private let flow: EncodedFlow?
    /// The line's text without the holes' values, and the runs of it: each run is followed
    /// by its hole, the last one by none. In raw memory: read for every event (an array read
    /// from an object costs a retain and a release).
    private let text: UnsafeMutablePointer<UInt8>
    private let textCount: Int
    private struct Run {
        var end: Int      // in `text`
        var hole: Kind?
        var fieldNumber: Int
    }
    private let runs: UnsafeMutablePointer<Run>
    private let runCount: Int
    /// Room a line takes at most: the text and the widest values, and `text` in each of its
    /// `textHoles`.
    private let bound: Int
    private let textHoles: Int

    /// A template of `prototype`, whose values are `values`, cut at `holes`; nil when a hole
    /// is not in its line, two overlap, or the template would not write the prototype's line.
    public init?(prototype: Event, holes: [Hole], values: Values) {
        let (line, ranges) = prototype.compactJSONLocating(holes.map(\.field))
        var cuts: [(range: Range<Int>, kind: Kind, fieldNumber: Int)] = []
        for (hole, value) in zip(holes, ranges) {
            guard let value else { return nil }
            guard let part = hole.part else {
                cuts.append((value, hole.kind, hole.fieldNumber))
                continue
            }
            guard hole.kind != .field, part.lowerBound >= 0, part.upperBound <= value.count else { return nil }
            cuts.append(((value.lowerBound + part.lowerBound)..<(value.lowerBound + part.upperBound), hole.kind, 0))
        }
        cuts.sort { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(cuts, cuts.dropFirst()) where a.range.upperBound > b.range.lowerBound { return nil }

        var kept: [UInt8] = []
        var runs: [Run] = []
        var from = 0
        for cut in cuts {
            kept.append(contentsOf: line[from..<cut.range.lowerBound])
            runs.append(Run(end: kept.count, hole: cut.kind, fieldNumber: cut.fieldNumber))
            from = cut.range.upperBound
        }
        kept.append(contentsOf: line[from...])
        runs.append(Run(end: kept.count, hole: nil, fieldNumber: 0))

        type = prototype.type
        flow = prototype.connectionText
        flowIdentity = flow.map { ObjectIdentifier($0) }
        textCount = kept.count
        // `EventLayout.slack` zero bytes after the text: runs are copied as `Event.copy` does.
        let text = UnsafeMutablePointer<UInt8>.allocate(capacity: kept.count + EventLayout.slack)
        text.initialize(repeating: 0, count: kept.count + EventLayout.slack)
        kept.withUnsafeBufferPointer { text.update(from: $0.baseAddress!, count: kept.count) }
        self.text = text
        runCount = runs.count
        let runMemory = UnsafeMutablePointer<Run>.allocate(capacity: runs.count)
        runs.withUnsafeBufferPointer { runMemory.initialize(from: $0.baseAddress!, count: runs.count) }
        self.runs = runMemory
        bound = kept.count + cuts.count * EventTemplate.widestValue + EventLayout.slack
        textHoles = cuts.filter { $0.kind == .text }.count

        // The plugin's values are the prototype's here.
        let fieldValues = Dictionary(cuts.filter { $0.kind == .field }.map { ($0.fieldNumber, line[$0.range]) },
                                     uniquingKeysWith: { a, _ in a })
        let check = OutputBuffer(capacity: bound)
        write(values, into: check) { number, out in
            if let value = fieldValues[number] { value.withUnsafeBufferPointer { out.append($0) } }
        }
        // (`memcmp`: `elementsEqual` took ~20 instructions a byte.)
        guard check.count == line.count, memcmp(check.bytes.baseAddress!, line, line.count) == 0 else { return nil }
    }

    deinit {
        text.deallocate()
        runs.deallocate()
    }

    /// A time's JSON text (29 bytes) or an Int64's (at most 20), and 8 bytes that an
    /// integer's digits are stored in at once.
    private static let widestValue = Timestamp.jsonCount + 8

    /// The `ConnectionInfo.flowIdentity` of the connection whose values the text holds (the
    /// one it was made on; nil: none): a template is for a connection whose identity this is.
    /// While the template lives, no other flow has it.
    public let flowIdentity: ObjectIdentifier?

    /// Appends the line of the event with these values (no newline); `fields` writes the
    /// value of each hole of kind `field` (given its number) when the line gets there, as
    /// complete JSON. A template without such holes never calls it.
    public func write(_ values: Values, into out: OutputBuffer, fields: (Int, inout FieldOutput) -> Void) {
        let room = bound &+ textHoles &* values.text.count
        var start = out.reserveTail(room)
        var p = start
        var from = 0
        // The start time is written once, and copied where it is wanted again (`@timestamp`
        // and `event.start`). Where it is in `out`: a field's value may move the bytes.
        var startText = -1
        // One for every field of the line (each one made retained the buffer), made at the
        // first: a line without fields (a DNS answer from the cache) retains nothing.
        var value: FieldOutput?
        EventBufferPool.withCurrent { pool in
            for run in UnsafeBufferPointer(start: runs, count: runCount) {
                Event.copy(from: text + from, count: run.end &- from, to: p)
                p += run.end &- from
                from = run.end
                switch run.hole {
                case nil: break
                case .start?:
                    if startText >= 0 {
                        Event.copy(from: out.base + startText, count: Timestamp.jsonCount, to: p)
                    } else {
                        values.start.writeRFC3339JSON(at: p, pool: pool)
                        startText = p - out.base
                    }
                    p += Timestamp.jsonCount
                case .end?:
                    values.end.writeRFC3339JSON(at: p, pool: pool)
                    p += Timestamp.jsonCount
                case .duration?:
                    p = EventTemplate.writeInt(max(0, (values.end - values.start).nanoseconds), at: p)
                case .number?:
                    p = EventTemplate.writeInt(values.number, at: p)
                case .requestBytes?:
                    p = EventTemplate.writeInt(values.requestBytes, at: p)
                case .responseBytes?:
                    p = EventTemplate.writeInt(values.responseBytes, at: p)
                case .bytes?:
                    p = EventTemplate.writeInt(values.requestBytes &+ values.responseBytes, at: p)
                case .text?:
                    if let from = values.text.baseAddress, values.text.count > 0 {
                        EventStorage.copy(from: from, count: values.text.count, to: p)
                    }
                    p += values.text.count
                case .field?:
                    // Written straight into `out` after what is there; then room for the rest
                    // again (at most `bound` is left to write).
                    out.commitTail(p - start)
                    if value == nil { value = FieldOutput(out) } else { value!.start = out.count }
                    fields(run.fieldNumber, &value!)
                    start = out.reserveTail(room)
                    p = start
                }
            }
        }
        out.commitTail(p - start)
    }

    /// The line of a template without holes of kind `field`.
    public func write(_ values: Values, into out: OutputBuffer) {
        write(values, into: out) { _, _ in preconditionFailure("a template with a field hole needs its writer") }
    }

    /// An integer's JSON at `p` (8 bytes to spare after it); returns the end.
    @inline(__always) private static func writeInt(_ value: Int64, at p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        var sink = RawSink(p: p)
        JSONWriter.writeInt(value, to: &sink)
        return sink.p
    }

    /// Bytes written forward from a pointer into room already reserved.
    private struct RawSink: JSONSink {
        let start: UnsafeMutablePointer<UInt8>
        var p: UnsafeMutablePointer<UInt8>
        init(p: UnsafeMutablePointer<UInt8>) { (start, self.p) = (p, p) }
        @inline(__always) mutating func put(_ byte: UInt8) { p.pointee = byte; p += 1 }
        @inline(__always) mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            if let from = bytes.baseAddress { p.update(from: from, count: bytes.count) }
            p += bytes.count
        }
        @inline(__always) mutating func putRaw(_ bytes: UnsafeRawBufferPointer) {
            if let from = bytes.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: from, byteCount: bytes.count) }
            p += bytes.count
        }
        @inline(__always) mutating func putWord(_ word: UInt64, count: Int) {
            UnsafeMutableRawPointer(p).storeBytes(of: word, as: UInt64.self)
            p += count
        }
        var writtenCount: Int { p - start }
        mutating func truncate(to count: Int) { p = start + count }
    }
}

/// The value of a template's `field` hole being written (`EventTemplate.write`): appends go
/// straight into the output line. The same calls as `JSONOutput` (offsets from the start of
/// the value), so that a plugin writes a value once, generic over the two.
public struct FieldOutput {
    @usableFromInline let buffer: OutputBuffer
    /// Where the value starts in the buffer.
    @usableFromInline var start: Int

    init(_ buffer: OutputBuffer) {
        self.buffer = buffer
        start = buffer.count
    }

    /// Bytes written into the value so far.
    @inlinable @inline(__always) public var count: Int { buffer.count - start }

    /// A byte already written.
    @inlinable public subscript(index: Int) -> UInt8 {
        get { precondition(index >= 0 && index < count); return buffer.base[start + index] }
        nonmutating set { precondition(index >= 0 && index < count); buffer.base[start + index] = newValue }
    }

    @inlinable @inline(__always) public mutating func append(_ byte: UInt8) { buffer.appendByte(byte) }
    @inlinable @inline(__always) public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) { buffer.appendBytes(bytes) }
    @inlinable @inline(__always) public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer.appendBytes($0) }
    }
    @inlinable @inline(__always) public mutating func append(_ text: StaticString) {
        buffer.appendBytes(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends again the bytes `range` of what was written (a value listed twice).
    public mutating func appendCopy(of range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        let n = range.count
        let to = buffer.reserveTail(n)   // may move the bytes: the source is read after
        to.update(from: buffer.base + start + range.lowerBound, count: n)
        buffer.commitTail(n)
    }

    /// The bytes of the value written so far (valid only in `body`).
    public func withValueBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: buffer.base + start, count: count))
    }

    /// A JSON string, as `JSONWriter.writeString` writes it.
    public mutating func writeString(_ s: String) { JSONWriter.writeString(s, to: &self) }
    /// UTF-8 bytes as a JSON string, as `JSONWriter.writeUTF8String` writes them.
    public mutating func writeUTF8String(_ bytes: UnsafeBufferPointer<UInt8>) { JSONWriter.writeUTF8String(bytes, to: &self) }
    /// Inlinable for the usual small counts (ids, TTLs, lengths), as `JSONOutput.writeInt`.
    @inlinable @inline(__always) public mutating func writeInt(_ value: Int64) {
        if value >= 0 && value < 10 { buffer.appendByte(0x30 &+ UInt8(truncatingIfNeeded: value)); return }
        if value > 0 && value < 100_000_000 {
            let (word, count) = JSONWriter.digitsWord(UInt64(truncatingIfNeeded: value))
            UnsafeMutableRawPointer(buffer.reserveTail(8)).storeBytes(of: word, as: UInt64.self)
            buffer.commitTail(count)
            return
        }
        writeLargeInt(value)
    }
    @usableFromInline mutating func writeLargeInt(_ value: Int64) { JSONWriter.writeInt(value, to: &self) }
    /// `ip.description`'s text.
    public mutating func writeText(of ip: IPAddress) { ip.writeText(to: &self) }
}

extension FieldOutput: JSONSink {
    @inline(__always) mutating func put(_ byte: UInt8) { buffer.appendByte(byte) }
    @inline(__always) mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) { buffer.appendBytes(bytes) }
    @inline(__always) mutating func putRaw(_ bytes: UnsafeRawBufferPointer) {
        buffer.appendBytes(bytes.bindMemory(to: UInt8.self))
    }
    @inline(__always) mutating func putWord(_ word: UInt64, count: Int) {
        UnsafeMutableRawPointer(buffer.reserveTail(8)).storeBytes(of: word, as: UInt64.self)
        buffer.commitTail(count)
    }
    var writtenCount: Int { count }
    mutating func truncate(to count: Int) { buffer.truncate(to: start + count) }
}
