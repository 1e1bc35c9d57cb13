#if canImport(Glibc)
import Glibc  // memcmp
#elseif canImport(Darwin)
import Darwin
#endif

/// One published event: a set of dotted ECS field names (`source.ip`, `smtp.mail_from`)
/// that serialises to nested JSON objects with keys in a stable order.
///
/// Values are encoded to JSON the moment they are set, into one byte arena: writing an event
/// out is then copying bytes (see `writeCompactJSON`), and building one allocates no String
/// or `JSONValue` per field. Reading a field back (`event["x"]`, `fields`, `json`) decodes
/// its bytes; tests and the conformance harness do that, the output path never does.
///
/// Names and value spans are kept in the order they were set; setting a name again appends,
/// and reads take the last one (a negative `end`: removed). The serialiser sorts the names
/// anyway and keeps the last value of each. The bytes, spans and names live in one
/// `EventStorage`, copied when an event shared by two variables is changed.
public struct Event: Sendable {
    private var storage: EventStorage

    struct ValueSpan: Sendable {
        var start: Int32
        var end: Int32   // < 0: the field was removed
        /// In `sharedText`, not in the event's own bytes.
        var isShared = false
        var isRemoved: Bool { end < 0 }
    }

    /// The value of `type` (counted per event on the way out): kept aside so reading it
    /// does not decode JSON.
    public var type: String? { storage.type }

    /// The connection whose values the event refers to (`Event.transaction`), if any.
    var connectionText: EncodedFlow? { storage.sharedFlow }

