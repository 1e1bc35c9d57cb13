import WirebeatCore

/// The plugins that ship with Wirebeat.
public enum BuiltinPlugins {
    public static func register(into registry: inout PluginRegistry) {
        registry.register(SMTPPlugin.self)
        registry.register(DNSPlugin.self)
        registry.register(HTTPPlugin.self)
    }
    public static var registry: PluginRegistry { var r = PluginRegistry(); register(into: &r); return r }
}
