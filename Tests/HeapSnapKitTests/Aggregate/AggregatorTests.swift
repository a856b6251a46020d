import Testing
@testable import HeapSnapKit

@Suite struct AggregatorTests {
    func report(_ options: AggregationOptions, _ profile: Profile = Fixture.trimmedProfile()) -> Report {
        Aggregator(options: options).aggregate(profile)
    }

    @Test func byLineNamesTheAllocationSiteAfterTrimming() {
        let r = report(AggregationOptions())
        // operator new is trimmed; the inlined vector::push_back frame is the site.
        #expect(r.rows.map(\.key.label) == [
            "/usr/include/c++/12/bits/stl_vector.h:1281", "/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30",
        ])
        // store.swift:5 freed everything: no row under an in-use metric.
        #expect(r.rows[0].values.inuseBytes == Estimate(value: 4_000_000, variance: 4e10))
        #expect(r.rows[0].frame?.inlined == true)
        #expect(r.total.inuseBytes.value == 6_000_000)
        #expect(r.total.inuseBytes.variance == 5.4e10)
    }

    @Test func keepingAllocatorFramesShowsOperatorNew() {
        let r = report(AggregationOptions(groupBy: .function), Fixture.profile())
        #expect(r.rows.first?.key.function == "operator new(unsigned long)")
        #expect(r.rows.first?.frame?.module == Fixture.libPath)
    }

    @Test func extraAllocatorPatternTrimsMore() {
        let trimmed = AllocatorFrames(patterns: AllocatorFrames.defaultPatterns + ["std::vector<*"]).trim(Fixture.profile())
        let r = report(AggregationOptions(groupBy: .function), trimmed)
        #expect(r.rows.first?.key.function == "Cache::insert(int)")
    }

    @Test func swiftNamesAreDemangled() {
        let r = report(AggregationOptions(groupBy: .function, metric: .allocBytes))
        #expect(r.rows.contains { $0.key.function == "server.Store.add(Swift.String) -> ()" })
        #expect(!r.rows.contains { $0.key.function.hasPrefix("$s") })
    }

    @Test func cumulativeCountsRecursionOnce() {
        let r = report(AggregationOptions(groupBy: .function, cumulative: true))
        let values = Dictionary(uniqueKeysWithValues: r.rows.map { ($0.key.function, $0.values.inuseBytes.value) })
        // main is in every stack: all in-use bytes, once each.
        #expect(values["main"] == 6_000_000)
        // parse_request appears twice in stack 2 but counts once: 1.5 MB + 0.5 MB.
        #expect(values["parse_request"] == 2_000_000)
        #expect(values["handle"] == 5_500_000)
        #expect(r.rows.first?.key.function == "main")
        // The total stays the sum over samples, not over rows.
        #expect(r.total.inuseBytes.value == 6_000_000)
    }

    @Test func byFileAndModule() {
        let byFile = report(AggregationOptions(groupBy: .file))
        #expect(byFile.rows.first(where: { $0.key.file == "/srv/app/src/parser.c" })?.values.inuseBytes.value == 2_000_000)
        let byModule = report(AggregationOptions(groupBy: .module, metric: .allocObjects))
        #expect(byModule.rows.map(\.key.module) == [Fixture.appPath])
        #expect(byModule.rows[0].values.allocObjects.value == 8000)
    }

    @Test func tracebackKeepsWholeStacks() {
        let r = report(AggregationOptions(groupBy: .traceback, metric: .allocObjects))
        #expect(r.rows.count == 4)
        #expect(r.rows[0].key.label == "/srv/app/src/store.swift:5")
        let byBytes = report(AggregationOptions(groupBy: .traceback))
        #expect(byBytes.rows[0].key.stack.map(\.function) == [
            "std::vector<int>::push_back(int const&)", "Cache::insert(int)", "handle", "main",
        ])
        #expect(byBytes.rows[0].key.stack.map(\.inlined) == [true, false, false, false])
    }

    @Test func objectMetricsSortDifferently() {
        let r = report(AggregationOptions(metric: .allocObjects))
        #expect(r.rows.first?.key.label == "/srv/app/src/store.swift:5")
        #expect(r.rows.first?.values.allocObjects.value == 6000)
    }

    @Test(arguments: [
        (["*/parser.c"], [String](), ["/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"]),
        (["parser.c"], [], ["/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"]),
        ([], ["*/parser.c", "stl_*"], ["/srv/app/src/store.swift:5"]),
        (["server"], ["*.swift"], ["/usr/include/c++/12/bits/stl_vector.h:1281", "/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"]),
    ])
    func filters(include: [String], exclude: [String], expected: [String]) {
        let filter = ProfileFilter(include: include, exclude: exclude)
        let r = report(AggregationOptions(metric: .allocBytes), filter.apply(Fixture.trimmedProfile()))
        #expect(r.rows.map(\.key.label) == expected)
        #expect(r.total.allocBytes.value == r.rows.map { $0.values.allocBytes.value }.reduce(0, +))
        #expect(r.filter == filter)
    }

    @Test func filtersOnAllFrames() {
        let r = report(AggregationOptions(), ProfileFilter(include: ["*/cache.cpp"], allFrames: true).apply(Fixture.trimmedProfile()))
        #expect(r.rows.map(\.key.label) == ["/usr/include/c++/12/bits/stl_vector.h:1281"])
        let none = report(AggregationOptions(), ProfileFilter(include: ["*/cache.cpp"]).apply(Fixture.trimmedProfile()))
        #expect(none.rows.isEmpty)
    }

    @Test func theFilterStageIsProfileToProfileAndTheReportCountsWhatItKept() {
        let profile = Fixture.trimmedProfile()
        let filter = ProfileFilter(include: ["*/parser.c"])
        let filtered = filter.apply(profile)
        #expect(filtered.frames == profile.frames && filtered.source == profile.source)
        #expect(filtered.samples == profile.samples.filter { filter.accepts($0, in: profile) })
        #expect(filtered.samples.count > 0 && filtered.samples.count < profile.samples.count)
        #expect(filtered.filtering == Filtering(filter: filter, samplesBefore: profile.samples.count))
        let r = report(AggregationOptions(), filtered)
        #expect(r.matchedSamples == filtered.samples.count && r.allSamples == profile.samples.count)
        // Filtering a filtered profile again counts from the original.
        #expect(ProfileFilter(exclude: ["nothing"]).apply(filtered).filtering?.samplesBefore == profile.samples.count)
        // No globs: the very same profile, nothing recorded.
        #expect(ProfileFilter().apply(profile) == profile)
        let plain = report(AggregationOptions(), profile)
        #expect(plain.matchedSamples == plain.allSamples && plain.filter == ProfileFilter())
    }

    @Test func limitKeepsTheLargest() {
        let r = report(AggregationOptions(limit: 2))
        #expect(r.rows.count == 2)
        #expect(r.omittedRows == 1)
        #expect(r.total.inuseBytes.value == 6_000_000)
    }

    @Test func tiesAreBrokenByLabel() {
        var snapshot = Fixture.snapshot()
        // Make stacks 1 and 2 identical in every value.
        snapshot.records[2].inuse = snapshot.records[1].inuse
        snapshot.records[2].alloc = snapshot.records[1].alloc
        let r = report(AggregationOptions(), Fixture.trimmedProfile(snapshot))
        #expect(Array(r.rows.map(\.key.label).dropFirst().prefix(2)) == ["/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"])
    }

    @Test func unsymbolizedFramesAreModulePlusOffset() {
        let fake = FakeSymbolizer(Fixture.symbols)
        let profile = ProfileSymbolizer(symbolizer: fake, locator: TrustingLocator(missing: [Fixture.appPath]))
            .profile(of: Fixture.snapshot(), file: "x")
        #expect(profile.warnings == ["\(Fixture.appPath): file not found"])
        // Requests only for the library, none for the missing app.
        #expect(fake.requested.allSatisfy { $0.objectPath == Fixture.libPath })
        let r = Aggregator(options: AggregationOptions(groupBy: .function)).aggregate(AllocatorFrames().trim(profile))
        #expect(r.rows.first?.key.function == "server+0x2000")
        #expect(r.rows.contains { $0.key.function == "server+0x2100" })
    }
}

