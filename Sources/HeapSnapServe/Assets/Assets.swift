// The page: index.html, app.css and app.js beside this file, embedded into
// the binary at build time (`.embedInCode` in Package.swift), so the server
// needs no CDN and no files beside the executable. app.js polls /api/state,
// draws the processes and snapshot groups with their timelines, opens views
// (top or diff table and flamegraph) and sends the actions as POSTs with the token.

enum Assets {
    /// The page's Content-Security-Policy: only its own script, style, frames and requests.
    static let pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

    /// index.html; `{{TOKEN}}` is replaced by the token (the page sends it with its POSTs).
    static let page = String(decoding: PackageResources.index_html, as: UTF8.self)

    /// app.css
    static let style = String(decoding: PackageResources.app_css, as: UTF8.self)

    /// app.js
    static let script = String(decoding: PackageResources.app_js, as: UTF8.self)
}
