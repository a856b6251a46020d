// swift-tools-version: 6.1
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
        // `heapsnap serve`: the web view (HTTP/1.1 on SwiftNIO). Its configuration-file
        // support (swift-configuration) is left out: the server takes its settings from flags.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The web view's tests: the server in a service group of their own, and a plain HTTP/1.1 client on
        // NIO's pipeline (all three are Hummingbird's already). Not HummingbirdTesting, whose AsyncHTTPClient
        // would build swift-nio-ssl and BoringSSL into every debug build.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        .target(
            name: "CShim",
            path: "CShim",
            exclude: ["DESIGN.md", "link"],
            cSettings: [
                // One folder a layer (CShim/DESIGN.md, "Layers"); every include names its
                // file by its path from CShim ("base/options.h").
                .headerSearchPath("."),
                // `-Xclang -mframe-pointer=none`: SwiftPM appends -fno-omit-frame-pointer
                // after these flags; the cc1 option wins, so the sampling paths stay a few
                // instructions and a tail jump with no frame set up (CShim/exports/hooks.c). The
                // shim's stacks are unwound from .eh_frame, not frame pointers.
                .unsafeFlags(["-fvisibility=hidden", "-fno-builtin", "-Xclang", "-mframe-pointer=none",
                              "-ftls-model=initial-exec", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
            ],
            linkerSettings: [
                .linkedLibrary("pthread"), .linkedLibrary("dl"),
                // Keep the Swift runtime out of the preload library. SwiftPM links every
                // dynamic product with swiftc, which adds swiftrt.o (a constructor that
                // calls swift_addNewDSOImage), `-lswiftCore` and an RPATH into the
                // toolchain; flags from here land *after* `-lswiftCore`, so
                // `--as-needed` cannot drop it. Instead:
                // - `-nostartfiles` leaves out swiftrt.o;
                // - `-no-toolchain-stdlib-rpath` leaves out the RPATH;
                // - `-resource-dir CShim/link` makes swiftc's own `-L<resource-dir>/linux`
                //   (which comes before every other -L) point at CShim/link/linux, where
                //   libswiftCore.so is an empty linker script: `-lswiftCore` then links
                //   nothing and records no DT_NEEDED;
                // - `-z defs` fails the link if anything is left unresolved.
                // Result (checked by ShimTests "links only libc and libunwind"):
                // NEEDED = libunwind.so.8, libm.so.6, libc.so.6; no RUNPATH into the toolchain.
                .unsafeFlags(["-nostartfiles", "-no-toolchain-stdlib-rpath",
                              "-resource-dir", Context.packageDirectory + "/CShim/link",
                              "-Xlinker", "-z", "-Xlinker", "defs"]),
            ]
        ),
        // `heapsnap attach`'s injector: ptrace from C (the calls are variadic, which Swift cannot make).
        .target(name: "CInject", path: "Sources/CInject"),
        // zlib, for gzip-compressed pprof files (Debian zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // The SVGs' scripts are .js files beside their renderers, embedded at build time
        // (`PackageResources.flamegraph_js`): one self-contained binary, and files that editors
        // and `node --check` read.
        .target(
            name: "HeapSnapKit",
            dependencies: ["CZlib", "CInject", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Export/pprof.proto"],
            resources: [.embedInCode("Render/FlameGraph/flamegraph.js"), .embedInCode("Render/Timeline/timeline.js")]
        ),
        // The web view: an HTTP front end over HeapSnapKit. Its page is Sources/HeapSnapServe/Assets
        // (index.html, app.css, app.js), embedded at build time likewise: nothing is read at run time.
        .target(
            name: "HeapSnapServe",
            dependencies: [
                "HeapSnapKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Assets/index.html"), .embedInCode("Assets/app.css"), .embedInCode("Assets/app.js")]
        ),
        .executableTarget(
            name: "heapsnap",
            dependencies: [
                "HeapSnapKit",
                "HeapSnapServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What every test target shares: waiting on a condition with a deadline (no product: only the tests use it).
        .target(name: "HeapSnapTestSupport", path: "Tests/HeapSnapTestSupport"),
        .testTarget(name: "HeapSnapKitTests", dependencies: ["HeapSnapKit", "heapsnap", "HeapSnapTestSupport"],
                    exclude: ["Render/Golden", "Support/Programs"]),
        // Runs Tests/Programs under libheapsnap_preload.so ($HEAPSNAP_LIB, set by Scripts/test).
        .testTarget(name: "ShimTests", dependencies: ["HeapSnapKit", "HeapSnapTestSupport"]),
        // The web view's API over HTTP on 127.0.0.1 (the real server, any free port) and in a real browser.
        .testTarget(name: "HeapSnapServeTests", dependencies: [
            "HeapSnapServe", "heapsnap", "HeapSnapTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
        ], exclude: ["Browser/drive_page.py"]),   // run by path (BrowserTests), not a resource
    ],
    swiftLanguageModes: [.v6]
)
