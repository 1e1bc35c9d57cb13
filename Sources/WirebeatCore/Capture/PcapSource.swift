import CPcap
import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// A capture that cannot be opened or read, with a one-line reason.
public struct CaptureError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Packets from libpcap: a capture file (pcap or pcapng) or a live interface.
/// Timestamps are read with nanosecond precision.
public final class PcapSource {
    private let handle: OpaquePointer
    public let linkType: Int32
    public let name: String
    /// Live capture: the descriptor polled between reads, so waiting for traffic never
    /// blocks past the read timeout (stop conditions are checked at least every 100 ms).
    private var liveDescriptor: Int32 = -1
    /// Set by `stop()` (e.g. from a signal handler) to end a live capture.
    nonisolated(unsafe) private static var stopRequested: sig_atomic_t = 0

    private init(handle: OpaquePointer, name: String) {
        self.handle = handle
        self.name = name
        self.linkType = pcap_datalink(handle)
    }

    deinit {
        pcap_close(handle)
        fileBuffer?.deallocate()
    }

    /// Opens a capture file; missing, unreadable and non-capture files are one-line errors.
    public static func open(file path: String) throws -> PcapSource {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw CaptureError("\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CaptureError("\(path): not a regular file") }
        guard st.st_size > 0 else { throw CaptureError("\(path): empty file, not a pcap or pcapng capture") }
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        // The file is opened here so its stdio buffer can be 64 KiB: libpcap's own open reads
        // through the default 4 KiB one, a read(2) per 4 KiB (15,700 calls for 64 MB).
        guard let file = fopen(path, "rb") else {
            throw CaptureError("\(path): \(String(cString: strerror(errno)))")
        }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: PcapSource.fileBufferSize)
        setvbuf(file, buffer, _IOFBF, PcapSource.fileBufferSize)  // glibc ignores the size without a buffer
        // Only the thread reading the capture uses the stream: in a parallel replay, glibc
        // took and released its lock in each of libpcap's two freads a packet.
        wirebeat_stream_unlocked(file)
        guard let h = pcap_fopen_offline_with_tstamp_precision(file, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            fclose(file)  // not closed by libpcap when it fails
            buffer.deallocate()
            let reason = String(cString: errbuf)
            if reason.contains("unknown file format") || reason.contains("bad dump file format") {
                throw CaptureError("\(path): not a pcap or pcapng capture (\(reason))")
            }
            if reason.contains("truncated") {
                throw CaptureError("\(path): truncated capture (\(reason))")
            }
            throw CaptureError("\(path): cannot read capture: \(reason)")
        }
        let source = PcapSource(handle: h, name: path)
        source.fileBuffer = buffer
        return source
    }

    /// 64 KiB: a read(2) per 64 KiB still (1,000 calls for 64 MB), and the buffer the kernel
    /// copies into stays in the reading core's L2 (512 KiB here) with libpcap's packet and the
    /// batches being filled. With 1 MiB, each read evicted the L2: the kernel's copy
    /// (`_copy_to_iter`) was 12–43% of the SMTP bench's samples in `perf`, 2–5% with 64 KiB,
    /// and HTTP ran 1.2–1.5× faster (BENCHMARKS.md, round 16).
    private static let fileBufferSize = 64 * 1024
    /// The stdio buffer of a capture file: freed after `pcap_close` closed the file.
    private var fileBuffer: UnsafeMutablePointer<CChar>?

    /// Opens a live capture on `interface` with a BPF filter. `fallbackFilter` is used when
    /// `filter` does not compile for the interface's link type (`vlan` on `any`, say).
    public static func open(interface: String, filter: String, fallbackFilter: String? = nil,
                            snapLength: Int32 = 262_144) throws -> PcapSource {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_create(interface, &errbuf) else {
            throw CaptureError("\(interface): \(String(cString: errbuf))")
        }
        pcap_set_snaplen(h, snapLength)
        pcap_set_promisc(h, 0)
        pcap_set_timeout(h, 100)
        pcap_set_immediate_mode(h, 1)
        _ = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let status = pcap_activate(h)
        if status < 0 {
            let detail = String(cString: pcap_geterr(h))
            pcap_close(h)
            switch status {
            case PCAP_ERROR_PERM_DENIED:
                throw CaptureError("\(interface): no permission to capture (run as root or grant CAP_NET_RAW): \(detail)")
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw CaptureError("\(interface): no such interface")
            default:
                throw CaptureError("\(interface): cannot capture: \(detail)")
            }
        }
        let source = PcapSource(handle: h, name: interface)
        var errbuf2 = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        if pcap_setnonblock(h, 1, &errbuf2) == 0 { source.liveDescriptor = pcap_get_selectable_fd(h) }
        if !filter.isEmpty {
            var program = bpf_program()
            if pcap_compile(h, &program, filter, 1, PCAP_NETMASK_UNKNOWN) != 0 {
                let reason = String(cString: pcap_geterr(h))
                guard let fallbackFilter, pcap_compile(h, &program, fallbackFilter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
                    throw CaptureError("bad capture filter '\(filter)': \(reason)")
                }
            }
            defer { pcap_freecode(&program) }
            guard pcap_setfilter(h, &program) == 0 else {
                throw CaptureError("cannot set capture filter: \(String(cString: pcap_geterr(h)))")
            }
        }
        return source
    }

    public static func requestStop() { stopRequested = 1 }
    public static var isStopRequested: Bool { stopRequested != 0 }
    public static func resetStop() { stopRequested = 0 }

    public enum ReadResult {
        case packet
        /// Live capture: the read timed out with no packet (check stop conditions).
        case timeout
        case end
    }

