// The page's HTML and style sheet, compiled into the binary (no CDN, no
// files beside the executable). The script is in Script.swift.

enum Assets {
    /// The page's Content-Security-Policy: only its own script, style, frames and requests.
    static let pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

    /// index.html; `{{TOKEN}}` is replaced by the token (the page sends it with its POSTs).
    static let page = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="heapsnap-token" content="{{TOKEN}}">
    <title>heapsnap</title>
    <link rel="stylesheet" href="/app.css">
    <script src="/app.js" defer></script>
    </head>
    <body>
    <header>
      <h1>heapsnap</h1>
      <span id="dirs" class="muted"></span>
      <span id="activity" role="status"></span>
    </header>
    <main>
    <section id="processes-section">
      <h2>Processes with heapsnap loaded</h2>
      <table id="processes">
        <thead><tr><th>PID</th><th>User</th><th>Command</th><th>State</th><th>Snapshots</th><th>Actions</th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="processes-empty" class="muted" hidden>None visible. Start a program with <code>heapsnap run --no-start -- CMD</code>
        or with <code>LD_PRELOAD=…/libheapsnap_preload.so</code>.</p>
      <p id="action-message" role="status"></p>
    </section>
    <section id="snapshots-section">
      <h2>Snapshots</h2>
      <div id="compare-bar">
        <button id="diff-selected" type="button" disabled>Diff the two selected snapshots</button>
        <button id="merge-selected" type="button" disabled>Merge the selected processes</button>
        <span id="selection-hint" class="muted">Tick two snapshots to diff them, or several processes of one program to merge them.</span>
      </div>
      <div id="groups"><p class="muted">No snapshots yet.</p></div>
    </section>
    <section id="leaks" hidden>
      <div class="view-head">
        <h2 id="leaks-title"></h2>
        <button id="leaks-close" type="button" title="Close">×</button>
      </div>
      <p id="leaks-subtitle" class="muted"></p>
      <p id="leaks-status" role="status"></p>
      <table id="leaks-table">
        <thead><tr><th class="num">In use now</th><th class="num">Growth/min</th><th class="num">95% interval</th>
          <th class="num">Confidence</th><th>Verdict</th><th>Site</th></tr></thead>
        <tbody></tbody>
      </table>
      <div id="leaks-chart"></div>
    </section>
    <section id="view" hidden>
      <div class="view-head">
        <h2 id="view-title"></h2>
        <button id="view-close" type="button" title="Close">×</button>
      </div>
      <p id="view-subtitle" class="muted"></p>
      <form id="view-options">
        <label>Group by <select name="by">
          <option value="line">line</option><option value="function">function</option><option value="file">file</option>
          <option value="module">module</option><option value="traceback">traceback</option></select></label>
        <label>Metric <select name="metric">
          <option value="inuse-bytes">in-use bytes</option><option value="inuse-objects">in-use objects</option>
          <option value="alloc-bytes">allocated bytes</option><option value="alloc-objects">allocated objects</option></select></label>
        <label><input type="checkbox" name="cumulative"> cumulative</label>
        <label>Include <input name="include" placeholder="glob, e.g. */src/*" size="14"></label>
        <label>Exclude <input name="exclude" placeholder="glob" size="10"></label>
        <label><input type="checkbox" name="allFrames"> all frames</label>
        <label>Rows <input name="limit" type="number" min="0" value="25" size="4"></label>
        <label><input type="checkbox" name="inverted"> inverted flamegraph</label>
        <label><input type="checkbox" name="keepRuntimeFrames"> runtime frames</label>
        <label><input type="checkbox" name="keepAllocatorFrames"> allocator frames</label>
        <button type="submit">Apply</button>
      </form>
      <p id="downloads">Download:
        <a data-format="svg" href="#">SVG</a> · <a data-format="pprof" href="#">pprof</a> ·
        <a data-format="folded" href="#">folded</a> · <a data-format="json" href="#">JSON</a> ·
        <a data-format="speedscope" href="#">speedscope</a></p>
      <p id="view-status" role="status"></p>
      <table id="view-table"><thead></thead><tbody></tbody></table>
      <p id="view-omitted" class="muted"></p>
      <iframe id="flame" title="Flamegraph"></iframe>
    </section>
    </main>
    </body>
    </html>
    """#

    /// app.css
    static let style = #"""
    :root { --fg: #1f2328; --muted: #667; --line: #d8dade; --accent: #3b5bdb; --bg: #fafaf7; --err: #b42318; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
    header { display: flex; align-items: baseline; gap: 1em; padding: .6em 1.2em; background: #20242c; color: #eee; }
    header h1 { margin: 0; font-size: 1.25em; letter-spacing: .02em; }
    header .muted { color: #aab; }
    #activity { margin-left: auto; color: #ffd479; }
    main { padding: .4em 1.2em 2em; max-width: 1400px; }
    h2 { font-size: 1.1em; margin: 1.2em 0 .5em; }
    table { border-collapse: collapse; width: 100%; background: #fff; }
    th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-weight: 600; background: #f0f1f3; }
    td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    code, .mono, td.loc { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
    td.loc .fn { color: var(--muted); }
    .muted { color: var(--muted); }
    .error { color: var(--err); }
    .state { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: 12px; }
    .state.sampling { background: #d3f9d8; color: #2b8a3e; }
    .state.idle { background: #eceef1; color: #555; }
    button { font: inherit; padding: .15em .7em; border: 1px solid #b8bcc4; border-radius: 4px; background: #fff; cursor: pointer; }
    button:hover:not(:disabled) { border-color: var(--accent); color: var(--accent); }
    button:disabled { opacity: .45; cursor: default; }
    td.actions { white-space: nowrap; }
    td.actions button { margin-right: .3em; }
    #compare-bar { display: flex; gap: .6em; align-items: center; margin-bottom: .6em; flex-wrap: wrap; }
    .group { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5em .8em; margin-bottom: .8em; }
    .group-head { display: flex; gap: .6em; align-items: baseline; flex-wrap: wrap; }
    .group-head .title { font-weight: 600; }
    .group table { margin-top: .3em; }
    .group td, .group th { padding: .2em .5em; }
    .timeline { display: block; width: 100%; max-width: 900px; height: 90px; margin: .3em 0; }
    .timeline .series { fill: none; stroke: #7a8cc2; stroke-width: 1.5; }
    .timeline .rss { fill: none; stroke: #c9ccd3; stroke-width: 1; stroke-dasharray: 3 2; }
    .timeline .point { fill: var(--accent); stroke: #fff; stroke-width: 1.5; cursor: pointer; }
    .timeline .point:hover, .timeline .point.current { fill: #e8590c; }
    .timeline .peak { fill: #e8590c; }
    .timeline text { font-size: 10px; fill: var(--muted); }
    .leak-row { cursor: pointer; }
    .leak-row.current { background: #fff4e6; }
    .leak-row.leak .verdict { color: var(--err); font-weight: 600; }
    .leak-row.growing .verdict { color: #e8590c; }
    .leak-chart { display: block; width: 100%; max-width: 900px; height: 160px; background: #fff; border: 1px solid var(--line); }
    .leak-chart .series { fill: none; stroke: var(--err); stroke-width: 1.5; }
    .leak-chart .fit { stroke: #7a8cc2; stroke-width: 1; stroke-dasharray: 4 3; }
    .leak-chart .axis { stroke: #c9ccd3; }
    .leak-chart text { font-size: 10px; fill: var(--muted); }
    .timeline .axis { stroke: var(--line); }
    #view { margin-top: 1.5em; border-top: 2px solid var(--line); }
    .view-head { display: flex; align-items: center; gap: 1em; }
    .view-head h2 { margin-right: auto; }
    #view-options { display: flex; flex-wrap: wrap; gap: .4em 1em; align-items: center; margin: .4em 0; }
    #view-options input, #view-options select { font: inherit; }
    #view-options input[type=number] { width: 5em; }
    #downloads a { color: var(--accent); }
    #view-table { margin: .4em 0; }
    tr.noise td { color: var(--muted); }
    td.grew { color: #c92a2a; } td.shrank { color: #1c7ed6; }
    #flame { width: 100%; height: 300px; border: 1px solid var(--line); background: #fff; margin-top: .6em; }
    """#
}