@Suite struct DiffTests {
    @Test func diffIsNewMinusOldWithAddedVariance() {
        let old = Fixture.trimmedProfile(Fixture.snapshot(), file: "old")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1, extraLeak: 3_000_000), file: "new")
        let diff = new.subtracting(old)
        #expect(diff.isDiff)
        let r = Aggregator(options: AggregationOptions()).aggregate(diff)
        let top = r.rows[0]
        #expect(top.key.label == "/usr/include/c++/12/bits/stl_vector.h:1281")
        #expect(top.values.inuseBytes.value == 3_000_000)
        // Variances add: 4e10 + 4e10.
        #expect(top.values.inuseBytes.variance == 8e10)
        #expect(top.base?.inuseBytes.value == 4_000_000)
        #expect(top.current.inuseBytes.value == 7_000_000)
        // 3 MB against ±1.96·sqrt(8e10) ≈ 554 KB: a real change.
        #expect(!top.isWithinNoise(.inuseBytes))
        // Unchanged rows are within noise and have a zero change.
        let others = r.rows.dropFirst()
        #expect(others.allSatisfy { $0.values.inuseBytes.value == 0 && $0.isWithinNoise(.inuseBytes) })
        #expect(r.total.inuseBytes.value == 3_000_000)
        #expect(r.baseTotal?.inuseBytes.value == 6_000_000)
        #expect(r.currentTotal.inuseBytes.value == 9_000_000)
    }

    @Test func diffSortsByAbsoluteChange() {
        let old = Fixture.trimmedProfile(Fixture.snapshot(scale: 2), file: "old")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1, extraLeak: 500_000), file: "new")
        let r = Aggregator(options: AggregationOptions()).aggregate(new.subtracting(old))
        // Stack 0 shrank by 3.5 MB, stack 1 by 1.5 MB, stack 2 by 0.5 MB.
        #expect(r.rows.map { $0.values.inuseBytes.value } == [-3_500_000, -1_500_000, -500_000])
    }

    @Test func smallChangeIsWithinNoise() {
        let old = Fixture.trimmedProfile(Fixture.snapshot(), file: "old")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1, extraLeak: 100_000), file: "new")
        let r = Aggregator(options: AggregationOptions()).aggregate(new.subtracting(old))
        // 100 KB against ±554 KB.
        #expect(r.rows[0].values.inuseBytes.value == 100_000)
        #expect(r.rows[0].isWithinNoise(.inuseBytes))
    }

    @Test func diffAcrossProcessesMatchesFramesNotAddresses() {
        var moved = Fixture.snapshot(scale: 1, extraLeak: 1_000_000)
        // Another process of the same binary: different load addresses (ASLR).
        let shift: UInt64 = 0x1234_0000
        moved.modules = moved.modules.map { var m = $0; m.start += shift; m.end += shift; return m }
        moved.stacks = moved.stacks.map { RawStack(frames: $0.frames.map { $0 + shift }, truncated: $0.truncated) }
        let diff = Fixture.trimmedProfile(moved, file: "new").subtracting(Fixture.trimmedProfile(file: "old"))
        let r = Aggregator(options: AggregationOptions(groupBy: .traceback, metric: .allocBytes)).aggregate(diff)
        #expect(r.rows.count == 4)
        #expect(r.rows[0].values.inuseBytes.value == 1_000_000)
    }
}

