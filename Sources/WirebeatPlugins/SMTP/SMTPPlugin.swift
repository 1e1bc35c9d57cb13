import WirebeatCore

/// Settings of the SMTP plugin (`protocols.smtp.*`).
struct SMTPConfig {
    /// Put the raw command line(s) in `request` on COMMAND events (AUTH credentials redacted).
    var sendRequest = false
    /// Put the raw reply text in `response` on COMMAND and PROMPT events.
    var sendResponse = false
    var transactionTimeout = TimeSpan.seconds(10)
    /// Longest command or reply line (without CRLF) that is parsed; longer ones are discarded
    /// so a peer that never sends LF cannot make us buffer without bound.
    var maxLineLength = 8192
}

/// SMTP (RFC 5321) with PIPELINING, CHUNKING (BDAT), AUTH and STARTTLS.
///
/// Publishes `PROMPT` (greeting), `COMMAND` (one per command and its reply), `MAIL` (one per
/// mail transaction) and `ABORTED` (a transaction ended by RSET, QUIT, ... or by the connection
/// closing before the end of its data).
public final class SMTPPlugin: TCPProtocolPlugin {
    public static let name = "smtp"
    public static let defaultPorts: [UInt16] = [25, 587, 2525]

    let settings: SMTPConfig
    public var connectionTimeout: TimeSpan { settings.transactionTimeout }

    public init(config: PluginConfig) throws {
        var s = SMTPConfig()
        s.sendRequest = try config.bool("send_request", default: s.sendRequest)
        s.sendResponse = try config.bool("send_response", default: s.sendResponse)
        s.transactionTimeout = try config.duration("transaction_timeout", default: s.transactionTimeout)
        s.maxLineLength = try config.int("max_line_length", default: s.maxLineLength, range: 512...1_048_576)
        settings = s
    }

    public func makeConnectionState(for connection: ConnectionInfo) -> SMTPSession {
        SMTPSession(config: settings, startedMidStream: connection.startedMidStream)
    }

    public func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout SMTPSession,
                      context: PluginContext) {
        switch direction {
        case .original: state.parseClient(&stream, context)
        case .reverse: state.parseServer(&stream, context)
        }
    }

    public func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                            state: inout SMTPSession, context: PluginContext) {
        state.streamEnded(direction, remaining: &stream, context)
    }

    public func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                            state: inout SMTPSession, context: PluginContext) -> GapDecision {
        state.gap(direction, byteCount: byteCount, stream: &stream, context)
        return .keepState
    }

    public func connectionClosed(reason: CloseReason, state: inout SMTPSession, context: PluginContext) {
        state.close(reason, context)
    }
}
