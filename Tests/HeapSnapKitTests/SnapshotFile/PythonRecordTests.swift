import Testing
@testable import HeapSnapKit

/// A snapshot of a Python process: native frames around the Python frames that replaced the eval loop.
func pythonSnapshot() -> Snapshot {
    var s = sampleSnapshot(stackCount: 2)
    s.python = PythonInfo(status: .frames, version: 0x030B_02F0, flags: [.wrapped], note: "CPython 3.11.2: Python frames",
                          functions: [PythonFunction(name: "Cache.store", file: "/srv/app/cache.py", firstLine: 40),
                                      PythonFunction(name: "<module>", file: "/srv/app/main.py", firstLine: 1)])
    let native = s.stacks[0].frames
    s.stacks[0].frames = [native[0], PythonFrame.encode(function: 0, line: 42), PythonFrame.encode(function: 1, line: 7)] + native.dropFirst()
    return s
}

@Suite struct PythonRecordTests {
    @Test func frameEncodingRoundTrips() {
        for (function, line) in [(0, 0), (1, 42), (123_456, PythonFrame.maxLine), (Int(UInt32.max), 1)] {
            let frame = PythonFrame.encode(function: function, line: line)
            #expect(frame >> 56 == 0xF1)
            #expect(PythonFrame.decode(frame)! == (function, line))
        }
        #expect(PythonFrame.decode(0x7F00_0000_1234) == nil)
        #expect(PythonFrame.decode(PythonFrame.encode(function: 3, line: 1 << 30))?.line == PythonFrame.maxLine)
    }

    @Test func pythRecordRoundTrips() throws {
        let snapshot = pythonSnapshot()
        let bytes = SnapshotWriter.encode(snapshot)
        let read = try SnapshotReader.decode(bytes, name: "p")
        #expect(read == snapshot)
        #expect(read.python?.versionString == "3.11.2")
        #expect(read.header.formatMinor == SnapshotFormat.minor)
    }

    @Test func rejectsPythonFramesWithoutTheirFunctions() {
        var orphan = pythonSnapshot()
        orphan.python = nil
        #expect(decodeError(SnapshotWriter.encode(orphan))?.description.contains("has a Python frame but the file has no PYTH record") == true)
        var beyond = pythonSnapshot()
        beyond.stacks[1].frames.insert(PythonFrame.encode(function: 2, line: 1), at: 0)
        #expect(decodeError(SnapshotWriter.encode(beyond))?.description.contains("names Python function 2, but PYTH has 2") == true)
    }

    @Test func symbolizedPythonFramesNameFunctionFileAndLine() {
        let profile = ProfileSymbolizer(symbolizer: FakeSymbolizer([:]), locator: TrustingLocator()).profile(of: pythonSnapshot(), file: "p")
        let frames = profile.samples.flatMap { $0.frames.map { profile.frames[$0] } }
        #expect(frames.contains(Frame(function: "Cache.store", file: "/srv/app/cache.py", line: 42, module: PythonFrame.module)))
        #expect(frames.contains(Frame(function: "<module>", file: "/srv/app/main.py", line: 7, module: PythonFrame.module)))
    }

