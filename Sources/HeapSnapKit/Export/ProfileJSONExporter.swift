// The whole symbolized profile as JSON (docs/JSON.md, "export"): the source,
// its modules, the frame table and every stack with its estimates. Built
// from the same pieces as the `top --format json` output.

/// Writes a profile as JSON.
public enum ProfileJSONExporter {
    /// - Complexity: O(frames + samples × depth).
    public static func export(_ profile: Profile) throws(HeapSnapError) -> [UInt8] {
        guard !profile.isDiff else { throw .diffNotExportable(format: "JSON", instead: "use `heapsnap diff --format json` for a diff") }
        let modules: [JSON] = profile.source.modules.map { m in
            .object([("path", .string(m.path)), ("buildId", .string(m.buildIDHex)),
                     ("start", .int(Int64(bitPattern: m.start))), ("end", .int(Int64(bitPattern: m.end))),
                     ("fileOffset", .int(Int64(bitPattern: m.fileOffset))), ("vaddr", .int(Int64(bitPattern: m.vaddr)))])
        }
        let samples: [JSON] = profile.samples.map { s in
            .object([("frames", .array(s.frames.map { .int(Int64($0)) })), ("truncated", .bool(s.truncated)),
                     ("values", JSONRenderer.values(s.values))])
        }
        let document = JSON.object([
            ("schema", .string("heapsnap.profile/1")),
            ("snapshot", JSONRenderer.source(profile.source)),
            ("modules", .array(modules)),
            ("frames", .array(profile.frames.map(JSONRenderer.frame))),
            ("samples", .array(samples)),
            ("warnings", .array(profile.warnings.map(JSON.string))),
        ])
        return Array(document.text.utf8)
    }
}
