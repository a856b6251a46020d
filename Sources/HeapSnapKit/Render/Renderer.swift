// The render stage: a `Report` (top or diff) or an `InfoReport` becomes text.
// Renderers are pure functions of their input and options, so golden files
// can pin their output.

/// Options every renderer takes.
public struct RenderOptions: Sendable, Hashable {
    /// Terminal columns to fit tables into; nil for no limit (pipes and files).
    public var width: Int?
    /// Use ANSI colours (only on a terminal, never with NO_COLOR).
    public var color: Bool

    public init(width: Int? = nil, color: Bool = false) {
        self.width = width
        self.color = color
    }
}

/// Turns reports into text.
public protocol Renderer {
    /// `top` or `diff` output.
    func render(_ report: Report) -> String
    /// `info` output.
    func render(_ info: InfoReport) -> String
}

/// The output formats of `top`, `diff` and `info`.
public enum OutputFormat: String, Sendable, CaseIterable {
    case table, json, csv

    /// The renderer for this format.
    public func renderer(_ options: RenderOptions) -> any Renderer {
        switch self {
        case .table: TableRenderer(options: options)
        case .json: JSONRenderer()
        case .csv: CSVRenderer()
        }
    }
}