    @Test func reusedObjectsWarnWhenTheFreeListsWereNotOff() throws {
        // Without FREE_LISTS_OFF: one line in the profile's warnings (the table's footer) and in info.
        let plain = pythonSnapshot()
        let line = "charged to the line that first allocated their memory"
        let profile = ProfileSymbolizer(symbolizer: FakeSymbolizer([:]), locator: TrustingLocator()).profile(of: plain, file: "p")
        #expect(profile.warnings.contains { $0.contains(line) }, "\(profile.warnings)")
        #expect(InfoReport(snapshot: plain, file: "p", locator: TrustingLocator()).warnings.contains { $0.contains(line) })
        // With it: silence, and the flag survives the file.
        var off = pythonSnapshot()
        off.python!.flags.insert(.freeListsOff)
        let read = try SnapshotReader.decode(SnapshotWriter.encode(off), name: "p")
        #expect(read.python?.flags.contains(.freeListsOff) == true && read.python?.reuseWarning == nil)
        #expect(!ProfileSymbolizer(symbolizer: FakeSymbolizer([:]), locator: TrustingLocator()).profile(of: off, file: "p")
            .warnings.contains { $0.contains(line) })
        #expect(Format.python(off.python!).contains("free lists off"))
        // A merge is charged where objects were created only if every process was.
        #expect(SnapshotMerge.merge([("a", off), ("b", off)]).snapshot.python?.flags.contains(.freeListsOff) == true)
        #expect(SnapshotMerge.merge([("a", off), ("b", plain)]).snapshot.python?.flags.contains(.freeListsOff) == false)
    }

    @Test func mergeRemapsFunctionsIntoOneTable() throws {
        let a = pythonSnapshot()
        var b = pythonSnapshot()
        // b lists the same functions in the other order, plus one of its own.
        b.python!.functions = [PythonFunction(name: "helper", file: "/srv/app/util.py", firstLine: 3)] + a.python!.functions.reversed()
        b.stacks[0].frames[1] = PythonFrame.encode(function: 2, line: 42)     // Cache.store
        b.stacks[0].frames[2] = PythonFrame.encode(function: 1, line: 7)      // <module>
        b.stacks[1].frames.insert(PythonFrame.encode(function: 0, line: 5), at: 0)
        let (merged, _) = SnapshotMerge.merge([("a", a), ("b", b)])
        let python = try #require(merged.python)
        #expect(python.functions.count == 3)
        // The stacks of Cache.store in a and b are one stack now.
        let store = merged.stacks.filter { $0.frames.contains { PythonFrame.decode($0).map { python.functions[$0.function].name == "Cache.store" } ?? false } }
        #expect(store.count == 1)
        #expect(try SnapshotReader.decode(SnapshotWriter.encode(merged), name: "m") == merged)
    }
}

@Suite struct RuntimeFramesTests {
    let app = "/srv/app/bin/server"

    func profile(_ stacks: [[Frame]]) -> Profile {
        var frames: [Frame] = []
        var samples: [Sample] = []
        for stack in stacks {
            var indices: [Int] = []
            for frame in stack {
                if let i = frames.firstIndex(of: frame) { indices.append(i) } else { frames.append(frame); indices.append(frames.count - 1) }
            }
            samples.append(Sample(frames: indices, values: Values(inuseBytes: Estimate(value: 1))))
        }
        return Profile(frames: frames, samples: samples, source: ProfileSource(file: "t", header: SnapshotHeader(), modules: [], totals: .zero))
    }

    func sites(_ p: Profile) -> [String] { p.samples.map { p.frames[$0.frames[0]].function } }

