// How a merged report's rows split across the processes merged into it
// (`top --per-process`): each process's own profile goes through the same
// stages (trimmed, filtered, grouped as the report), and each row of the
// merged report gets that process's value of the report's metric. The
// processes holding the most get a column each, at most `maxColumns`; the
// rest are summed into one "others" column, so the columns of a row add up
// to the row.

/// The per-process columns of a report.
public struct ProcessSplit: Sendable, Hashable {
    /// One process merged into the report.
    public struct Process: Sendable, Hashable {
        /// The process id.
        public var pid: UInt32
        /// Its snapshot file.
        public var file: String
        /// When the snapshot was taken (or its peak), ns since the Unix epoch.
        public var timeNanoseconds: UInt64
        /// Its total over the samples that passed the report's filters.
        public var total: Values
    }

    /// The most processes with a column of their own.
    public static let maxColumns = 8

    /// Processes with a column each, the biggest share of the metric first.
    public var processes: [Process]
    /// Processes summed into the "others" column (empty: no such column).
    public var others: [Process]
    /// For each row of the report: the metric's value in each column of `processes`, then in "others" when there is one.
    public var cells: [[Estimate]]

    /// The split of `report`'s rows, given each process's own report (aggregated as `report`, without a row limit).
    /// - Complexity: O(processes × rows of each process's report).
    public init(report: Report, processes: [(process: Process, report: Report)], maxColumns: Int = ProcessSplit.maxColumns) {
        let metric = report.options.metric
        let ordered = processes.enumerated().sorted { a, b in
            let (x, y) = (a.element.process.total[metric].value, b.element.process.total[metric].value)
            return x != y ? x > y : a.offset < b.offset
        }.map(\.element)
        let shown = ordered.count > maxColumns ? Array(ordered.prefix(maxColumns - 1)) : ordered
        let rest = ordered.dropFirst(shown.count)
        func lookup(_ r: Report) -> [GroupKey: Estimate] {
            Dictionary(r.rows.map { ($0.key, $0.values[metric]) }, uniquingKeysWith: { a, _ in a })
        }
        let shownValues = shown.map { lookup($0.report) }
        let restValues = rest.map { lookup($0.report) }
        self.processes = shown.map(\.process)
        self.others = rest.map(\.process)
        cells = report.rows.map { row in
            var line = shownValues.map { $0[row.key] ?? .zero }
            if !restValues.isEmpty { line.append(restValues.reduce(Estimate.zero) { $0 + ($1[row.key] ?? .zero) }) }
            return line
        }
    }

    /// The column titles: `pid N` per process, then `others` when there is such a column.
    public var titles: [String] { processes.map { "pid \($0.pid)" } + (others.isEmpty ? [] : ["others"]) }
}
