// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Wirebeat",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "WirebeatCore", targets: ["WirebeatCore"]),
        .library(name: "WirebeatPlugins", targets: ["WirebeatPlugins"]),
        .library(name: "WirebeatConformance", targets: ["WirebeatConformance"]),
        .executable(name: "wirebeat", targets: ["wirebeat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // libpcap, found through pkg-config (Debian: libpcap-dev).
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // What Swift cannot spell (a cache prefetch, a stdio stream without its lock), as inline C.
        .target(name: "CSupport"),
        // Capture, packet decoding, TCP/UDP streams, plugin API, events, config.
        .target(
            name: "WirebeatCore",
            dependencies: [
                "CPcap",
                "CSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Protocol plugins, one folder each.
        .target(name: "WirebeatPlugins", dependencies: ["WirebeatCore"]),
        // Corpus, goldens and (later) mutation replay: reusable by any plugin package.
        .target(name: "WirebeatConformance", dependencies: ["WirebeatCore"]),
        // The command line, as a library so tests can drive it.
        .target(
            name: "WirebeatCLI",
            dependencies: [
                "WirebeatCore", "WirebeatPlugins", "WirebeatConformance",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "wirebeat", dependencies: ["WirebeatCLI"]),
        .testTarget(name: "WirebeatCoreTests", dependencies: ["WirebeatCore"]),
        .testTarget(name: "WirebeatPluginsTests", dependencies: ["WirebeatPlugins", "WirebeatCore"]),
        .testTarget(name: "ConformanceTests", dependencies: ["WirebeatConformance", "WirebeatCore"]),
        .testTarget(
            name: "CorpusTests",
            dependencies: ["WirebeatCLI", "WirebeatConformance", "WirebeatPlugins", "WirebeatCore"]
        ),
    ],
    // Swift 5 mode: the pipeline is single-threaded by design (one packet clock), and
    // strict-concurrency annotations on every class would add noise, not safety.
    swiftLanguageModes: [.v5]
)
