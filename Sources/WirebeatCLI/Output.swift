import WirebeatCore
#if canImport(Glibc)
import Glibc
#endif

/// Output formats: NDJSON, or Elasticsearch `_bulk` (an action line before each document).
public enum OutputFormat: String, CaseIterable, Sendable {
    case ndjson
    case bulk
}

/// Writes events as lines to a file or stdout, batching them in one byte buffer so a
/// replay makes one write per 256 KiB of output, not one per event.
final class LineWriter: EventPublisher {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private let format: OutputFormat
    private let bulkAction: [UInt8]
    private let buffer = OutputBuffer(capacity: 320 * 1024)
    private let flushThreshold = 256 * 1024
    private let name: String

    /// The first write that failed (e.g. a full disk), as "-o PATH: write failed: reason";
    /// after it nothing more is written. The caller reports it after `close()` and exits
    /// non-zero: a replay whose events did not all reach the output must not look done.
    private(set) var failure: String?

    init(path: String?, format: OutputFormat, index: String) throws {
        name = path.map { $0 == "-" ? "stdout" : $0 } ?? "stdout"
        if let path, path != "-" {
            guard let f = fopen(path, "w") else {
                throw CaptureError("\(path): cannot open for writing: \(String(cString: strerror(errno)))")
            }
            file = f
            ownsFile = true
        } else {
            file = stdout
            ownsFile = false
        }
        self.format = format
        bulkAction = Array((JSONWriter.compact(.object([("index", .object([("_index", .string(index))]))])) + "\n").utf8)
    }

    func publish(_ event: consuming Event) {
        formatLine(event, into: buffer)
        (consume event).discard()   // written: its storage serves the next event
        if buffer.count >= flushThreshold { flush() }
    }

    func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                 fields: (Int, inout FieldOutput) -> Void, build: () -> Event) {
        formatTemplated(template, values, fields, into: buffer)
        if buffer.count >= flushThreshold { flush() }
    }

    /// One event as it is written out (parallel replay workers call this on their threads).
    func formatLine(_ event: Event, into out: OutputBuffer) {
        if format == .bulk { out.append(bulkAction) }
        event.writeCompactJSON(into: out)
        out.append(0x0A)
    }

    /// The same line, of an event given as its template (`EventPublisher.publish(_:_:fields:build:)`).
    func formatTemplated(_ template: EventTemplate, _ values: EventTemplate.Values,
                         _ fields: (Int, inout FieldOutput) -> Void, into out: OutputBuffer) {
        if format == .bulk { out.append(bulkAction) }
        template.write(values, into: out, fields: fields)
        out.append(0x0A)
    }

    /// Lines already formatted, in memory that stays valid until `writeGathered`: noted,
    /// not copied (a parallel replay's merge hands over its workers' lines one by one; the
    /// copy was most of the merging thread's work). Written with `writev`.
    func gather(formatted bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if let last = gathered.last, last.iov_base.map({ $0 + last.iov_len }) == UnsafeMutableRawPointer(mutating: base) {
            gathered[gathered.count - 1].iov_len += bytes.count  // the next line of the same chunk
        } else {
            gathered.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: bytes.count))
        }
        if gathered.count >= LineWriter.maxGathered { writeGathered() }
    }

    // Touched once a line by the merge: no dynamic exclusivity check (~65 instructions).
    @exclusivity(unchecked) private var gathered: [iovec] = []
    private static let maxGathered = 1024  // IOV_MAX on Linux

    /// Writes what `gather` noted.
    func writeGathered() {
        guard !gathered.isEmpty else { return }
        flush()  // anything written before through the FILE goes first
        guard failure == nil else { gathered.removeAll(keepingCapacity: true); return }
        let fd = fileno(file)
        var first = 0
        while first < gathered.count {
            let n = gathered.withUnsafeBufferPointer { writev(fd, $0.baseAddress! + first, Int32(gathered.count - first)) }
            if n < 0 {
                if errno == EINTR { continue }
                noteFailure(errno)
                break
            }
            // A short write (a pipe): skip what went, resume inside the iovec it stopped in.
            var left = n
            while first < gathered.count && left >= gathered[first].iov_len {
                left -= gathered[first].iov_len
                first += 1
            }
            if left > 0 {
                gathered[first].iov_base = gathered[first].iov_base.map { $0 + left }
                gathered[first].iov_len -= left
            }
        }
        gathered.removeAll(keepingCapacity: true)
    }

    func flush() {
        if buffer.count > 0 {
            if failure == nil && fwrite(buffer.bytes.baseAddress, 1, buffer.count, file) < buffer.count { noteFailure(errno) }
            buffer.removeAll()
        }
        if failure == nil && fflush(file) != 0 { noteFailure(errno) }
    }

    func close() {
        writeGathered()
        flush()
        // A file on NFS or a full disk may only say so when it is closed.
        if ownsFile && fclose(file) != 0 { noteFailure(errno) }
    }

    private func noteFailure(_ code: Int32) {
        if failure == nil { failure = "\(name): write failed: \(String(cString: strerror(code)))" }
    }
}
