// The interactive part of the flamegraph and timeline SVGs. Each has a static
// script, a .js file beside its renderer embedded at build time (`.embedInCode`
// in Package.swift), and the document's own values, one line of JSON in a script
// element before it: `var config = {…};`. They are two elements so that the
// static script's "use strict" stays its first statement.

enum SVGScript {
    /// Render/FlameGraph/flamegraph.js
    static let flameGraph = String(decoding: PackageResources.flamegraph_js, as: UTF8.self)
    /// Render/Timeline/timeline.js
    static let timeline = String(decoding: PackageResources.timeline_js, as: UTF8.self)

    /// The two script elements: `config` as `var config = {…};`, then `source` as it is.
    static func elements(_ source: String, config: JSON) -> String {
        """
        <script type="text/ecmascript"><![CDATA[
        var config = \(cdataSafe(config.line));
        ]]></script>
        <script type="text/ecmascript"><![CDATA[
        \(source)]]></script>
        """
    }

    /// JSON that cannot end the CDATA section or open a tag: `<` and `]]>` occur
    /// only inside its strings, where `\u003c` and `\u003e` say the same.
    static func cdataSafe(_ json: String) -> String {
        json.replacingAll("]]>", "]]\\u003e").replacingAll("<", "\\u003c")
    }
}