@Suite struct AllocatorFramesTests {
    @Test(arguments: [
        ("malloc", true), ("operator new(unsigned long)", true), ("operator new[](unsigned long)", true),
        ("std::allocator<int>::allocate(unsigned long)", true), ("__gnu_cxx::new_allocator<char>::allocate(unsigned long, void const*)", true),
        ("swift_allocObject", true), ("swift_slowAlloc", true), ("PyMem_Malloc", true), ("_PyObject_Malloc", true),
        ("PyObject_Malloc", true), ("g_malloc0", true), ("__libc_malloc", true), ("strdup", true),
        ("zmalloc_usable", true), ("ztrycalloc_usable", true), ("ngx_palloc", true), ("palloc0", true),
        ("main", false), ("Cache::insert(int)", false), ("mallocate_things", false), ("std::vector<int>::push_back(int const&)", false),
    ])
    func defaultPatterns(function: String, isAllocator: Bool) {
        #expect(AllocatorFrames().matches(Frame(function: function, module: "/srv/app")) == isAllocator)
    }

    @Test func moduleNamesMatchToo() {
        #expect(AllocatorFrames().matches(Frame(function: "anything", module: "/opt/x/libheapsnap_preload.so")))
        #expect(AllocatorFrames().matches(Frame(function: "_ULx86_64_step", module: "/usr/lib/x86_64-linux-gnu/libunwind.so.8")))
    }

    @Test func stackOfOnlyAllocatorFramesKeepsItsLast() {
        let profile = Profile(frames: [Frame(function: "malloc"), Frame(function: "operator new(unsigned long)")],
                              samples: [Sample(frames: [0, 1], values: .zero)],
                              source: ProfileSource(file: "x", header: SnapshotHeader(), modules: [], totals: .zero))
        #expect(AllocatorFrames().trim(profile).samples[0].frames == [1])
    }
}
