// speedscope's file format (https://www.speedscope.app/file-format-schema.json):
// one "sampled" profile per metric over a shared frame table, stacks root
// first, weights in bytes or objects.

import Foundation

/// Writes a speedscope JSON document.
public enum SpeedscopeExporter {
    private struct Document: Encodable {
        var schema = "https://www.speedscope.app/file-format-schema.json"
        var shared: Shared
        var profiles: [SampledProfile]
        var name: String
        var activeProfileIndex = 0
        var exporter = "heapsnap"

        enum CodingKeys: String, CodingKey {
            case schema = "$schema", shared, profiles, name, activeProfileIndex, exporter
        }
    }

    private struct Shared: Encodable { var frames: [SpeedscopeFrame] }

    private struct SpeedscopeFrame: Encodable {
        var name: String
        var file: String?
        var line: Int?
        var col: Int?
    }

    private struct SampledProfile: Encodable {
        var type = "sampled"
        var name: String
        var unit: String
        var startValue = 0.0
        var endValue: Double
        var samples: [[Int]]
        var weights: [Double]
    }

    /// The document for `profile`, with the `first` metric's profile shown first.
    /// - Complexity: O(samples × depth × metrics).
    public static func export(_ profile: Profile, first: Metric = .inuseBytes) throws(HeapSnapError) -> [UInt8] {
        let frames = profile.frames.map { frame in
            SpeedscopeFrame(name: frame.label, file: frame.file.isEmpty ? nil : frame.file,
                            line: frame.line > 0 ? frame.line : nil, col: frame.column > 0 ? frame.column : nil)
        }
        let metrics = [first] + Metric.allCases.filter { $0 != first }
        let samples = profile.samples.filter { !$0.isBase }
        let profiles = metrics.map { metric in
            let kept = samples.filter { $0.values[metric].value > 0 }
            let weights = kept.map { $0.values[metric].value.rounded() }
            return SampledProfile(name: metric.rawValue.replacingOccurrences(of: "-", with: " "),
                                  unit: metric.isBytes ? "bytes" : "none",
                                  endValue: weights.reduce(0, +),
                                  samples: kept.map { Array($0.frames.reversed()) }, weights: weights)
        }
        let h = profile.source.header
        let name = "\(h.programName) [\(h.pid)] \(baseName(profile.source.file))" + (profile.source.peakNanoseconds == nil ? "" : SnapshotRef.peakSuffix)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(Document(shared: Shared(frames: frames), profiles: profiles, name: name)))
        } catch {
            throw .cannotEncode(format: "speedscope", reason: "\(error)")
        }
    }
}
