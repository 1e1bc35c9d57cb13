import Logging

/// A protocol plugin: a name, the ports it listens on, and construction from its config
/// section. Mirrors Packetbeat's `protos.Plugin`, typed.
public protocol ProtocolPlugin: AnyObject {
    /// The name used in config (`protocols.<name>`), in `type` and in `-d` selectors.
    static var name: String { get }
    /// Ports used when the config names none.
    static var defaultPorts: [UInt16] { get }
    /// Reads the plugin's settings. Every key the plugin does not read is reported as unknown.
    init(config: PluginConfig) throws
}

/// Why a direction of a TCP stream ended.
public enum StreamEnd: String, Sendable {
    /// A FIN was received in order.
    case fin
    /// A RST was received.
    case reset
}

/// Why a connection's state is being closed for good.
public enum CloseReason: String, Sendable {
    /// Both directions ended (FIN/RST) and everything was delivered.
    case closed
    /// No packet for longer than the plugin's `connectionTimeout`, on the packet clock.
    case timeout
    /// The capture ended (or live capture was stopped) with the connection still open.
    case endOfInput
}

/// What the TCP layer does with a connection's state after a gap.
public enum GapDecision: Sendable {
    /// Keep the state (the plugin knows how to carry on, e.g. skipping body bytes).
    case keepState
    /// Discard the state and the unparsed bytes; a new state is made for the next bytes,
    /// which the plugin resynchronises on.
    case dropState
}

/// A plugin that parses TCP streams. `ConnectionState` is the plugin's own per-connection
/// type: the TCP layer stores one per connection and hands it back `inout`, never as `Any`.
///
/// Call order per connection: `makeConnectionState`, then any number of `parse`,
/// `gapInStream` and `receivedFIN` (at most once per direction), then `connectionClosed`
/// exactly once (unless `gapInStream` dropped the state and no bytes followed).
public protocol TCPProtocolPlugin: ProtocolPlugin {
    associatedtype ConnectionState

    /// Idle time after which a connection is expired (packet clock). Packetbeat calls this
    /// `transaction_timeout`.
    var connectionTimeout: TimeSpan { get }

    func makeConnectionState(for connection: ConnectionInfo) -> ConnectionState

    /// New in-order bytes are in `stream`. Consume every complete message; leave a partial
    /// message unconsumed for the next call.
    func parse(_ stream: inout StreamBuffer, direction: Direction,
               state: inout ConnectionState, context: PluginContext)

    /// The direction ended. `stream` holds any bytes `parse` left unconsumed (the
    /// `decodeLast` of SwiftNIO): publish or drop what they start, by the plugin's rule.
    func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                     state: inout ConnectionState, context: PluginContext)

    /// `byteCount` bytes were lost at this point of the direction. `stream` holds the bytes
    /// before the hole that `parse` left unconsumed.
    func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                     state: inout ConnectionState, context: PluginContext) -> GapDecision

    /// The connection is gone: publish pending work with a note, or drop it by rule.
    func connectionClosed(reason: CloseReason, state: inout ConnectionState, context: PluginContext)
}

extension TCPProtocolPlugin {
    public func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) -> GapDecision {
        .dropState
    }
    public func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer,
                            state: inout ConnectionState, context: PluginContext) {}
    public func connectionClosed(reason: CloseReason, state: inout ConnectionState, context: PluginContext) {}
}

/// A plugin that parses UDP datagrams. Request/response pairing across datagrams is the
/// plugin's own state; the packet clock reaches it through `advanceClock`.
public protocol UDPProtocolPlugin: ProtocolPlugin {
    /// One datagram; `context.connection.client` is the side not on the plugin's port.
    /// `payload` is borrowed from the capture's buffer for the call only (a `Span` cannot
    /// escape it): a plugin that keeps the bytes, e.g. a query waiting for its response,
    /// copies them. The sniffer then copies nothing, and counts no reference.
    func parseDatagram(_ payload: Span<UInt8>, direction: Direction, context: PluginContext)
    /// The packet clock moved to `now` (called at most once per second of packet time):
    /// expire what has waited too long. Publish with `publish(_:sweepOrder:)` (see there).
    func advanceClock(to now: Timestamp, publisher: EventPublisher)
    /// Input ended: publish or drop everything pending, with `publish(_:sweepOrder:)`.
    func finish(publisher: EventPublisher)
    /// How long after a flow's last datagram the plugin may still hold state for it (and
    /// publish about it). Parallel replay needs it to know when a flow may move to another
    /// worker; `nil` (the default) means "unbounded" and keeps replay on one thread.
    var flowStateLifetime: TimeSpan? { get }
}

