// swift-tools-version: 6.0
import PackageDescription

// Two halves, one package:
// - CShim: the capture side, a C library preloaded into the profiled process.
//   It must not pull the Swift runtime into that process; see the linker
//   settings of the CShim target for how.
// - HeapSnapKit + heapsnap: the analysis side, a Swift library and a thin CLI.
//
// The preload library is the product `heapsnap_preload` (libheapsnap_preload.so,
// named like heaptrack's libheaptrack_preload.so): SwiftPM keeps one product per
// name, and `heapsnap` is the command users type.
let package = Package(
    name: "heapsnap",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "heapsnap", targets: ["heapsnap"]),
        .library(name: "heapsnap_preload", type: .dynamic, targets: ["CShim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(
            name: "CShim",
            path: "CShim",
            exclude: ["DESIGN.md"],
            cSettings: [.unsafeFlags(["-fvisibility=hidden", "-O2", "-fno-omit-frame-pointer"])],
            linkerSettings: [.linkedLibrary("unwind"), .linkedLibrary("pthread"), .linkedLibrary("dl")]
        ),
        // zlib, for gzip-compressed pprof files (Debian zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(
            name: "HeapSnapKit",
            dependencies: ["CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Export/pprof.proto"]
        ),
        .executableTarget(
            name: "heapsnap",
            dependencies: [
                "HeapSnapKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "HeapSnapKitTests", dependencies: ["HeapSnapKit", "heapsnap"], exclude: ["Render/Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
