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
        if format == .bulk { buffer.append(bulkAction) }
        event.writeCompactJSON(into: buffer)
        buffer.append(0x0A)
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
