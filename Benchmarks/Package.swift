// swift-tools-version: 6.1
// Micro-benchmarks of Wirebeat's parsers and TCP layer, kept out of the main package so its
// build and CI stay fast. Run from this directory:
//
//   swift package benchmark                      # all (MB/s and allocations per message)
//   swift package benchmark --filter HTTP
//
// Uses ordo-one/benchmark; its malloc interposer counts allocations.
import PackageDescription

let package = Package(
    name: "WirebeatBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        // Named: a path dependency's identity is otherwise its folder name (main, a worktree…).
        .package(name: "Wirebeat", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Parsers",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WirebeatCore", package: "Wirebeat"),
                .product(name: "WirebeatPlugins", package: "Wirebeat"),
            ],
            path: "Benchmarks/Parsers",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