    private var spans: UnsafeBufferPointer<ValueSpan> { UnsafeBufferPointer(start: storage.spans, count: storage.spanCount) }
    private var ownNames: UnsafeBufferPointer<String> { UnsafeBufferPointer(start: storage.names, count: storage.nameCount) }
    private var values: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: storage.bytes, count: storage.byteCount) }

    /// All names, in the order set (slow paths only).
    private var allNames: [String] { storage.baseNames + Array(ownNames) }

    /// Fields by dotted name; later `set` calls replace earlier ones.
    public var fields: [String: JSONValue] {
        var d: [String: JSONValue] = [:]
        d.reserveCapacity(spans.count)
        for (name, span) in zip(allNames, spans) { d[name] = decode(span) }
        return d
    }

    public init() {
        storage = EventStorage.make()
        if storage.baseKind != 0 { storage.setBase([], kind: 0) }
    }

    /// An event whose first fields will be set in the order of the `TransactionFields` list
    /// numbered `kind` (checked in debug builds): the names of those fields are shared, not
    /// stored per event.
    init(baseKind kind: UInt8) {
        storage = EventStorage.make()
        // A storage used again most often holds this list already (see `EventStorage.recycle`).
        if storage.baseKind != kind { storage.setBase(TransactionFields.names(ofKind: kind), kind: kind) }
    }

    /// Ends the event once written: its storage serves the next event built on this thread,
    /// unless something else still holds it (a copy of the event). What a publisher that
    /// writes events out and keeps none calls last. Returns whether the storage went back
    /// (false: another reference to it was left, which costs a free and a malloc an event).
    @discardableResult
    public consuming func discard() -> Bool {
        guard isKnownUniquelyReferenced(&storage) else { return false }
        storage.recycle()
        return true
    }

    /// Copies the storage first if another event shares it. (The setters then use
    /// `storage` in place: a local reference to it would cost a retain and a release each.)
    @inline(__always) private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    public subscript(field: String) -> JSONValue? {
        get { lastIndex(of: field).flatMap { decode(spans[$0]) } }
        set {
            guard let newValue else { remove(field); return }
            setWriting(field) { JSONWriter.write(newValue, into: &$0, indent: nil, level: 0) }
            if isTypeName(field) { storage.type = newValue.stringValue }
        }
    }

    /// Any value; nil removes the field. Disfavoured: a value whose type is known at the
    /// call site takes one of the concrete overloads below, which skip the existential box.
    @_disfavoredOverload
    public mutating func set(_ field: String, _ value: (any JSONRepresentable)?) {
        guard let value else { remove(field); return }
        setWriting(field) { value.writeJSON(into: &$0) }
        if isTypeName(field) { storage.type = value.jsonValue.stringValue }
    }

    /// An optional value of a known type; nil removes the field.
    public mutating func set<Value: JSONRepresentable>(_ field: String, _ value: Value?) {
        guard let value else { remove(field); return }
        setWriting(field) { value.writeJSON(into: &$0) }
        if isTypeName(field) { storage.type = value.jsonValue.stringValue }
    }

    // The value types plugins set most, each without generics or existentials: these run
    // some forty times per event.
    public mutating func set(_ field: String, _ value: String) {
        begin(field)
        JSONWriter.writeString(value, to: &storage)
        end()
        if isTypeName(field) { storage.type = value }
    }

    public mutating func set(_ field: String, _ value: Substring) {
        begin(field)
        JSONWriter.writeString(value, to: &storage)
        end()
        if isTypeName(field) { storage.type = String(value) }
    }

    public mutating func set(_ field: String, _ value: Int) { set(field, int64: Int64(value)) }
    public mutating func set(_ field: String, _ value: Int64) { set(field, int64: value) }
    public mutating func set(_ field: String, _ value: UInt16) { set(field, int64: Int64(value)) }
    public mutating func set(_ field: String, _ value: UInt32) { set(field, int64: Int64(value)) }

    /// An optional count (bytes of a message that may be missing); nil removes the field.
    public mutating func set(_ field: String, _ value: Int?) {
        if let value { set(field, int64: Int64(value)) } else { remove(field) }
    }

    private mutating func set(_ field: String, int64 value: Int64) {
        begin(field)
        JSONWriter.writeInt(value, to: &storage)
        end()
        if isTypeName(field) { storage.type = nil }
    }

    public mutating func set(_ field: String, _ value: Bool) {
        begin(field)
        (value ? JSONWriter.trueBytes : JSONWriter.falseBytes).withUnsafeBufferPointer { storage.put($0) }
        end()
        if isTypeName(field) { storage.type = nil }
    }

    public mutating func set(_ field: String, _ value: [String]) {
        begin(field)
        storage.put(UInt8(ascii: "["))
        for (i, item) in value.enumerated() {
            if i > 0 { storage.put(UInt8(ascii: ",")) }
            JSONWriter.writeString(item, to: &storage)
        }
        storage.put(UInt8(ascii: "]"))
        end()
        if isTypeName(field) { storage.type = nil }
    }

    /// A string given as UTF-8 bytes (e.g. a slice of a parsed message), without making a
    /// String of it. Invalid UTF-8 is replaced by U+FFFD, as `String(decoding:as:)` does.
    public mutating func set<Bytes: Collection>(_ field: String, utf8 bytes: Bytes) where Bytes.Element == UInt8 {
        begin(field)
        let written: Void? = bytes.withContiguousStorageIfAvailable { JSONWriter.writeUTF8String($0, to: &storage) }
        if written == nil { Array(bytes).withUnsafeBufferPointer { JSONWriter.writeUTF8String($0, to: &storage) } }
        end()
        if isTypeName(field) { storage.type = String(decoding: bytes, as: UTF8.self) }
    }

    /// `set(_:utf8:)` for the usual byte containers, without generics across modules.
    public mutating func set(_ field: String, utf8 bytes: ArraySlice<UInt8>) {
        begin(field)
        bytes.withUnsafeBufferPointer { JSONWriter.writeUTF8String($0, to: &storage) }
        end()
        if isTypeName(field) { storage.type = String(decoding: bytes, as: UTF8.self) }
    }

    public mutating func set(_ field: String, utf8 bytes: [UInt8]) { set(field, utf8: bytes[...]) }

    /// A time as RFC 3339 text (UTC, microseconds), written straight into the event.
    public mutating func set(_ field: String, timestamp: Timestamp) {
        begin(field)
        timestamp.writeRFC3339JSON(to: storage)
        end()
        if isTypeName(field) { storage.type = timestamp.rfc3339 }
    }

    /// A constant already encoded as JSON text (`"\"COMMAND\""`): a literal's bytes are
    /// immortal, so unlike an array's (one retain and release a call) they cost no
    /// reference counting. The caller guarantees it is one valid JSON value.
    public mutating func set(_ field: String, encodedJSON text: StaticString) {
        setEncoded(field, UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A value already encoded as JSON text (e.g. per-connection text encoded once). The
    /// caller guarantees it is one valid JSON value.
    public mutating func set(_ field: String, encodedJSON bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { setEncoded(field, $0) }
    }

    // Inlined into both: a call of its own cost ~6 instructions a value.
    @inline(__always) private mutating func setEncoded(_ field: String, _ bytes: UnsafeBufferPointer<UInt8>) {
        begin(field)
        storage.put(bytes)
        end()
        if isTypeName(field) { storage.type = (try? JSONParser.parse(bytes: Array(bytes)))?.stringValue }
    }

    /// The fields of `Event.transaction`, into a new event made with the matching
    /// `TransactionFields.kind(end:bytes:)`: the same values as a `set` and
    /// `repeatLastValue` call per field, without their checks and calls (the storage is fresh,
    /// so unique, and every name is a base name). The connection's values are referred to in
    /// its shared text (`EncodedFlow`), not copied.
    mutating func appendTransactionFields(flow: EncodedFlow, ok: Bool, type: String, start: Timestamp, end: Timestamp?,
                                          requestBytes: Int?, responseBytes: Int?) {
        EventBufferPool.withCurrent { pool in
            appendTransactionFields(flow: flow, ok: ok, type: type, start: start, end: end,
                                    requestBytes: requestBytes, responseBytes: responseBytes, pool: pool)
        }
    }

    private mutating func appendTransactionFields(flow: EncodedFlow, ok: Bool, type: String, start: Timestamp,
                                                  end: Timestamp?, requestBytes: Int?, responseBytes: Int?,
                                                  pool: EventBufferPool) {
        storage.sharedFlow = flow
        storage.sharedText = UnsafePointer(flow.text)
        // Every span written straight into room reserved for all of them, the counts kept by
        // `commitSpans` at the end (a span appended one at a time, with its capacity check
        // and accounting, cost ~12 instructions, some 27 times an event).
        let total = storage.baseNames.count
        var run = SpanRun(at: storage.reserveSpans(total))
        run.add(flow.sharedSpans, valueBytes: flow.sharedValueBytes)
        let status = ok ? flow.statusOK : flow.statusError
        run.add(ValueSpan(start: status.start, end: status.end, isShared: true))
        // @timestamp, event.start
        var from = Int32(truncatingIfNeeded: storage.byteCount)
        start.writeRFC3339JSON(to: storage, pool: pool)
        run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)), times: 2)
        // type, event.dataset, network.protocol
        from = Int32(truncatingIfNeeded: storage.byteCount)
        pool.appendTypeJSON(of: type, to: storage)
        run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)), times: 3)
        storage.type = type
        // source.bytes and client.bytes, destination.bytes and server.bytes: nil removes both.
        addCount(requestBytes, to: &run)
        addCount(responseBytes, to: &run)
        if let end {
            from = Int32(truncatingIfNeeded: storage.byteCount)
            end.writeRFC3339JSON(to: storage, pool: pool)
            run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)))
            from = Int32(truncatingIfNeeded: storage.byteCount)
            JSONWriter.writeInt(max(0, (end - start).nanoseconds), to: &storage)
            run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)))
        }
        if requestBytes != nil || responseBytes != nil {
            from = Int32(truncatingIfNeeded: storage.byteCount)
            JSONWriter.writeInt(Int64((requestBytes ?? 0) + (responseBytes ?? 0)), to: &storage)
            run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)))
        }
        precondition(run.count == total, "transaction fields out of step with their names")
        storage.commitSpans(run.count, valueBytes: run.valueBytes, removed: run.removed)
    }

    /// A byte count under two names, or their removal.
    @inline(__always) private mutating func addCount(_ count: Int?, to run: inout SpanRun) {
        if let count {
            let from = Int32(truncatingIfNeeded: storage.byteCount)
            JSONWriter.writeInt(Int64(count), to: &storage)
            run.add(ValueSpan(start: from, end: Int32(truncatingIfNeeded: storage.byteCount)), times: 2)
        } else {
            run.add(ValueSpan(start: 0, end: -1), times: 2)
        }
    }

    /// Spans written into room reserved for them, and what `EventStorage` counts of them.
    private struct SpanRun {
        let base: UnsafeMutablePointer<ValueSpan>
        var count = 0, valueBytes = 0, removed = 0
        init(at base: UnsafeMutablePointer<ValueSpan>) { self.base = base }

        @inline(__always) mutating func add(_ span: ValueSpan, times: Int = 1) {
            for _ in 0..<times {
                (base + count).initialize(to: span)
                count &+= 1
            }
            if span.isRemoved { removed &+= times } else { valueBytes &+= times &* Int(span.end &- span.start) }
        }

        mutating func add(_ spans: [ValueSpan], valueBytes bytes: Int) {
            spans.withUnsafeBufferPointer { (base + count).initialize(from: $0.baseAddress!, count: $0.count) }
            count &+= spans.count
            valueBytes &+= bytes
        }
    }

    /// `field` gets the value the previous `set` stored (`client.ip` is `source.ip`; a removal
    /// repeats as a removal), by reference: no second encoding or copy.
    public mutating func repeatLastValue(as field: String) {
        makeUnique()
        precondition(storage.spanCount > 0, "repeatLastValue(as:) needs a value set before it")
        storage.addName(field)
        storage.appendSpan(storage.spans[storage.spanCount - 1])
        if isTypeName(field) { storage.type = decode(spans[spans.count - 1])?.stringValue }
    }

    /// A value whose JSON text `write` appends (to a scratch array, then copied in): for
    /// values a plugin assembles itself, e.g. an array of objects. The caller guarantees
    /// exactly one valid JSON value, objects with their keys in byte order.
    public mutating func set(_ field: String, writingJSON write: (inout [UInt8]) -> Void) {
        setWriting(field, write)
        if isTypeName(field) { storage.type = decode(spans[spans.count - 1])?.stringValue }
    }

    /// A value whose JSON text `write` writes straight into the event (no scratch array, no
    /// copy): for values a plugin assembles itself, the same contract as
    /// `set(_:writingJSON:)`. The closure cannot touch the event meanwhile (it is inout).
    /// With `JSONOutput.nextValue(_:)`, one call sets several fields.
    public mutating func set(_ field: String, writingJSONTo write: (inout JSONOutput) -> Void) {
        begin(field)
        let first = storage.spanCount
        var out = JSONOutput(storage: storage, start: Int(storage.pendingStart))
        write(&out)
        end()
        if isTypeName(field) { storage.type = decode(spans[first])?.stringValue }
    }

    /// A value written into an array by `write`, then copied in (see
    /// `EventBufferPool.appendWritten`).
    private mutating func setWriting(_ field: String, _ write: (inout [UInt8]) -> Void) {
        begin(field)
        EventBufferPool.withCurrent { $0.appendWritten(by: write, to: storage) }
        end()
    }

    /// Starts a value: its name is added, its JSON text goes to `storage` (ended by `end`).
    @inline(__always) private mutating func begin(_ field: String) {
        makeUnique()
        storage.addName(field)
        storage.beginValue()
    }

    @inline(__always) private func end() { storage.endValue() }

    private mutating func remove(_ field: String) {
        makeUnique()
        storage.addName(field)
        storage.appendSpan(ValueSpan(start: 0, end: -1))
        if isTypeName(field) { storage.type = nil }
    }

    @inline(__always) private func isTypeName(_ field: String) -> Bool { Event.isTypeName(field) }

    /// `type`, whose value is also kept aside as a string (`EventStorage.type`).
    @inline(__always) static func isTypeName(_ field: String) -> Bool {
        field.utf8.count == 4 && field == "type"
    }

    /// The value of a span, read back from its JSON text.
    private func decode(_ span: ValueSpan) -> JSONValue? {
        guard !span.isRemoved else { return nil }
        let bytes = span.isShared ? Array(UnsafeBufferPointer(start: storage.sharedText! + Int(span.start),
                                                              count: Int(span.end - span.start)))
                                  : Array(values[Int(span.start)..<Int(span.end)])
        // The common case, a string with nothing escaped, without the general parser.
        if bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\""),
           !bytes.contains(UInt8(ascii: "\\")) {
            return .string(String(decoding: bytes[1..<bytes.count - 1], as: UTF8.self))
        }
        return try? JSONParser.parse(bytes: bytes)
    }

    /// Appends `note` to `error.message`, keeping earlier notes (they are joined with "; ").
    public mutating func addNote(_ note: String) {
        var message: String?
        if case let .string(existing)? = self["error.message"] { message = existing }
        let before = message
        Event.addNote(note, to: &message)
        if let message, message != before { self["error.message"] = .string(message) }
    }

    /// The rule of `addNote` on a message kept aside: `note` joined with "; ", left out when
    /// already there. For a plugin gathering several notes before setting `error.message`
    /// once (each `addNote` reads the event's value back: ~6,000 instructions a note).
    public static func addNote(_ note: String, to message: inout String?) {
        guard let existing = message, !existing.isEmpty else {
            message = note
            return
        }
        if !existing.split(separator: ";").contains(where: { trimmingWhitespace($0) == note }) {
            message = existing + "; " + note
        }
    }

    /// `text` without leading and trailing white space as Foundation's
    /// `CharacterSet.whitespaces` has it (tab and the space separators, Unicode Zs), without
    /// Foundation: notes are added to events on the hot path of a lossy capture.
    static func trimmingWhitespace(_ text: Substring) -> Substring {
        func isSpace(_ u: Unicode.Scalar) -> Bool { u == "\t" || u.properties.generalCategory == .spaceSeparator }
        let scalars = text.unicodeScalars
        var start = scalars.startIndex, end = scalars.endIndex
        while start < end && isSpace(scalars[start]) { start = scalars.index(after: start) }
        while end > start && isSpace(scalars[scalars.index(before: end)]) { end = scalars.index(before: end) }
        return Substring(scalars[start..<end])
    }

    /// The index of the last span set for `field`, without building the list of names.
    private func lastIndex(of field: String) -> Int? {
        let own = ownNames, baseCount = min(storage.baseNames.count, spans.count)
        for i in stride(from: own.count - 1, through: 0, by: -1) where own[i] == field { return baseCount + i }
        return storage.baseNames[..<baseCount].lastIndex(of: field)
    }

    /// Field names in output order: component by component, each in byte order — the order
    /// nested objects with sorted keys print in (a `.` sorts before every other byte).
    var sortedFieldNames: [String] {
        fields.keys.sorted { a, b in
            // Native strings are contiguous UTF-8: compare the bytes, not String indices.
            if let r = a.utf8.withContiguousStorageIfAvailable({ x in
                b.utf8.withContiguousStorageIfAvailable { y in Event.namePrecedes(x, y) }
            }), let r { return r }
            return Event.namePrecedes(Array(a.utf8), Array(b.utf8))
        }
    }

    /// The order of `sortedFieldNames` on UTF-8 bytes: `.` ranks below every byte.
    @inline(__always)
    static func namePrecedes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = min(a.count, b.count)
        var i = 0
        while i < n {
            let x = a[i], y = b[i]
            if x != y { return (x == 0x2E ? 0 : UInt16(x) + 1) < (y == 0x2E ? 0 : UInt16(y) + 1) }
            i += 1
        }
        return a.count < b.count
    }

    /// The first 16 bytes of the name at `from` in `arena`, ranked as `namePrecedes` ranks
    /// them (`.` is 0, any other byte b is b + 1: valid UTF-8 has no 0xFF), big-endian, padded
    /// with 0. Keys order as the names do, except that equal keys need the full comparison.
    static func sortKey(_ arena: UnsafeBufferPointer<UInt8>, from: Int, end: Int) -> (UInt64, UInt64) {
        var k0: UInt64 = 0, k1: UInt64 = 0
        for i in 0..<16 {
            let p = from + i
            let rank: UInt64 = p < end ? (arena[p] == 0x2E ? 0 : UInt64(arena[p] &+ 1)) : 0
            if i < 8 { k0 = k0 << 8 | rank } else { k1 = k1 << 8 | rank }
        }
        return (k0, k1)
    }

    /// Indices of the names (`entries`: byte ranges from `base`) in output order, the last
    /// one set of each name only.
    static func sortedOrder(_ base: UnsafePointer<UInt8>, _ entries: [(start: Int, end: Int)]) -> [Int] {
        func bytes(_ e: (start: Int, end: Int)) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base + e.start, count: e.end - e.start) }
        let arena = UnsafeBufferPointer(start: base, count: entries.last.map { $0.end } ?? 0)
        var order: [(key: (UInt64, UInt64), entry: Int)] = []  // small, cheap to move while sorting
        order.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() { order.append((sortKey(arena, from: e.start, end: e.end), i)) }
        // Most names differ in their first 16 bytes: compare two integers, bytes on a tie.
        // Equal names in the order they were set, so the last one set comes last.
        order.sort { a, b in
            if a.key != b.key { return a.key < b.key }
            let x = bytes(entries[a.entry]), y = bytes(entries[b.entry])
            if namePrecedes(x, y) { return true }
            if namePrecedes(y, x) { return false }
            return a.entry < b.entry
        }
        var result: [Int] = []
        result.reserveCapacity(order.count)
        for (k, item) in order.enumerated() {
            if k + 1 < order.count && order[k + 1].key == item.key {
                let x = entries[item.entry], y = entries[order[k + 1].entry]
                if x.end - x.start == y.end - y.start && memcmp(base + x.start, base + y.start, x.end - x.start) == 0 { continue }
            }
            result.append(item.entry)
        }
        return result
    }

    static func namePrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in namePrecedes(x, y) } }
    }

    /// The nested JSON object, keys sorted at every level.
    public var json: JSONValue {
        // Build bottom-up from the sorted names: each run of names sharing a prefix is one object.
        let fields = self.fields
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
    /// level.
    public func writeCompactJSON(into out: inout [UInt8]) {
        withLayout { layout in
            let bound = valueBound(layout)
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: bound))
            var unobserved = IgnoredValues()
            let written = out.withUnsafeMutableBufferPointer { write(layout, to: $0.baseAddress! + start, observer: &unobserved) }
            out.removeLast(bound - written)
        }
    }

    /// Appends the event as one line of compact JSON (no newline) to an output buffer: the
    /// hot path of the output, a few copies of bytes per field.
    public func writeCompactJSON(into out: OutputBuffer) {
        withLayout { layout in
            let end = out.reserveTail(valueBound(layout))
            var unobserved = IgnoredValues()
            out.commitTail(write(layout, to: end, observer: &unobserved))
        }
    }

    /// The event's compact JSON line (as `writeCompactJSON`), and where the value of each of
    /// `fields` is in it (nil for one the line does not have): what `EventTemplate` cuts its
    /// holes at.
    func compactJSONLocating(_ fields: [String]) -> (line: [UInt8], ranges: [Range<Int>?]) {
        withLayout { layout in
            var line = [UInt8](repeating: 0, count: valueBound(layout))
            let (written, located) = line.withUnsafeMutableBufferPointer { buffer in
                var located = LocatedValues(line: buffer.baseAddress!)
                return (write(layout, to: buffer.baseAddress!, observer: &located), located)
            }
            line.removeLast(line.count - written)
            let names = allNames
            var ranges: [Range<Int>?] = Array(repeating: nil, count: fields.count)
            for (span, range) in located.values {
                // (Every index of the name: a template may cut one value in several places.)
                for (k, field) in fields.enumerated() where field == names[span] { ranges[k] = range }
            }
            return (line, ranges)
        }
    }

    /// A plugin builds its events with the same names in the same order over and over: the
    /// JSON around the values (braces, keys, commas) is built once per sequence of names (and
    /// of removed ones) and cached; an event is then that text with its values in between.
    ///
    /// `body` gets the layout of this event, held by this thread's cache.
    private func withLayout<R>(_ body: (EventLayout) -> R) -> R {
        EventBufferPool.withCurrent { pool in
            let cache = pool.layouts
            // A layout of events with the same names (most are), found without reference counting.
            if storage.removedCount == 0,
               let last = cache.quickLayout(baseKind: storage.baseKind, names: storage.names, count: storage.nameCount) {
                return withFlowLayout(last, cache, body)
            }
            var absent: [Int] = []
            if storage.removedCount > 0 {
                for (i, span) in spans.enumerated() where span.isRemoved { absent.append(i) }
            }
            if let layout = cache.layout(base: storage.baseNames, baseKind: storage.baseKind, names: ownNames, absent: absent) {
                return withFlowLayout(Unmanaged.passUnretained(layout), cache, body)
            }
            let built = Event.layout(names: allNames, absent: absent)
            cache.store(storage.baseNames, storage.baseKind, Array(ownNames), absent, built)
            return body(built)
        }
    }

    /// `body` with the layout, or, for an event of a connection (`Event.transaction`) whose
    /// events came with this layout before, with the layout that has the connection's own
    /// values (`EncodedFlow.sharedSpans`: addresses, ports, Community ID...) already in its
    /// text: 14 values fewer to copy, ~450 instructions an event.
    @inline(__always)
    private func withFlowLayout<R>(_ layout: Unmanaged<EventLayout>, _ cache: EventLayoutCache,
                                   _ body: (EventLayout) -> R) -> R {
        if let flowLayout = cache.flowLayout(layout, of: storage) {
            return flowLayout._withUnsafeGuaranteedRef(body)
        }
        return layout._withUnsafeGuaranteedRef(body)
    }

    /// Room enough for the event's JSON: the layout's text and every value span (a value
    /// may be printed under several names; one set twice is counted twice).
    private func valueBound(_ layout: EventLayout) -> Int {
        layout.textCount + EventLayout.slack + storage.valueBytes
    }

    /// Told where each value went (`write`): nothing on the output's path, every value's
    /// span and range for `compactJSONLocating` (generic, so the first costs nothing).
    private protocol ValueObserver {
        mutating func wrote(span: Int, from start: UnsafeMutablePointer<UInt8>, count: Int)
    }
    private struct IgnoredValues: ValueObserver {
        @inline(__always) mutating func wrote(span: Int, from start: UnsafeMutablePointer<UInt8>, count: Int) {}
    }
    private struct LocatedValues: ValueObserver {
        let line: UnsafeMutablePointer<UInt8>
        var values: [(span: Int, range: Range<Int>)] = []
        mutating func wrote(span: Int, from start: UnsafeMutablePointer<UInt8>, count: Int) {
            values.append((span, (start - line)..<(start - line + count)))
        }
    }

    /// Writes the layout's text with the values in their slots at `destination` (room for
    /// the text and every value is there); returns the bytes written.
    private func write<Observer: ValueObserver>(_ layout: EventLayout, to destination: UnsafeMutablePointer<UInt8>,
                                                observer: inout Observer) -> Int {
        // The layout's text around the values; the event's own values and the connection's
        // shared ones; the spans saying which is where. Raw pointers and wrapping arithmetic:
        // the loop runs ~30 times an event, and the arrays' closures and overflow checks cost
        // ~10 instructions a turn, and a retain and a release each.
        let values = UnsafeRawPointer(storage.bytes), spans = UnsafePointer(storage.spans)
        let source = UnsafeRawPointer(layout.text)
        let sharedBase = storage.sharedText.map { UnsafeRawPointer($0) } ?? values
        var p = destination
        var from = 0
        for slot in UnsafeBufferPointer(start: layout.slots, count: layout.slotCount) {
            // Braces, commas, the key.
            let textCount = slot.offset &- from
            Event.copy(from: source + from, count: textCount, to: p)
            p += textCount
            // The value: as short, mostly (the event's bytes and the shared text have
            // `slack` bytes after their end too).
            let span = spans[slot.value]
            let valueCount = Int(truncatingIfNeeded: span.end &- span.start)
            let base = span.isShared ? sharedBase : values
            Event.copy(from: base + Int(truncatingIfNeeded: span.start), count: valueCount, to: p)
            observer.wrote(span: slot.value, from: p, count: valueCount)
            p += valueCount
            from = slot.offset
        }
        let rest = layout.textCount &- from
        Event.copy(from: source + from, count: rest, to: p)
        p += rest
        return p - destination
    }

    /// Copies `count` bytes; up to 32 as one 32-byte word, which needs no test of the size:
    /// the 32 bytes from `source` must be readable and those at `destination` writable (every
    /// buffer involved keeps `EventLayout.slack` to spare). Longer pieces as `EventStorage.copy`.
    @inline(__always)
    static func copy(from source: UnsafeRawPointer, count: Int, to destination: UnsafeMutablePointer<UInt8>) {
        typealias Bytes32 = (UInt64, UInt64, UInt64, UInt64)
        if count <= 32 {
            UnsafeMutableRawPointer(destination).storeBytes(of: source.loadUnaligned(as: Bytes32.self), as: Bytes32.self)
        } else {
            EventStorage.copy(from: source.assumingMemoryBound(to: UInt8.self), count: count, to: destination)
        }
    }

    /// The compact JSON of an event with these names, values left out: `slots` says where
    /// each value goes (its offset in `text`) and which one (its index in `names`). Names in
    /// `absent` (ascending) are left out; of a name set more than once, the last one counts.
    ///
    /// The names' UTF-8 is copied side by side into one buffer, so sorting them and finding
    /// the objects they open and close is plain byte work: no String indexing, no Substring
    /// per component.
    static func layout(names: [String], absent: [Int]) -> EventLayout {
        var slots: [(offset: Int, value: Int)] = []
        var text: [UInt8] = []
        var arena: [UInt8] = []
        arena.reserveCapacity(names.count * 24)
        var entries: [(start: Int, end: Int)] = []
        entries.reserveCapacity(names.count)
        for name in names {
            let start = arena.count
            arena.append(contentsOf: name.utf8)
            entries.append((start, arena.count))
        }
        arena.withUnsafeBufferPointer { arena in
            guard let base = arena.baseAddress, !entries.isEmpty else {
                text = Array("{}".utf8)
                return
            }
            func bytes(_ from: Int, _ to: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base + from, count: to - from) }
            let order = Event.sortedOrder(base, entries)
            var out: [UInt8] = []
            var open: [Int] = []              // offsets of the dots of the previous name that opened objects
            var previous = 0                  // start of the previous name in the arena
            var dots: [Int] = []              // offsets of the dots of the current name
            var hasMember: [Bool] = [false]   // per depth: a member was written (comma needed)
            out.append(UInt8(ascii: "{"))
            for index in order {
                if absent.contains(index) { continue }  // removed (set to nil last)
                let entry = entries[index]
                dots.removeAll(keepingCapacity: true)
                for i in entry.start..<entry.end where base[i] == 0x2E { dots.append(i - entry.start) }
                // Leading components shared with the objects already open: same dot offsets
                // and same bytes before them.
                var common = 0
                while common < open.count && common < dots.count && open[common] == dots[common]
                        && memcmp(base + previous, base + entry.start, dots[common]) == 0 {
                    common += 1
                }
                while open.count > common {
                    open.removeLast()
                    hasMember.removeLast()
                    out.append(UInt8(ascii: "}"))
                }
                for k in common..<dots.count {
                    if hasMember[hasMember.count - 1] { out.append(UInt8(ascii: ",")) }
                    hasMember[hasMember.count - 1] = true
                    let from = k == 0 ? 0 : dots[k - 1] + 1
                    JSONWriter.writeString(bytes(entry.start + from, entry.start + dots[k]), into: &out)
                    out.append(UInt8(ascii: ":"))
                    out.append(UInt8(ascii: "{"))
                    open.append(dots[k])
                    hasMember.append(false)
                }
                if hasMember[hasMember.count - 1] { out.append(UInt8(ascii: ",")) }
                hasMember[hasMember.count - 1] = true
                let last = dots.last.map { $0 + 1 } ?? 0
                JSONWriter.writeString(bytes(entry.start + last, entry.end), into: &out)
                out.append(UInt8(ascii: ":"))
                slots.append((out.count, index))
                previous = entry.start
            }
            for _ in open { out.append(UInt8(ascii: "}")) }
            out.append(UInt8(ascii: "}"))
            text = out
        }
        return EventLayout(text: text, slots: slots)
    }
}