    /// Reads the next packet and calls `body` with its timestamp, captured bytes and
    /// length on the wire. Throws on a read error (e.g. a capture truncated mid-record).
    @discardableResult
    public func next(_ body: (Timestamp, UnsafeRawBufferPointer, Int) -> Void) throws -> ReadResult {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let rc = pcap_next_ex(handle, &header, &data)
        switch rc {
        case 1:
            guard let header, let data else { return .timeout }
            let h = header.pointee
            let ts = Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: Int64(h.ts.tv_usec))
            body(ts, UnsafeRawBufferPointer(start: data, count: Int(h.caplen)), Int(h.len))
            return .packet
        case 0:
            // Non-blocking live capture with nothing to read: wait up to 100 ms for traffic.
            if liveDescriptor >= 0 {
                var fds = pollfd(fd: liveDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&fds, 1, 100)
            }
            return .timeout
        case PCAP_ERROR_BREAK: return .end
        case PCAP_ERROR: 
            throw readError()
        default: return .end  // PCAP_ERROR_BREAK or end of file (-2)
        }
    }

    /// Reads a capture file to its end, calling `body` for each packet (as `next` does):
    /// libpcap loops over the records itself (`pcap_dispatch`), without `pcap_next_ex`'s
    /// call and copy of each record's header (~50 instructions a packet). Throws, after the
    /// packets before it, on damage (a capture truncated mid-record).
    public func forEachPacket(_ body: (Timestamp, UnsafeRawBufferPointer, Int) -> Void) throws {
        if dispatch(limit: -1, body) == PCAP_ERROR { throw readError() }  // -1: every packet of the file
    }

    /// Reads at most `limit` packets (fewer if `body` calls `stopReading`), as `forEachPacket`
    /// does; false once the file is at its end. Throws, after the packets before it, on
    /// damage. For a reader that takes turns with other work.
    public func forSomePackets(limit: Int, _ body: (Timestamp, UnsafeRawBufferPointer, Int) -> Void) throws -> Bool {
        let rc = dispatch(limit: Int32(limit), body)
        if rc == PCAP_ERROR { throw readError() }
        // 0 only at the end: a stop returns the count so far, or, when libpcap sees the stop
        // before its first packet (it keeps a stop past a call that read some), PCAP_ERROR_BREAK.
        return rc != 0
    }

    /// `pcap_dispatch` of up to `limit` packets (-1: all) to `body`; its return code.
    private func dispatch(limit: Int32, _ body: (Timestamp, UnsafeRawBufferPointer, Int) -> Void) -> Int32 {
        withoutActuallyEscaping(body) { body in
            let callback = PacketCallback(body)
            return withExtendedLifetime(callback) {
                pcap_dispatch(handle, limit, { user, header, data in
                    guard let user, let header, let data else { return }
                    let h = header.pointee
                    let ts = Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: Int64(h.ts.tv_usec))
                    Unmanaged<PacketCallback>.fromOpaque(user)._withUnsafeGuaranteedRef {
                        $0.body(ts, UnsafeRawBufferPointer(start: data, count: Int(h.caplen)), Int(h.len))
                    }
                }, Unmanaged.passUnretained(callback).toOpaque().assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// Ends the current `forSomePackets` after the packet being handled (called from its body).
    public func stopReading() { pcap_breakloop(handle) }

    /// `forEachPacket`'s closure, reached from libpcap's callback through a borrowed reference
    /// and called from a `let`: a closure read from memory was retained and released around
    /// each call, and that release missed the cache (~2% of the DNS bench's CPU, in `perf`).
    private final class PacketCallback {
        let body: (Timestamp, UnsafeRawBufferPointer, Int) -> Void
        init(_ body: @escaping (Timestamp, UnsafeRawBufferPointer, Int) -> Void) { self.body = body }
    }

    /// What a read that failed (`PCAP_ERROR`) ran into, as one line.
    private func readError() -> CaptureError {
        let reason = String(cString: pcap_geterr(handle))
        if reason.contains("truncated") { return CaptureError("\(name): truncated capture (\(reason))") }
        return CaptureError("\(name): read error: \(reason)")
    }

    /// Counters from the kernel for a live capture (received, dropped).
    public var kernelStats: (received: UInt32, dropped: UInt32)? {
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return (s.ps_recv, s.ps_drop)
    }
}

/// Writes packets to a pcap file (the harness saves mutated captures with it).
public final class PcapWriter {
    private let dead: OpaquePointer
    private let dumper: OpaquePointer

    public init(path: String, linkType: Int32, snapLength: Int32 = 262_144) throws {
        guard let d = pcap_open_dead_with_tstamp_precision(linkType, snapLength, UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            throw CaptureError("cannot create a pcap writer")
        }
        guard let w = pcap_dump_open(d, path) else {
            let reason = String(cString: pcap_geterr(d))
            pcap_close(d)
            throw CaptureError("\(path): \(reason)")
        }
        dead = d
        dumper = w
    }

    public func write(timestamp: Timestamp, frame: UnsafeRawBufferPointer, wireLength: Int) {
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(timestamp.nanoseconds / 1_000_000_000)
        header.ts.tv_usec = Int(timestamp.nanoseconds % 1_000_000_000)
        header.caplen = UInt32(frame.count)
        header.len = UInt32(wireLength)
        frame.withMemoryRebound(to: UInt8.self) { bytes in
            withUnsafePointer(to: &header) { h in
                pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), h, bytes.baseAddress)
            }
        }
    }

    public func close() { pcap_dump_close(dumper); pcap_close(dead) }
}