extension UDPProtocolPlugin {
    public func advanceClock(to now: Timestamp, publisher: EventPublisher) {}
    public func finish(publisher: EventPublisher) {}
    public var flowStateLifetime: TimeSpan? { nil }
}

/// Where plugins send their events.
public protocol EventPublisher: AnyObject {
    func publish(_ event: consuming Event)
    /// Publishes an event from a UDP plugin's `advanceClock` or `finish`, where one plugin
    /// instance speaks for many flows. `sweepOrder` is the `PluginContext.packetIndex` of
    /// the datagram the event is about (e.g. the unanswered query), and the events of one
    /// call go out in increasing `sweepOrder`: parallel replay, where each worker has its
    /// own plugin instance, merges the workers' events by it into the single-thread order.
    func publish(_ event: consuming Event, sweepOrder: Int)
    /// Publishes the event that `template` makes with `values` and the values `fields` writes
    /// into its field holes (see `EventTemplate.write`), which is the event `build` makes: a
    /// publisher that writes compact JSON lines may write it from the template, and any other
    /// publishes `build()` (the default). The same bytes come out either way.
    func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                 fields: (Int, inout FieldOutput) -> Void, build: () -> Event)
}

extension EventPublisher {
    public func publish(_ event: consuming Event, sweepOrder: Int) { publish(event) }
    public func publish(_ template: EventTemplate, _ values: EventTemplate.Values,
                        fields: (Int, inout FieldOutput) -> Void, build: () -> Event) {
        publish(build())
    }

    /// Of a template without field holes.
    public func publish(_ template: EventTemplate, _ values: EventTemplate.Values, build: () -> Event) {
        publish(template, values, fields: { _, _ in preconditionFailure("a template with a field hole needs its writer") },
                build: build)
    }
}

/// Everything a plugin call needs besides its state: the connection, the packet time,
/// the publisher and a logger (enabled with `-d <plugin name>`).
public struct PluginContext {
    /// What is the same for every payload of a flow (its connection, the publisher, the
    /// plugin's logger), in one object the TCP layer and the UDP flow table keep per flow:
    /// building a context per payload is then one retain, not one per field (~250
    /// instructions a datagram with the logger's label and handler copied each time).
    @usableFromInline final class FlowScope {
        @usableFromInline let connection: ConnectionInfo
        @usableFromInline let publisher: EventPublisher
        @usableFromInline let logger: Logger
        init(connection: ConnectionInfo, publisher: EventPublisher, logger: Logger) {
            self.connection = connection
            self.publisher = publisher
            self.logger = logger
        }
    }
    @usableFromInline let scope: FlowScope

    // Inlinable: plugins read these many times per payload.
    @inlinable public var connection: ConnectionInfo { scope.connection }
    /// Timestamp of the packet being processed (at FIN, gap or close: of the last packet seen).
    public let timestamp: Timestamp
    @inlinable public var publisher: EventPublisher { scope.publisher }
    @inlinable public var logger: Logger { scope.logger }
    /// Position of the packet being processed in the input (1-based, counting decoded
    /// packets), the same in every worker of a parallel replay: an order across flows.
    public let packetIndex: Int

    public init(connection: ConnectionInfo, timestamp: Timestamp, publisher: EventPublisher, logger: Logger,
                packetIndex: Int = 0) {
        self.init(scope: FlowScope(connection: connection, publisher: publisher, logger: logger),
                  timestamp: timestamp, packetIndex: packetIndex)
    }

    init(scope: FlowScope, timestamp: Timestamp, packetIndex: Int) {
        self.scope = scope
        self.timestamp = timestamp
        self.packetIndex = packetIndex
    }

    @inlinable public func publish(_ event: consuming Event) { scope.publisher.publish(event) }
}