/// The value being written by `Event.set(_:writingJSONTo:)`: appends go straight into the
/// event's storage. Offsets (`count`, the subscript, `appendCopy`) are from the start of
/// the value, and checked to be within what was written. The methods are not generic:
/// plugins call them from another module (the small ones are inlinable).
public struct JSONOutput {
    // A `var`: the writers take it inout, with no retain (a local copy would cost one).
    // (Not `unowned(unsafe)`: every call through it then retained and released it.)
    @usableFromInline var storage: EventStorage
    /// Where the value being written starts in the event's bytes.
    @usableFromInline private(set) var start: Int

    init(storage: EventStorage, start: Int) {
        self.storage = storage
        self.start = start
    }

    /// Ends the value written so far and begins the one of `field`, with the same contract:
    /// one `Event.set(_:writingJSONTo:)` call then sets several fields (each call costs ~150
    /// instructions besides its value: the storage checked, retained and released, the
    /// closure called). Offsets (`count`, the subscript, `appendCopy`) are then from the start
    /// of the new value. Not for `type`, which `Event` keeps aside as a string.
    public mutating func nextValue(_ field: String) {
        precondition(!Event.isTypeName(field), "type is set with Event.set(_:_:)")
        storage.endValue()
        storage.addName(field)
        storage.beginValue()
        start = storage.byteCount
    }

