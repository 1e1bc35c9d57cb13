// swift-tools-version: 6.0
// An external Wirebeat plugin: its own package, depending on Wirebeat for the plugin API
// (WirebeatCore) and the conformance harness (WirebeatConformance).
import PackageDescription

let package = Package(
    name: "MemcachePlugin",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "MemcachePlugin", targets: ["MemcachePlugin"]),
    ],
    dependencies: [
        // A released plugin would use `.package(url: "https://…/wirebeat", from: "x.y.z")`.
        .package(name: "Wirebeat", path: "../.."),
    ],
    targets: [
        .target(
            name: "MemcachePlugin",
            dependencies: [.product(name: "WirebeatCore", package: "Wirebeat")]
        ),
        .testTarget(
            name: "MemcachePluginTests",
            dependencies: [
                "MemcachePlugin",
                .product(name: "WirebeatCore", package: "Wirebeat"),
                .product(name: "WirebeatConformance", package: "Wirebeat"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
