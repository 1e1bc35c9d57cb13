import Testing
import WirebeatCore
@testable import WirebeatPlugins

let testConnection = ConnectionInfo(id: 1, transport: .tcp,
                                    client: Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000),
                                    server: Endpoint(ip: IPAddress("10.0.0.2")!, port: 25))

/// Runs a conversation through a fresh SMTP plugin (see `runConversation`).
func runSMTP(_ steps: [Step], config: [String: ConfigValue] = [:], split: Split = .whole,
             close: CloseReason = .closed) -> [Event] {
    let plugin = try! SMTPPlugin(config: PluginConfig(pluginName: "smtp", values: config))
    return runConversation(plugin, steps, connection: testConnection, split: split, close: close)
}

func expectSplitInvariant(_ steps: [Step], config: [String: ConfigValue] = [:],
                          sourceLocation: SourceLocation = #_sourceLocation) {
    expectSplitInvariant(steps, run: { runSMTP($0, config: config, split: $1) }, sourceLocation: sourceLocation)
}

extension Event {
    func string(_ field: String) -> String? { self[field]?.stringValue }
    func int(_ field: String) -> Int64? { self[field]?.intValue }
    func strings(_ field: String) -> [String]? { self[field]?.arrayValue?.compactMap(\.stringValue) }
    var smtpType: String? { string("smtp.type") }
    var command: String? { string("smtp.request.command") }
    var code: Int64? { int("smtp.response.code") }
    var notes: String? { string("error.message") }
}

extension Array where Element == Event {
    func ofType(_ type: String) -> [Event] { filter { $0.smtpType == type } }
    var commands: [String] { compactMap(\.command) }
}