    /// Bytes written into the value so far.
    @inlinable @inline(__always) public var count: Int { storage.byteCount - start }

    /// A byte already written (a plugin patches its own text, e.g. a name's length bytes).
    @inlinable public subscript(index: Int) -> UInt8 {
        get { precondition(index >= 0 && index < count); return storage.bytes[start + index] }
        nonmutating set { precondition(index >= 0 && index < count); storage.bytes[start + index] = newValue }
    }

    // Inlinable: a plugin appends a few dozen pieces per value, and a literal's copy inlined
    // is a few moves.
    @inlinable @inline(__always) public mutating func append(_ byte: UInt8) { storage.appendByte(byte) }
    @inlinable @inline(__always) public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) { storage.appendBytes(bytes) }
    @inlinable @inline(__always) public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { storage.appendBytes($0) } }
    @inlinable @inline(__always) public mutating func append(_ text: StaticString) {
        storage.appendBytes(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends again the bytes `range` of what was written (a value listed twice).
    public mutating func appendCopy(of range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        let n = range.count
        let to = storage.reserveBytes(n)   // may move the bytes: the source is read after
        to.update(from: storage.bytes + start + range.lowerBound, count: n)
        storage.commitBytes(n)
    }

    /// The bytes of the value written so far (valid only in `body`: the next append may move
    /// them), e.g. for a plugin that keeps its text to copy into a later event.
    public func withValueBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.bytes + start, count: count))
    }

    /// Drops what was written after `count` bytes.
    public mutating func truncate(to count: Int) {
        precondition(count >= 0 && count <= self.count)
        storage.truncateBytes(to: start + count)
    }

    /// A JSON string, as `JSONWriter.writeString` writes it.
    public mutating func writeString(_ s: String) { JSONWriter.writeString(s, to: &storage) }
    /// UTF-8 bytes as a JSON string, as `JSONWriter.writeUTF8String` writes them.
    public mutating func writeUTF8String(_ bytes: UnsafeBufferPointer<UInt8>) {
        JSONWriter.writeUTF8String(bytes, to: &storage)
    }
    /// Inlinable for the usual small counts (ids, TTLs, lengths): across modules the call
    /// cost ~55 instructions.
    @inlinable public mutating func writeInt(_ value: Int64) {
        if value >= 0 && value < 10 { storage.appendByte(0x30 &+ UInt8(truncatingIfNeeded: value)); return }
        if value > 0 && value < 100_000_000 {
            let (word, count) = JSONWriter.digitsWord(UInt64(truncatingIfNeeded: value))
            storage.putWord(word, count: count)
            return
        }
        writeLargeInt(value)
    }

    @usableFromInline mutating func writeLargeInt(_ value: Int64) { JSONWriter.writeInt(value, to: &storage) }

    /// `ip.description`'s text.
    public mutating func writeText(of ip: IPAddress) { ip.writeText(to: &storage) }
}

