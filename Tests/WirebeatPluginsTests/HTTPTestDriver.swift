import Testing
import WirebeatCore
@testable import WirebeatPlugins

typealias HTTPStep = Step
typealias HTTPSplit = Split
typealias HTTPRandom = SplitMix64

let httpConnection = ConnectionInfo(id: 1, transport: .tcp,
                                    client: Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000),
                                    server: Endpoint(ip: IPAddress("10.0.0.2")!, port: 80))

/// Runs a conversation through a fresh HTTP plugin (see `runConversation`).
func runHTTP(_ steps: [HTTPStep], config: [String: ConfigValue] = [:], split: HTTPSplit = .whole,
             close: CloseReason = .closed) -> [Event] {
    let plugin = try! HTTPPlugin(config: PluginConfig(pluginName: "http", values: config))
    return runConversation(plugin, steps, connection: httpConnection, split: split, close: close)
}

func httpLines(_ events: [Event]) -> [String] { jsonLines(events) }

func expectHTTPSplitInvariant(_ steps: [HTTPStep], config: [String: ConfigValue] = [:],
                              sourceLocation: SourceLocation = #_sourceLocation) {
    expectSplitInvariant(steps, run: { runHTTP($0, config: config, split: $1) }, sourceLocation: sourceLocation)
}

extension Event {
    // From the nested JSON, as written: the plugin sets `http` and `url` as whole objects,
    // whose members are no fields of their own (`self["http.version"]` is nil).
    func httpValue(_ field: String) -> JSONValue? { json.value(at: field) }
    func httpString(_ field: String) -> String? { httpValue(field)?.stringValue }
    func httpInt(_ field: String) -> Int64? { httpValue(field)?.intValue }
    var httpMethod: String? { httpString("http.request.method") }
    var httpCode: Int64? { httpInt("http.response.status_code") }
    var httpNotes: String? { httpString("error.message") }
    var hasLossNote: Bool { httpNotes?.contains("packet loss") ?? false }
}
