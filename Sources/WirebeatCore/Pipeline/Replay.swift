/// Replays capture files through a sniffer, streaming packet by packet.
public enum Replay {
    /// Feeds every packet of `file` to `sniffer`, then finishes it (so pending transactions
    /// are published). A capture truncated mid-record is processed up to the damage, finished,
    /// and then reported by the thrown `CaptureError`.
    public static func run(file: String, into sniffer: Sniffer) throws {
        let source = try PcapSource.open(file: file)
        let linkType = source.linkType
        do {
            try source.forEachPacket { ts, frame, _ in
                sniffer.handle(linkType: linkType, timestamp: ts, frame: frame)
            }
        } catch {
            sniffer.finish()
            throw error
        }
        sniffer.finish()
    }

    /// Replays `file` and returns its events in publication order with the stats.
    public static func collect(file: String, plugins: [LoadedPlugin], tcpOptions: TCPOptions = TCPOptions(),
                               logging: LoggingSetup = LoggingSetup()) throws -> (events: [Event], stats: SnifferStats) {
        let collector = CollectingPublisher()
        let sniffer = Sniffer(plugins: plugins, publisher: collector, tcpOptions: tcpOptions, logging: logging)
        try run(file: file, into: sniffer)
        return (collector.events, sniffer.stats)
    }
}