/// See `Event.layout`. A class: the cache hands out references, not copies of two arrays.
@usableFromInline
final class EventLayout {
    // Built once, then only read, through pointers: arrays read from an object cost a retain
    // and a release each an event (and their properties' exclusivity checks ~60 instructions).
    /// The text, then `slack` zero bytes (`write` copies short pieces 32 bytes at a time).
    let text: UnsafeMutablePointer<UInt8>
    /// Bytes of the text itself.
    let textCount: Int
    /// Where each value goes (its offset in `text`) and which one (its span's index).
    let slots: UnsafeMutablePointer<(offset: Int, value: Int)>
    let slotCount: Int
    @inlinable static var slack: Int { 32 }   // inlinable: `EventStorage.reserveBytes` reads it

    init(text: [UInt8], slots: [(offset: Int, value: Int)]) {
        textCount = text.count
        self.text = .allocate(capacity: text.count + EventLayout.slack)
        self.text.initialize(from: text, count: text.count)
        (self.text + text.count).initialize(repeating: 0, count: EventLayout.slack)
        slotCount = slots.count
        self.slots = .allocate(capacity: max(1, slots.count))
        self.slots.initialize(from: slots, count: slots.count)
    }

    deinit {
        text.deallocate()
        slots.deallocate()
    }

