import WirebeatCore
#if canImport(Glibc)
import Glibc
#endif

/// Live capture: reads until Ctrl-C (SIGINT/SIGTERM), a packet count or a duration.
public enum LiveCapture {
    /// A BPF filter matching the plugins' ports on their transports, tagged or not, and the
    /// same without the VLAN part for link types where `vlan` does not compile (`-i any`).
    public static func filter(for plugins: [LoadedPlugin]) -> (filter: String, untagged: String) {
        var terms: [String] = []
        for plugin in plugins {
            for transport in plugin.transports {
                for port in plugin.ports { terms.append("\(transport.rawValue) port \(port)") }
            }
        }
        guard !terms.isEmpty else { return ("", "") }
        let ports = "(" + terms.joined(separator: " or ") + ")"
        return ("\(ports) or (vlan and \(ports))", ports)
    }

    public static func run(source: PcapSource, sniffer: Sniffer, maxPackets: Int?, stopAfter: TimeSpan?) throws {
        PcapSource.resetStop()
        signal(SIGINT) { _ in PcapSource.requestStop() }
        signal(SIGTERM) { _ in PcapSource.requestStop() }
        defer {
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        var started = timespec()
        clock_gettime(CLOCK_MONOTONIC, &started)
        var packets = 0
        let linkType = source.linkType
        while !PcapSource.isStopRequested {
            let result = try source.next { ts, frame, _ in
                sniffer.handle(linkType: linkType, timestamp: ts, frame: frame)
            }
            if result == .end { break }
            if result == .packet { packets += 1 }
            if let maxPackets, packets >= maxPackets { break }
            if let stopAfter {
                // Wall clock here only decides when to stop capturing, never what is published.
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let elapsed = Int64(now.tv_sec - started.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - started.tv_nsec)
                if elapsed >= stopAfter.nanoseconds { break }
            }
        }
        sniffer.finish()
    }
}
