// pprof's profile.proto, gzip-compressed, as `go tool pprof` reads it.
//
// Sample types follow Go's heap profiles: inuse_objects, inuse_space,
// alloc_objects, alloc_space (values are the unbiased estimates, rounded),
// with `period_type` space/bytes and `period` the sampling rate. The profile
// is fully symbolized: a Location is one call site with its inlined chain as
// Lines (innermost first, the real function last), each Line naming a
// Function with its file; Mappings carry the modules' address ranges, file
// offsets and build-ids, so pprof never needs the binaries.

import SwiftProtobuf

/// Writes pprof profiles.
public enum PprofExporter {
    /// The gzip-compressed profile of `profile` (which must not be a diff).
    /// - Complexity: O(samples × depth).
    public static func export(_ profile: Profile) throws(HeapSnapError) -> [UInt8] {
        guard !profile.isDiff else {
            throw .diffNotExportable(format: "pprof", instead: "compare two with `go tool pprof -diff_base OLD NEW`")
        }
        var builder = Builder()
        let message = builder.build(profile)
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            return Gzip.compress(bytes)
        } catch {
            throw .cannotEncode(format: "pprof", reason: "\(error)")
        }
    }

    /// The uncompressed message (for tests).
    static func message(_ profile: Profile) -> Perftools_Profiles_Profile {
        var builder = Builder()
        return builder.build(profile)
    }

    private struct Builder {
        var strings: [String] = [""]
        var stringIndex: [String: Int64] = ["": 0]
        var functions: [Perftools_Profiles_Function] = []
        var functionIndex: [FunctionKey: UInt64] = [:]
        var locations: [Perftools_Profiles_Location] = []
        var locationIndex: [[Int]: UInt64] = [:]

        struct FunctionKey: Hashable {
            var name: String
            var file: String
        }

        mutating func string(_ s: String) -> Int64 {
            if let i = stringIndex[s] { return i }
            strings.append(s)
            stringIndex[s] = Int64(strings.count - 1)
            return Int64(strings.count - 1)
        }

        mutating func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType {
            var v = Perftools_Profiles_ValueType()
            v.type = string(type)
            v.unit = string(unit)
            return v
        }

        mutating func function(_ frame: Frame) -> UInt64 {
            let key = FunctionKey(name: frame.function, file: frame.file)
            if let id = functionIndex[key] { return id }
            var f = Perftools_Profiles_Function()
            f.id = UInt64(functions.count + 1)
            f.name = string(frame.function)
            f.systemName = f.name
            f.filename = string(frame.file)
            functions.append(f)
            functionIndex[key] = f.id
            return f.id
        }

        mutating func build(_ profile: Profile) -> Perftools_Profiles_Profile {
            var p = Perftools_Profiles_Profile()
            let metrics: [(Metric, String, String)] = [
                (.inuseObjects, "inuse_objects", "count"), (.inuseBytes, "inuse_space", "bytes"),
                (.allocObjects, "alloc_objects", "count"), (.allocBytes, "alloc_space", "bytes"),
            ]
            p.sampleType = metrics.map { valueType($0.1, $0.2) }
            p.defaultSampleType = string("inuse_space")
            p.periodType = valueType("space", "bytes")
            let h = profile.source.header
            p.period = Int64(clamping: h.rate)
            let moment = profile.source.momentNanoseconds
            p.timeNanos = Int64(clamping: moment)
            p.durationNanos = Int64(clamping: moment &- min(h.startNanoseconds, moment))
            p.comment = [
                string(profile.source.peakNanoseconds == nil ? "heapsnap snapshot \(profile.source.file)"
                           : "heapsnap snapshot \(profile.source.file) at its peak (\(Format.time(nanoseconds: moment)))"),
                string("process \(h.pid) on \(h.hostname): \(Format.commandLine(h.commandLine))"),
                string("values are unbiased estimates from sampling every \(h.rate) bytes on average"),
            ]

            // One mapping per module; the main executable first, as pprof expects.
            let modules = profile.source.modules.sorted { a, b in
                (a.path == h.executable ? 0 : 1, a.start) < (b.path == h.executable ? 0 : 1, b.start)
            }
            var mappingOfPath: [String: UInt64] = [:]
            for module in modules {
                var m = Perftools_Profiles_Mapping()
                m.id = UInt64(p.mapping.count + 1)
                m.memoryStart = module.start
                m.memoryLimit = module.end
                m.fileOffset = module.fileOffset
                m.filename = string(module.path)
                m.buildID = string(module.buildIDHex)
                m.hasFunctions_p = true
                m.hasFilenames_p = true
                m.hasLineNumbers_p = true
                m.hasInlineFrames_p = true
                p.mapping.append(m)
                if mappingOfPath[module.path] == nil { mappingOfPath[module.path] = m.id }
            }

            for sample in profile.samples where !sample.isBase {
                var s = Perftools_Profiles_Sample()
                // Group the stack into call sites: inlined frames join the next (outer) frame.
                var site: [Int] = []
                for index in sample.frames {
                    site.append(index)
                    if profile.frames[index].inlined { continue }
                    s.locationID.append(location(site, profile, mappingOfPath))
                    site = []
                }
                if !site.isEmpty { s.locationID.append(location(site, profile, mappingOfPath)) }
                s.value = metrics.map { Int64(clamping: Int64(exactly: sample.values[$0.0].value.rounded()) ?? 0) }
                if sample.truncated {
                    var label = Perftools_Profiles_Label()
                    label.key = string("truncated")
                    label.str = string("true")
                    s.label.append(label)
                }
                p.sample.append(s)
            }
            p.location = locations
            p.function = functions
            p.stringTable = strings
            return p
        }

        mutating func location(_ site: [Int], _ profile: Profile, _ mappingOfPath: [String: UInt64]) -> UInt64 {
            if let id = locationIndex[site] { return id }
            var l = Perftools_Profiles_Location()
            l.id = UInt64(locations.count + 1)
            let outer = profile.frames[site[site.count - 1]]
            l.mappingID = mappingOfPath[outer.module] ?? 0
            l.line = site.map { index in
                let frame = profile.frames[index]
                var line = Perftools_Profiles_Line()
                line.functionID = function(frame)
                line.line = Int64(frame.line)
                line.column = Int64(frame.column)
                return line
            }
            locations.append(l)
            locationIndex[site] = l.id
            return l.id
        }
    }
}
