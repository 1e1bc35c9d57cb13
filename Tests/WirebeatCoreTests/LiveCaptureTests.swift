import Foundation
import Testing
@testable import WirebeatCore
#if canImport(Glibc)
import Glibc
#endif

/// A real TCP exchange between two sockets on loopback, captured live with libpcap on `lo`
/// and parsed through the TCP layer. Needs root (CI runs as root).
struct LiveCaptureTests {
    @Test(.enabled(if: getuid() == 0, "live capture needs root"))
    func captureOnLoopback() throws {
        let port = UInt16(20000 + Int(getpid() % 20000))
        var registry = PluginRegistry()
        registry.register(RecordingPlugin.self)
        let plugins = try registry.load([("recorder", ["ports": .list([.scalar(String(port))])])])
        let sniffer = Sniffer(plugins: plugins, publisher: CollectingPublisher())
        let source = try PcapSource.open(interface: "lo", filter: "tcp port \(port)")

        try exchangeOnLoopback(port: port, request: "HELLO wirebeat\r\n", reply: "250 OK\r\n")

        // Read what the kernel captured until the connection is closed (or 5 s pass).
        let recorder = plugins[0].instance as! RecordingPlugin
        let deadline = Date().addingTimeInterval(5)
        while !recorder.log.contains("close closed") && Date() < deadline {
            try source.next { ts, frame, _ in sniffer.handle(linkType: source.linkType, timestamp: ts, frame: frame) }
        }
        sniffer.finish()
        #expect(recorder.log == ["C:HELLO wirebeat\r\n", "S:250 OK\r\n", "fin C", "fin S", "close closed"]
                || recorder.log == ["C:HELLO wirebeat\r\n", "S:250 OK\r\n", "fin S", "fin C", "close closed"])
        #expect(sniffer.stats.tcp.connections == 1)
        #expect(sniffer.stats.tcp.gaps == 0)
    }

    @Test func unknownInterfaceIsAOneLineError() {
        #expect {
            _ = try PcapSource.open(interface: "no-such-if0", filter: "")
        } throws: { error in
            let text = "\(error)"
            return text.contains("no-such-if0") && !text.contains("\n")
        }
    }

    /// Server and client sockets on 127.0.0.1: the client sends `request`, the server
    /// answers `reply`, both close.
    private func exchangeOnLoopback(port: UInt16, request: String, reply: String) throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw CaptureError("\(what): \(String(cString: strerror(errno)))") }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)

        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try check(listener >= 0, "socket")
        defer { close(listener) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        try check(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, size) } } == 0, "bind")
        try check(listen(listener, 1) == 0, "listen")

        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try check(client >= 0, "socket")
        try check(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, size) } } == 0, "connect")
        let server = accept(listener, nil, nil)
        try check(server >= 0, "accept")

        _ = request.withCString { send(client, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 256)
        var received = 0
        while received < request.utf8.count {
            let n = recv(server, &buffer[received], buffer.count - received, 0)
            try check(n > 0, "recv")
            received += n
        }
        _ = reply.withCString { send(server, $0, strlen($0), 0) }
        received = 0
        while received < reply.utf8.count {
            let n = recv(client, &buffer[received], buffer.count - received, 0)
            try check(n > 0, "recv")
            received += n
        }
        close(client)
        _ = recv(server, &buffer, buffer.count, 0)  // wait for the client's FIN
        close(server)
    }
}