    /// This layout with the values of the spans before `sharedCount` (which every event of
    /// the connection has the same, `EncodedFlow.sharedSpans`) written into its text.
    func withSharedValues(of flow: EncodedFlow) -> EventLayout {
        let sharedCount = flow.sharedSpans.count
        var newText: [UInt8] = []
        newText.reserveCapacity(textCount + flow.sharedValueBytes)
        var newSlots: [(offset: Int, value: Int)] = []
        var from = 0
        for slot in UnsafeBufferPointer(start: slots, count: slotCount) {
            newText.append(contentsOf: UnsafeBufferPointer(start: text + from, count: slot.offset - from))
            if slot.value < sharedCount {
                let span = flow.sharedSpans[slot.value]
                newText.append(contentsOf: UnsafeBufferPointer(start: flow.text + Int(span.start),
                                                               count: Int(span.end - span.start)))
            } else {
                newSlots.append((newText.count, slot.value))
            }
            from = slot.offset
        }
        newText.append(contentsOf: UnsafeBufferPointer(start: text + from, count: textCount - from))
        return EventLayout(text: newText, slots: newSlots)
    }
}

/// Layouts of the sequences of names events were built with (see `writeCompactJSON`), one
/// cache per thread (in `EventBufferPool`): no lock, and workers of a parallel replay do not
/// share its lines. Bounded.
final class EventLayoutCache {
    private final class Entry {
        let base: [String], baseKind: UInt8, names: [String], absent: [Int], layout: EventLayout
        init(base: [String], baseKind: UInt8, names: [String], absent: [Int], layout: EventLayout) {
            self.base = base
            self.baseKind = baseKind
            self.names = names
            self.absent = absent
            self.layout = layout
        }
    }
    // One thread's: exclusivity is unchecked.
    @exclusivity(unchecked) private var cached: [Entry] = []
    @exclusivity(unchecked) private var lastHit = 0
    @exclusivity(unchecked) private var next = 0
    private static let capacity = 128

