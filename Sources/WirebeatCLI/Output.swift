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

    init(path: String?, format: OutputFormat, index: String) throws {
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

    func publish(_ event: Event) {
        formatLine(event, into: buffer)
        if buffer.count >= flushThreshold { flush() }
    }

    /// One event as it is written out (parallel replay workers call this on their threads).
    func formatLine(_ event: Event, into out: OutputBuffer) {
        if format == .bulk { out.append(bulkAction) }
        event.writeCompactJSON(into: out)
        out.append(0x0A)
    }

    /// Lines already formatted by `formatLine`.
    func write(formatted bytes: UnsafeBufferPointer<UInt8>) {
        buffer.append(bytes)
        if buffer.count >= flushThreshold { flush() }
    }

    func flush() {
        if buffer.count > 0 {
            _ = fwrite(buffer.bytes.baseAddress, 1, buffer.count, file)
            buffer.removeAll()
        }
        fflush(file)
    }

    func close() {
        flush()
        if ownsFile { fclose(file) }
    }
}