    @Test func skipsToTheProgramsOwnCode() {
        let py = PythonFrame.module
        let p = profile([
            // C++: a std::vector growth inlined from the system headers, then libstdc++.
            [Frame(function: "std::vector<int>::_M_realloc_insert", file: "/usr/include/c++/12/bits/vector.tcc", line: 10, module: app, inlined: true),
             Frame(function: "fill", file: "/srv/app/fill.cpp", line: 7, module: app), Frame(function: "main", file: "/srv/app/main.cpp", line: 3, module: app)],
            // Swift: the standard library in libswiftCore, then the user's function.
            [Frame(function: "Swift._ContiguousArrayBuffer.init", module: "/usr/lib/swift/linux/libswiftCore.so"),
             Frame(function: "Swift.Array.append", file: "", line: 0, module: app),
             Frame(function: "grow", file: "/srv/app/grow.swift", line: 4, module: app)],
            // Python: interpreter code, a stdlib function, then the program's line; glue in between goes.
            [Frame(function: "PyList_New", file: "Objects/listobject.c", line: 1, module: "/usr/lib/libpython3.11.so.1.0"),
             Frame(function: "Counter.update", file: "/usr/lib/python3.11/collections/__init__.py", line: 670, module: py),
             Frame(function: "count", file: "/srv/app/stats.py", line: 12, module: py),
             Frame(function: "_PyEval_Vector", module: "/usr/lib/libpython3.11.so.1.0"),
             Frame(function: "<module>", file: "/srv/app/main.py", line: 2, module: py)],
            // A third-party package is not the standard library.
            [Frame(function: "Session.get", file: "/venv/lib/python3.11/site-packages/requests/sessions.py", line: 5, module: py),
             Frame(function: "fetch", file: "/srv/app/net.py", line: 8, module: py)],
            // Only runtime frames: kept whole.
            [Frame(function: "PyUnicode_New", module: "/usr/bin/python3.11"), Frame(function: "main", module: "/usr/bin/python3.11")],
            // A standard extension module (json.loads in C, stripped: no file) is the standard
            // library; a compiled third-party package is not.
            [Frame(function: "_json.cpython-311-x86_64-linux-gnu.so+0x7725", module: "/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so"),
             Frame(function: "JSONDecoder.raw_decode", file: "/usr/lib/python3.11/json/decoder.py", line: 353, module: py),
             Frame(function: "handle", file: "/srv/app/svc.py", line: 6, module: py)],
            [Frame(function: "PyArray_NewFromDescr", module: "/venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"),
             Frame(function: "handle", file: "/srv/app/svc.py", line: 9, module: py)],
        ])
        let trimmed = RuntimeFrames().trim(p)
        #expect(sites(trimmed) == ["fill", "grow", "count", "Session.get", "PyUnicode_New", "handle", "PyArray_NewFromDescr"])
        let python = trimmed.samples[2].frames.map { trimmed.frames[$0].function }
        #expect(python == ["count", "<module>"])
        #expect(sites(p) == sites(RuntimeFrames(modules: [], files: [], functions: [], interpreters: []).trim(p)))
    }
}

@Suite struct TimelineRecordTests {
    func withTimeline() -> Snapshot {
        var s = sampleSnapshot(stackCount: 3)
        s.peak = Peak(timeNanoseconds: s.header.startNanoseconds + 2_000_000_000, inuseBytes: Estimate(value: 9e6, variance: 4e10),
                      records: [StackRecord(stack: 2, inuse: SampleGroup(samples: 5, bytes: Estimate(value: 9e6, variance: 4e10), objects: Estimate(value: 90, variance: 9)),
                                            alloc: SampleGroup(samples: 7, bytes: Estimate(value: 1e7, variance: 5e10), objects: Estimate(value: 100, variance: 10)))])
        var points: [SeriesPoint] = []
        for i in 0..<5 {
            let time: UInt64 = s.header.startNanoseconds + UInt64(i) * 100_000_000
            let inuse = Estimate(value: Double(i) * 1e6, variance: 1e9)
            let rss: UInt64 = UInt64(i + 10) << 20
            points.append(SeriesPoint(timeNanoseconds: time, inuseBytes: inuse, allocBytes: Double(i) * 2e6, rssBytes: rss))
        }
        s.series = Series(intervalNanoseconds: 100_000_000, points: points)
        return s
    }

    @Test func peakAndSeriesRoundTrip() throws {
        let s = withTimeline()
        #expect(try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t") == s)
    }

    @Test func rejectsAPeakOfAnUnknownStackAndASeriesOutOfOrder() {
        var badPeak = withTimeline()
        badPeak.peak!.records[0].stack = 3
        #expect(decodeError(SnapshotWriter.encode(badPeak))?.description.contains("PEAK names stack 3, but there are 3 stacks") == true)
        var backwards = withTimeline()
        backwards.series!.points.swapAt(1, 3)
        #expect(decodeError(SnapshotWriter.encode(backwards))?.description.contains("point 2 is earlier than the point before it") == true)
    }
}
