import Foundation
import WirebeatCore

/// One capture of the corpus and where its golden lives.
public struct CorpusEntry: Sendable, CustomStringConvertible {
    /// The plugin the capture is replayed through (its folder under `Captures/`).
    public let plugin: String
    /// Stable name used in reports and golden paths: `smtp/plain-mail` or `smtp/public/wireshark-smtp`.
    public let name: String
    /// Where the capture is on this machine.
    public let capturePath: String
    /// Set for public samples: the sha256 the manifest promises.
    public let expectedSHA256: String?
    /// `Golden/<plugin>/<stem>.json` (public samples: `Golden/<plugin>/public/<stem>.json`).
    public let goldenPath: String
    /// How the golden names the capture (repository-relative, or `public:<file>`).
    public let captureReference: String

    public var description: String { name }
    public var isPublic: Bool { expectedSHA256 != nil }
}

/// A problem with the corpus itself (not with a plugin).
public struct CorpusError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The captures under `Captures/` plus the public samples named in `Captures/public.tsv`.
///
/// Public samples are never committed: the manifest names each file (relative to the public
/// capture directory) and its sha256. The directory is `$WIREBEAT_PUBLIC_CAPTURES`, else
/// `../shared/captures/public` next to the repository.
public struct Corpus {
    public let root: String
    public let publicDirectory: String
    public private(set) var entries: [CorpusEntry] = []
    /// Public samples named in the manifest whose directory is not on this machine.
    public private(set) var unavailable: [String] = []

    public static let manifestName = "Captures/public.tsv"

    /// Folder holding one subfolder of captures per plugin.
    public let capturesDirectory: String

    public init(root: String, publicDirectory: String? = nil, capturesDirectory: String? = nil) throws {
        self.root = root
        self.capturesDirectory = capturesDirectory ?? (root as NSString).appendingPathComponent("Captures")
        let env = ProcessInfo.processInfo.environment["WIREBEAT_PUBLIC_CAPTURES"]
        self.publicDirectory = publicDirectory ?? env ?? (root as NSString).appendingPathComponent("../shared/captures/public")
        try loadOwnCaptures()
        try loadPublicManifest()
        entries.sort { $0.name < $1.name }
    }

    private mutating func loadOwnCaptures() throws {
        let fm = FileManager.default
        let capturesDir = capturesDirectory
        guard let plugins = try? fm.contentsOfDirectory(atPath: capturesDir) else {
            throw CorpusError("\(capturesDir): no Captures directory")
        }
        for plugin in plugins.sorted() {
            let dir = (capturesDir as NSString).appendingPathComponent(plugin)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { continue }
            for file in (try fm.contentsOfDirectory(atPath: dir)).sorted()
            where file.hasSuffix(".pcap") || file.hasSuffix(".pcapng") {
                let stem = (file as NSString).deletingPathExtension
                entries.append(CorpusEntry(
                    plugin: plugin, name: "\(plugin)/\(stem)",
                    capturePath: (dir as NSString).appendingPathComponent(file),
                    expectedSHA256: nil,
                    goldenPath: (root as NSString).appendingPathComponent("Golden/\(plugin)/\(stem).json"),
                    captureReference: "Captures/\(plugin)/\(file)"))
            }
        }
    }

    private mutating func loadPublicManifest() throws {
        let manifest = (root as NSString).appendingPathComponent(Corpus.manifestName)
        guard let text = try? String(contentsOfFile: manifest, encoding: .utf8) else { return }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("plugin\t") { continue }
            let fields = trimmed.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 3, fields[2].count == 64 else {
                throw CorpusError("\(manifest):\(number + 1): expected plugin<TAB>file<TAB>sha256[<TAB>note]")
            }
            let (plugin, file, sha) = (fields[0], fields[1], fields[2].lowercased())
            let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            let path = (publicDirectory as NSString).appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: path) else {
                unavailable.append("\(plugin)/public/\(stem) (\(path))")
                continue
            }
            entries.append(CorpusEntry(
                plugin: plugin, name: "\(plugin)/public/\(stem)", capturePath: path, expectedSHA256: sha,
                goldenPath: (root as NSString).appendingPathComponent("Golden/\(plugin)/public/\(stem).json"),
                captureReference: "public:\(file)"))
        }
    }

    /// Entries of one plugin, or named ones (by name, file name or path).
    public func select(plugin: String? = nil, names: [String] = []) -> [CorpusEntry] {
        entries.filter { e in
            (plugin == nil || e.plugin == plugin) &&
            (names.isEmpty || names.contains { n in
                e.name == n || e.capturePath.hasSuffix(n) || e.captureReference == n || (e.name as NSString).lastPathComponent == n
            })
        }
    }

    /// Finds the repository root by walking up from `path` to the folder holding Package.swift and Captures/.
    public static func findRoot(from path: String) -> String? {
        var dir = path
        let fm = FileManager.default
        while dir != "/" && !dir.isEmpty {
            if fm.fileExists(atPath: dir + "/Package.swift") && fm.fileExists(atPath: dir + "/Captures") { return dir }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }
}

extension CorpusEntry {
    /// sha256 of the capture file's bytes.
    public func captureSHA256() throws -> String {
        guard let data = FileManager.default.contents(atPath: capturePath) else {
            throw CorpusError("\(capturePath): cannot read")
        }
        return SHA256.hex([UInt8](data))
    }

    /// The plugin alone, with its default settings, as the golden was made.
    public func loadPlugins(registry: PluginRegistry) throws -> [LoadedPlugin] {
        guard registry.entries[plugin] != nil else {
            throw CorpusError("\(name): no plugin named '\(plugin)' is registered")
        }
        return try registry.load([(plugin, [:])])
    }

    /// Replays the capture and returns its events as JSON values.
    public func replay(registry: PluginRegistry) throws -> [JSONValue] {
        try Replay.collect(file: capturePath, plugins: try loadPlugins(registry: registry)).events.map(\.json)
    }
}