    /// For each entry whose base names are one of the `TransactionFields` lists and with
    /// nothing removed (most events), what `quickLayout` compares, in raw memory: the entry
    /// holds its names and layout, and this slot is rewritten when the entry is replaced.
    /// Only the last entry found was kept this way before; SMTP's events alternate a few
    /// layouts on a connection, and looking the others up in `cached` cost ~400 instructions
    /// and 4 atomic reference counts an event.
    private struct QuickEntry {
        var baseKind: UInt8 = 0   // 0: the entry is not one of these
        var names: UnsafeRawPointer?
        var nameCount = 0
        var layout: Unmanaged<EventLayout>?
    }
    private let quick: UnsafeMutablePointer<QuickEntry>

    init() {
        quick = .allocate(capacity: EventLayoutCache.capacity)
        quick.initialize(repeating: QuickEntry(), count: EventLayoutCache.capacity)
    }

    deinit {
        quick.deinitialize(count: EventLayoutCache.capacity)
        quick.deallocate()
    }

    /// The layout of an event with this base list (`baseKind`, not 0), these own names and
    /// no removal, if one is cached: the entry found last first, as events of one kind tend
    /// to come in runs, then the others in order.
    @inline(__always)
    func quickLayout(baseKind: UInt8, names: UnsafePointer<String>, count: Int) -> Unmanaged<EventLayout>? {
        guard baseKind != 0 else { return nil }
        @inline(__always) func matches(_ q: QuickEntry) -> Bool {
            // Equal bits are equal strings (the entry holds its names, so their bits stay theirs).
            q.baseKind == baseKind && q.nameCount == count
                && (count == 0 || memcmp(q.names!, names, count * MemoryLayout<String>.stride) == 0)
        }
        if matches(lastQuick) { return lastQuick.layout }
        let entries = cached.count
        var i = 0
        while i < entries {
            if matches(quick[i]) {
                lastHit = i
                lastQuick = quick[i]
                return quick[i].layout
            }
            i &+= 1
        }
        return nil
    }
    /// The quick entry found or stored last, in the object itself (most events have the
    /// layout of the event before); entries are only replaced by `store`, which resets it.
    @exclusivity(unchecked) private var lastQuick = QuickEntry()

