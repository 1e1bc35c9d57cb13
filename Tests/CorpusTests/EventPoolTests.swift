import Testing
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

/// An event written out and dropped gives its storage back to the thread's pool for the
/// next one (`Event.discard`), unless something still holds a reference to it: a plugin
/// that keeps one (a copy bound in an `if let`, an array of past events) makes the output
/// free and allocate a storage per event instead, and the workers of a parallel replay then
/// contend on the shared base list's reference count. Every plugin, on every capture.
struct EventPoolTests {
    /// Writes each event as the output does, drops it, and counts whether its storage went
    /// back to the pool.
    final class DiscardingPublisher: EventPublisher {
        var recycled = 0, kept = 0
        private let out = OutputBuffer()
        func publish(_ event: consuming Event) {
            event.writeCompactJSON(into: out)
            out.removeAll()
            if event.discard() { recycled += 1 } else { kept += 1 }
        }
    }

    @Test(arguments: CorpusTests.entries)
    func publishedEventsGoBackToThePool(_ entry: CorpusEntry) throws {
        let sink = DiscardingPublisher()
        let sniffer = Sniffer(plugins: try entry.loadPlugins(registry: BuiltinPlugins.registry), publisher: sink)
        try? Replay.run(file: entry.capturePath, into: sniffer)   // a damaged sample still counts what it gave
        #expect(sink.kept == 0, "\(entry.name): \(sink.kept) of \(sink.kept + sink.recycled) events still referenced when dropped")
    }
}
