/// A point on the packet clock, in nanoseconds since the Unix epoch.
///
/// Wirebeat never reads the wall clock while decoding: every time in an event, every
/// timeout and every expiry is measured against packet timestamps, so the same capture
/// always gives the same output.
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(seconds: Int64, nanoseconds: Int64 = 0) {
        self.nanoseconds = seconds &* 1_000_000_000 &+ nanoseconds
    }

    public static let zero = Timestamp(nanoseconds: 0)

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: Timestamp, d: TimeSpan) -> Timestamp { Timestamp(nanoseconds: a.nanoseconds &+ d.nanoseconds) }
    public static func - (a: Timestamp, b: Timestamp) -> TimeSpan { TimeSpan(nanoseconds: a.nanoseconds &- b.nanoseconds) }

    /// RFC 3339 in UTC with microseconds, e.g. `2009-10-05T06:06:07.492000Z`.
    public var rfc3339: String {
        let c = calendarFields
        if (0...9999).contains(c.year) {
            // The usual case: 27 ASCII bytes written in place.
            return String(unsafeUninitializedCapacity: 27) { buffer in
                Timestamp.writeRFC3339(c, to: UnsafeMutableRawBufferPointer(buffer))
                return 27
            }
        }
        var out = ""
        out.reserveCapacity(27)
        Timestamp.pad(&out, c.year, 4); out.append("-")
        Timestamp.pad(&out, c.month, 2); out.append("-")
        Timestamp.pad(&out, c.day, 2); out.append("T")
        Timestamp.pad(&out, c.secondOfDay / 3600, 2); out.append(":")
        Timestamp.pad(&out, (c.secondOfDay / 60) % 60, 2); out.append(":")
        Timestamp.pad(&out, c.secondOfDay % 60, 2); out.append(".")
        Timestamp.pad(&out, c.microsecond, 6); out.append("Z")
        return out
    }

    public var description: String { rfc3339 }

    /// `rfc3339` as a JSON string, appended to `out` without making a String (on the hot
    /// path of every event).
    public func writeRFC3339JSON(into out: inout [UInt8]) { writeRFC3339JSON(to: &out) }

    func writeRFC3339JSON<Sink: JSONSink>(to out: inout Sink) {
        out.put(UInt8(ascii: "\""))
        let c = calendarFields
        if (0...9999).contains(c.year) {
            var text: (UInt64, UInt64, UInt64, UInt32) = (0, 0, 0, 0)   // 28 bytes on the stack
            withUnsafeMutableBytes(of: &text) { buffer in
                Timestamp.writeRFC3339(c, to: buffer)
                out.putRaw(UnsafeRawBufferPointer(rebasing: buffer[0..<27]))
            }
        } else {
            Array(rfc3339.utf8).withUnsafeBufferPointer { out.put($0) }
        }
        out.put(UInt8(ascii: "\""))
    }

    /// `writeRFC3339JSON` into an event: the text up to the second is the same for every
    /// event of the same second (events come in packet time), so this thread keeps the last
    /// one and only the microseconds are written anew.
    func writeRFC3339JSON(to storage: EventStorage) { EventBufferPool.withCurrent { writeRFC3339JSON(to: storage, pool: $0) } }

    /// The same, with this thread's pool already at hand.
    func writeRFC3339JSON(to storage: EventStorage, pool cache: EventBufferPool) {
        writeJSONText(at: storage.reserveBytes(Timestamp.jsonCount), pool: cache)
        storage.commitBytes(Timestamp.jsonCount)
    }

    /// The length of the JSON text `writeRFC3339JSON(at:pool:)` writes:
    /// '"' + "YYYY-MM-DDThh:mm:ss." + 6 digits + "Z" + '"'.
    static let jsonCount = 29

    /// The time's JSON text (`jsonCount` bytes) at `p`, the text up to the second taken from
    /// the pool when it is the second of the time written before on this thread (events come
    /// in packet time): only the microseconds are written anew. (Nanoseconds in an Int64
    /// span the years 1677 to 2262: the year always has four digits.)
    func writeRFC3339JSON(at p: UnsafeMutablePointer<UInt8>, pool cache: EventBufferPool) { writeJSONText(at: p, pool: cache) }

    // Inlined into the event's writer, as it was before templates wrote times too (a call
    // there cost ~11 instructions a time); called from the template's.
    @inline(__always) private func writeJSONText(at p: UnsafeMutablePointer<UInt8>, pool cache: EventBufferPool) {
        let (seconds, fraction) = secondsAndMicroseconds
        if seconds != cache.timeSecond {
            let c = calendarFields
            withUnsafeMutableBytes(of: &cache.timePrefix) { buffer in
                var text: (UInt64, UInt64, UInt64, UInt32) = (0, 0, 0, 0)
                withUnsafeMutableBytes(of: &text) { full in
                    Timestamp.writeRFC3339(c, to: full)
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: full[0..<20]))
                }
            }
            cache.timeSecond = seconds
        }
        p[0] = UInt8(ascii: "\"")
        withUnsafeBytes(of: &cache.timePrefix) { UnsafeMutableRawPointer(p + 1).copyMemory(from: $0.baseAddress!, byteCount: 20) }
        // The six digits two at a time, from the pair table.
        let pairs = UnsafeRawPointer(JSONWriter.digitPairs.utf8Start)
        let f = Int(truncatingIfNeeded: fraction)
        let raw = UnsafeMutableRawPointer(p)
        raw.storeBytes(of: pairs.loadUnaligned(fromByteOffset: (f / 10_000) &* 2, as: UInt16.self), toByteOffset: 21, as: UInt16.self)
        raw.storeBytes(of: pairs.loadUnaligned(fromByteOffset: (f / 100 % 100) &* 2, as: UInt16.self), toByteOffset: 23, as: UInt16.self)
        raw.storeBytes(of: pairs.loadUnaligned(fromByteOffset: (f % 100) &* 2, as: UInt16.self), toByteOffset: 25, as: UInt16.self)
        p[27] = UInt8(ascii: "Z")
        p[28] = UInt8(ascii: "\"")
    }

    /// Whole seconds and the microseconds after them, both rounded down (so a time before
    /// 1970 has a fraction in 0..<1_000_000 too).
    private var secondsAndMicroseconds: (seconds: Int64, fraction: Int64) {
        let micros = nanoseconds >= 0 ? nanoseconds / 1000 : (nanoseconds - 999) / 1000
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; seconds -= 1 }
        return (seconds, fraction)
    }

    /// The UTC calendar fields of the time, to the microsecond (rounded down).
    private var calendarFields: (year: Int64, month: Int64, day: Int64, secondOfDay: Int64, microsecond: Int64) {
        let (seconds, fraction) = secondsAndMicroseconds
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 { secondOfDay += 86_400; days -= 1 }
        let (y, m, d) = Timestamp.civilDate(fromDays: days)
        return (y, m, d, secondOfDay, fraction)
    }

    /// "YYYY-MM-DDThh:mm:ss.ffffffZ" (27 bytes) for a year in 0...9999, two digits at a time.
    private static func writeRFC3339(_ c: (year: Int64, month: Int64, day: Int64, secondOfDay: Int64, microsecond: Int64),
                                     to buffer: UnsafeMutableRawBufferPointer) {
        let pairs = JSONWriter.digitPairs.utf8Start
        func two(_ value: Int64, at offset: Int) {
            let k = Int(value) &* 2
            buffer[offset] = pairs[k]
            buffer[offset + 1] = pairs[k + 1]
        }
        two(c.year / 100, at: 0); two(c.year % 100, at: 2); buffer[4] = UInt8(ascii: "-")
        two(c.month, at: 5); buffer[7] = UInt8(ascii: "-")
        two(c.day, at: 8); buffer[10] = UInt8(ascii: "T")
        two(c.secondOfDay / 3600, at: 11); buffer[13] = UInt8(ascii: ":")
        two((c.secondOfDay / 60) % 60, at: 14); buffer[16] = UInt8(ascii: ":")
        two(c.secondOfDay % 60, at: 17); buffer[19] = UInt8(ascii: ".")
        two(c.microsecond / 10_000, at: 20); two(c.microsecond / 100 % 100, at: 22); two(c.microsecond % 100, at: 24)
        buffer[26] = UInt8(ascii: "Z")
    }


    private static func pad(_ out: inout String, _ value: Int64, _ width: Int) {
        let digits = String(value)
        if digits.count < width { out.append(String(repeating: "0", count: width - digits.count)) }
        out.append(digits)
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func civilDate(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// A length of packet-clock time, in nanoseconds.
public struct TimeSpan: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func seconds(_ s: Int64) -> TimeSpan { TimeSpan(nanoseconds: s * 1_000_000_000) }
    public static func milliseconds(_ ms: Int64) -> TimeSpan { TimeSpan(nanoseconds: ms * 1_000_000) }
    public static func < (a: TimeSpan, b: TimeSpan) -> Bool { a.nanoseconds < b.nanoseconds }
    public var description: String {
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        return "\(nanoseconds)ns"
    }
}

/// When the packet clock sweeps for idle state: at the first packet, then at the first one a
/// second or more after the last sweep. One rule for the TCP layer, the UDP plugins and the
/// router of a parallel replay, which must all sweep at the same packets.
struct SweepSchedule {
    private var last: Timestamp?

    /// True (and the sweep noted) when one is due at `now`.
    mutating func isDue(at now: Timestamp) -> Bool {
        if let last, now - last < TimeSpan.seconds(1) { return false }
        last = now
        return true
    }
}