    func layout(base: [String], baseKind: UInt8, names: UnsafeBufferPointer<String>, absent: [Int]) -> EventLayout? {
        // Names are mostly literals, so the names of two events built by the same code have
        // the same representation: compare the names' memory first (equal bits are equal
        // strings), String by String only when that fails. The last hit first: events of
        // one kind tend to come in runs.
        func sameBits(_ a: [String], _ b: UnsafeBufferPointer<String>) -> Bool {
            guard a.count == b.count else { return false }
            if a.isEmpty { return true }
            return a.withUnsafeBytes { x in
                x.baseAddress == UnsafeRawPointer(b.baseAddress!) || memcmp(x.baseAddress!, b.baseAddress!, x.count) == 0
            }
        }
        func sameBits(_ e: Entry) -> Bool {
            e.absent == absent && sameBits(e.names, names) && base.withUnsafeBufferPointer { sameBits(e.base, $0) }
        }
        func equal(_ e: Entry) -> Bool {
            e.absent == absent && e.base.count + e.names.count == base.count + names.count
                && e.base + e.names == base + Array(names)
        }
        if lastHit < cached.count && sameBits(cached[lastHit]) { return cached[lastHit].layout }
        for (i, e) in cached.enumerated() where sameBits(e) {
            lastHit = i
            return e.layout
        }
        for (i, e) in cached.enumerated() where equal(e) {
            lastHit = i
            return e.layout
        }
        return nil
    }

    /// Layouts with a connection's shared values in their text (`EventLayout.withSharedValues`),
    /// by connection and layout: 128 sets of four slots, most recently used first. A layout
    /// is made on the second event of a connection with the same layout (making one costs a
    /// few thousand instructions: not for the many connections, DNS over UDP say, with one
    /// event each). Four ways: SMTP's connections alternate a few layouts each, some 40 pairs
    /// on the bench; with one way per set pairs that fell together evicted each other and
    /// were made again and again (+9 M on the SMTP sample), and with two, three of them fell
    /// in one set in about one run of two (the sets follow heap addresses): 24 layouts made
    /// on 20,000 packets, or ~300. A slot holds its connection and layouts, so the identities
    /// it compares cannot be reused meanwhile.
    private struct FlowSlot {
        // Compared: the identities (a connection's by its text). Held: the objects, and so
        // the identities.
        var flowID: UnsafeMutableRawPointer?
        var layoutID: UnsafeMutableRawPointer?
        var made: Unmanaged<EventLayout>?
        var objects: (EncodedFlow, EventLayout, EventLayout?)?
    }
    private static let flowSets = 128, flowWays = 4
    @exclusivity(unchecked) private var flowSlots = [FlowSlot](repeating: FlowSlot(), count: flowWays * flowSets)

    @inline(__always)
    func flowLayout(_ layout: Unmanaged<EventLayout>, of event: EventStorage) -> Unmanaged<EventLayout>? {
        // The connection known by its text's address (reading `sharedFlow` cost a retain and
        // a release); the object is only read to make a slot.
        guard let text = event.sharedText else { return nil }
        let flowID = UnsafeMutableRawPointer(mutating: text), layoutID = layout.toOpaque()
        let mixed = (UInt64(UInt(bitPattern: flowID)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(UInt(bitPattern: layoutID)))
            &* 0xC2B2_AE3D_27D4_EB4F
        let first = Int(truncatingIfNeeded: mixed >> 57) &* EventLayoutCache.flowWays   // 7 bits: the set
        return flowSlots.withUnsafeMutableBufferPointer { slots in
            if slots[first].flowID == flowID && slots[first].layoutID == layoutID {
                if let made = slots[first].made { return made }
                return makeFlowLayout(layout, in: &slots[first])
            }
            for way in 1..<EventLayoutCache.flowWays where slots[first + way].flowID == flowID
                && slots[first + way].layoutID == layoutID {
                // To the front, the others moved one down.
                for w in stride(from: way, to: 0, by: -1) { slots.swapAt(first + w, first + w - 1) }
                if let made = slots[first].made { return made }
                return makeFlowLayout(layout, in: &slots[first])
            }
            guard let flow = event.sharedFlow else { return nil }
            // In front; the least recently used one goes.
            for w in stride(from: EventLayoutCache.flowWays - 1, to: 0, by: -1) { slots[first + w] = slots[first + w - 1] }
            slots[first] = FlowSlot(flowID: flowID, layoutID: layoutID, made: nil, objects: (flow, layout.takeUnretainedValue(), nil))
            return nil
        }
    }

    private func makeFlowLayout(_ layout: Unmanaged<EventLayout>, in slot: inout FlowSlot) -> Unmanaged<EventLayout> {
        let flow = slot.objects!.0
        let made = layout._withUnsafeGuaranteedRef { $0.withSharedValues(of: flow) }
        slot.objects = (flow, layout.takeUnretainedValue(), made)
        slot.made = Unmanaged.passUnretained(made)
        return slot.made!
    }

    func store(_ base: [String], _ baseKind: UInt8, _ names: [String], _ absent: [Int], _ layout: EventLayout) {
        let entry = Entry(base: base, baseKind: baseKind, names: names, absent: absent, layout: layout)
        let index: Int
        if cached.count < EventLayoutCache.capacity {
            index = cached.count
            cached.append(entry)
        } else {
            index = next
            cached[next] = entry   // full: replace in turn
            next = (next + 1) % EventLayoutCache.capacity
        }
        quick[index] = baseKind != 0 && absent.isEmpty
            ? QuickEntry(baseKind: baseKind, names: entry.names.withUnsafeBytes { $0.baseAddress },  // never changed
                         nameCount: entry.names.count, layout: Unmanaged.passUnretained(entry.layout))
            : QuickEntry()
        lastHit = index
        lastQuick = quick[index]
    }
}
