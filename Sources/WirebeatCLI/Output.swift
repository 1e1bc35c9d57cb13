import WirebeatCore
#if canImport(Glibc)
import Glibc
#endif

/// Output formats: NDJSON, or Elasticsearch `_bulk` (an action line before each document).
public enum OutputFormat: String, CaseIterable, Sendable {
    case ndjson
    case bulk
}

/// Writes events as lines to a file or stdout through one large stdio buffer.
final class LineWriter: EventPublisher {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private let format: OutputFormat
    private let bulkAction: String

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
        setvbuf(file, nil, _IOFBF, 1 << 20)
        self.format = format
        bulkAction = JSONWriter.compact(.object([("index", .object([("_index", .string(index))]))])) + "\n"
    }

    func publish(_ event: Event) {
        if format == .bulk { fputs(bulkAction, file) }
        var line = JSONWriter.compact(event.json)
        line += "\n"
        fputs(line, file)
    }

    func flush() { fflush(file) }
    func close() {
        fflush(file)
        if ownsFile { fclose(file) }
    }
}
