// heapsnap serve: the page's script. Polls /api/state, draws processes and
// snapshot groups (with a timeline each), opens views (top table +
// flamegraph, diffs, merges). Text from the server only ever goes into
// textContent, never into HTML.
"use strict";
const TOKEN = document.querySelector('meta[name="heapsnap-token"]').content;
const $ = (selector) => document.querySelector(selector);
const page = { groupsJSON: "", processesJSON: "", groups: [], snapshots: new Map(), selectedSnapshots: new Set(),
               selectedGroups: new Set(), view: null, viewSerial: 0, leaksSerial: 0 };

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attributes, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(v, signed) {
  const sign = v < 0 ? "−" : signed && v > 0 ? "+" : "";
  let a = Math.abs(v);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (a >= 1024 && i < units.length - 1) { a /= 1024; i++; }
  return sign + (i === 0 ? Math.round(a) : a.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0)) + " " + units[i];
}
function count(v, signed) {
  const sign = v < 0 ? "−" : signed && v > 0 ? "+" : "";
  return sign + Math.round(Math.abs(v)).toLocaleString("en-US");
}
function time(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function clock(ms) { return time(ms).slice(11); }

async function getJSON(url, options) {
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `unexpected answer (HTTP ${response.status})` }; }
  return { status: response.status, body };
}

// ---- polling -------------------------------------------------------------

async function poll() {
  try {
    const { status, body } = await getJSON("/api/state");
    if (status === 200) render(body);
    else $("#activity").textContent = body.error || `HTTP ${status}`;
  } catch (e) {
    $("#activity").textContent = "server not reachable";
  }
  clearTimeout(page.pollTimer);
  page.pollTimer = setTimeout(poll, 1500);
}

function render(state) {
  $("#dirs").textContent = "serving " + state.directories.join(", ");
  const jobs = state.symbolizing;
  $("#activity").textContent = jobs.length === 0 ? "" :
    "symbolizing " + jobs.map((j) => j.total ? `${j.done}/${j.total} addresses` : "…").join(", ");
  const processesJSON = JSON.stringify(state.processes);
  if (processesJSON !== page.processesJSON) { page.processesJSON = processesJSON; renderProcesses(state.processes); }
  const groupsJSON = JSON.stringify(state.groups);
  if (groupsJSON !== page.groupsJSON) { page.groupsJSON = groupsJSON; renderGroups(state.groups); }
  document.body.dataset.ready = "1";
}

// ---- processes -------------------------------------------------------------

function renderProcesses(processes) {
  const body = $("#processes tbody");
  body.replaceChildren();
  $("#processes-empty").hidden = processes.length > 0;
  for (const p of processes) {
    const button = (action, label, title) => el("button", {
      type: "button", "data-action": action, "data-pid": p.pid, disabled: !p.controllable, title,
      onclick: () => act(p.pid, action),
    }, label);
    const stateTitle = { action: "after this page's last action", snapshot: "from its newest snapshot",
                         environment: "HEAPSNAP_START=1 in its environment", default: "no sign of sampling" }[p.stateSource];
    const note = p.directoryServed ? null :
      el("div", { className: "muted" }, `writes to ${p.directory}, which is not served (add --dir ${p.directory})`);
    body.append(el("tr", { "data-pid": p.pid, "data-state": p.state },
      el("td", { className: "num" }, p.pid),
      el("td", {}, p.user),
      el("td", { className: "mono" }, p.command, note),
      el("td", {}, el("span", { className: "state " + p.state, title: stateTitle }, p.state)),
      el("td", { className: "num" }, p.snapshots),
      el("td", { className: "actions" },
        button("start", "Start", "start sampling"),
        button("snapshot", "Snapshot now", "write a snapshot, keep sampling"),
        button("stop", "Stop", "write a final snapshot and stop sampling"),
        p.controllable ? null : el("span", { className: "muted" }, "another user's process"))));
  }
}

async function act(pid, action) {
  const message = $("#action-message");
  message.className = "";
  message.textContent = `${action}: process ${pid}…`;
  document.querySelectorAll(`button[data-pid="${pid}"]`).forEach((b) => { b.disabled = true; });
  try {
    const { status, body } = await getJSON(`/api/processes/${pid}/${action}`,
                                           { method: "POST", headers: { "X-Heapsnap-Token": TOKEN } });
    message.className = status === 200 ? "" : "error";
    message.textContent = status === 200 ? body.message : body.error;
  } catch (e) {
    message.className = "error";
    message.textContent = "the server did not answer";
  }
  page.processesJSON = "";
  poll();
}

// ---- snapshot groups and timelines ------------------------------------------

function renderGroups(groups) {
  page.groups = groups;
  page.snapshots = new Map();
  const container = $("#groups");
  container.replaceChildren();
  if (groups.length === 0) container.append(el("p", { className: "muted" }, "No snapshots yet."));
  for (const g of groups) {
    for (const s of g.snapshots) page.snapshots.set(s.id, s);
    container.append(renderGroup(g));
  }
  for (const id of [...page.selectedSnapshots]) if (!page.snapshots.has(id)) page.selectedSnapshots.delete(id);
  for (const key of [...page.selectedGroups]) if (!groups.some((g) => g.key === key)) page.selectedGroups.delete(key);
  updateCompareBar();
}

function renderGroup(g) {
  const unreadable = g.key === "unreadable", merged = g.key.startsWith("merged/");
  const box = el("div", { className: "group", "data-key": g.key, "data-pid": unreadable || merged ? null : g.pid });
  const head = el("div", { className: "group-head" });
  if (!unreadable && !merged) {
    head.append(el("input", { type: "checkbox", className: "merge-pick", title: "select for merging",
      "aria-label": `select process ${g.pid} for merging`, checked: page.selectedGroups.has(g.key),
      onchange: (e) => { if (e.target.checked) page.selectedGroups.add(g.key); else page.selectedGroups.delete(g.key); updateCompareBar(); } }));
  }
  head.append(el("span", { className: "title" },
    unreadable ? "Unreadable files" : merged ? `${g.program} (merged file)` : `${g.program} [${g.pid}]`));
  if (!unreadable) head.append(el("span", { className: "muted" }, `on ${g.hostname}`), el("span", { className: "mono muted" }, g.commandLine));
  head.append(el("span", { className: "muted" }, `${g.snapshots.length} snapshot${g.snapshots.length === 1 ? "" : "s"}`));
  if (!unreadable && !merged) {
    head.append(el("button", { type: "button", className: "leaks-open",
      title: "which code keeps growing, over every snapshot of the processes of this program",
      onclick: () => openLeaks(page.groups.filter((o) => o.key !== "unreadable" && !o.key.startsWith("merged/") &&
        o.executable === g.executable && o.commandLine === g.commandLine)) }, "Leak suspects"));
  }
  box.append(head);
  const newest = g.snapshots[g.snapshots.length - 1];
  if (newest && newest.retention) box.append(el("p", { className: "muted retention" }, "Retention: " + newest.retention));
  if (!unreadable) box.append(timeline(g));
  const table = el("table", {}, el("thead", {}, el("tr", {},
    el("th", {}, ""), el("th", {}, "#"), el("th", {}, "Taken"), el("th", { className: "num" }, "In use"),
    el("th", { className: "num" }, "Allocated"), el("th", {}, "Flags"), el("th", {}, ""))));
  const body = el("tbody");
  for (const s of [...g.snapshots].reverse()) body.append(snapshotRow(s));
  table.append(body);
  box.append(table);
  return box;
}

function snapshotRow(s) {
  if (s.error) {
    return el("tr", { className: "snapshot", "data-id": s.id },
      el("td", {}, ""), el("td", { className: "mono", colspan: 6 }, s.name, " — ", el("span", { className: "error" }, s.error)));
  }
  return el("tr", { className: "snapshot", "data-id": s.id },
    el("td", {}, el("input", { type: "checkbox", className: "diff-pick", "aria-label": `select ${s.name} for a diff`,
      checked: page.selectedSnapshots.has(s.id),
      onchange: (e) => { if (e.target.checked) page.selectedSnapshots.add(s.id); else page.selectedSnapshots.delete(s.id); updateCompareBar(); } })),
    el("td", { className: "num" }, s.seq),
    el("td", { title: s.id }, time(s.timeMs)),
    el("td", { className: "num" }, bytes(s.inuseBytes), s.inuseBytesError > 0 ? el("span", { className: "muted" }, ` ± ${bytes(s.inuseBytesError)}`) : null),
    el("td", { className: "num" }, bytes(s.allocBytes)),
    el("td", { className: "muted" }, s.flags.join(", ")),
    el("td", {},
      el("button", { type: "button", className: "open", onclick: () => openView({ f: [s.id] }) }, "Open"), " ",
      s.peak ? el("button", { type: "button", className: "peak-diff", title: "what the peak held that is gone now, and the reverse",
        onclick: () => openView({ f: [s.id], basePeak: true }) }, "Peak → now") : null));
}

// A line chart of a process's memory in use: the series the shim recorded
// when the files have one, each snapshot as a point (click to open it).
function timeline(g) {
  const W = 900, H = 90, L = 56, R = 10, T = 8, B = 18;
  const points = g.snapshots.map((s) => ({ t: s.timeMs, v: s.inuseBytes, s }));
  const series = g.series || [];
  const peaks = g.snapshots.filter((s) => s.peak).map((s) => s.peak);
  const all = points.map((p) => p.t).concat(series.map((p) => p.timeMs), peaks.map((p) => p.timeMs));
  const values = points.map((p) => p.v).concat(series.map((p) => p.inuseBytes), peaks.map((p) => p.inuseBytes));
  let t0 = Math.min(...all), t1 = Math.max(...all);
  if (!(t1 > t0)) { t0 -= 1000; t1 += 1000; }
  const vmax = Math.max(1, ...values);
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - v / vmax);
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
                             "aria-label": `memory in use over time, process ${g.pid}` });
  chart.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
               svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
               svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, bytes(vmax)),
               svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"),
               svg("text", { x: L, y: H - 4 }, clock(t0)),
               svg("text", { x: W - R, y: H - 4, "text-anchor": "end" }, clock(t1)));
  if (series.length > 1) {
    const rss = series.filter((p) => p.rssBytes);
    chart.append(svg("polyline", { class: "series", points: series.map((p) => `${x(p.timeMs).toFixed(1)},${y(p.inuseBytes).toFixed(1)}`).join(" ") }));
    if (rss.length > 1 && Math.max(...rss.map((p) => p.rssBytes)) <= vmax * 4) {
      chart.prepend(svg("polyline", { class: "rss", points: rss.map((p) => `${x(p.timeMs).toFixed(1)},${y(Math.min(p.rssBytes, vmax)).toFixed(1)}`).join(" ") }));
    }
  } else if (points.length > 1) {
    chart.append(svg("polyline", { class: "series", points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ") }));
  }
  for (const p of peaks) {
    const px = x(p.timeMs), py = y(p.inuseBytes);
    const mark = svg("path", { class: "peak", d: `M${px.toFixed(1)},${(py - 5).toFixed(1)} l4,6 h-8 z` });
    mark.append(svg("title", {}, `peak ${bytes(p.inuseBytes)} at ${time(p.timeMs)}`));
    chart.append(mark);
  }
  for (const p of points) {
    const dot = svg("circle", { class: "point", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 5, "data-id": p.s.id });
    dot.append(svg("title", {}, `#${p.s.seq} ${time(p.t)}: ${bytes(p.v)} in use — click to open`));
    dot.addEventListener("click", () => openView({ f: [p.s.id] }));
    chart.append(dot);
  }
  return chart;
}

function updateCompareBar() {
  const picked = [...page.selectedSnapshots].map((id) => page.snapshots.get(id)).filter(Boolean);
  $("#diff-selected").disabled = picked.length !== 2;
  const groups = page.groups.filter((g) => page.selectedGroups.has(g.key));
  const sameProgram = groups.length >= 2 && groups.every((g) => g.executable === groups[0].executable);
  $("#merge-selected").disabled = !sameProgram;
  $("#selection-hint").textContent = groups.length >= 2 && !sameProgram ? "Only processes of one program can be merged." :
    picked.length > 2 ? "Tick exactly two snapshots to diff them." :
    "Tick two snapshots to diff them, or several processes of one program to merge them.";
}

$("#diff-selected").addEventListener("click", () => {
  const picked = [...page.selectedSnapshots].map((id) => page.snapshots.get(id)).filter(Boolean)
    .sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
  if (picked.length === 2) openView({ f: [picked[1].id], base: [picked[0].id] });
});
$("#merge-selected").addEventListener("click", () => {
  const groups = page.groups.filter((g) => page.selectedGroups.has(g.key));
  openView({ f: groups.map((g) => g.snapshots[g.snapshots.length - 1].id) });
});

// ---- views: top table, diff table, flamegraph, downloads ---------------------

function viewQuery(spec, extra) {
  const form = new FormData($("#view-options"));
  const parts = [];
  const add = (name, value) => parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(value));
  for (const f of spec.f) add("f", f);
  for (const b of spec.base || []) add("base", b);
  if (spec.basePeak) add("basePeak", "1");
  add("by", form.get("by"));
  add("metric", form.get("metric"));
  for (const name of ["cumulative", "allFrames", "inverted", "keepRuntimeFrames", "keepAllocatorFrames"]) if (form.get(name)) add(name, "1");
  for (const name of ["include", "exclude"]) for (const glob of String(form.get(name) || "").split(/\s+/)) if (glob) add(name, glob);
  add("limit", form.get("limit") || "0");
  for (const [name, value] of Object.entries(extra || {})) add(name, value);
  return parts.join("&");
}

function describe(spec) {
  const name = (id) => { const s = page.snapshots.get(id); return s ? `${s.name.replace(/\.heapsnap$/, "")}` : id; };
  if (spec.basePeak) return `Peak → now: ${name(spec.f[0])}`;
  if (spec.base && spec.base.length) return `Diff: ${spec.base.map(name).join(" + ")} → ${spec.f.map(name).join(" + ")}`;
  if (spec.f.length > 1) return `Merged: ${spec.f.length} processes (${spec.f.map(name).join(", ")})`;
  return `Snapshot ${name(spec.f[0])}`;
}

function openView(spec) {
  page.view = spec;
  const section = $("#view");
  section.hidden = false;
  $("#view-title").textContent = describe(spec);
  const cumulative = $('#view-options [name="cumulative"]');
  if ($('#view-options [name="by"]').value === "traceback") cumulative.checked = false;
  history.replaceState(null, "", "#view?" + new URLSearchParams({ spec: JSON.stringify(spec) }).toString());
  document.querySelectorAll(".timeline .point").forEach((p) => p.classList.toggle("current", spec.f.includes(p.dataset.id)));
  loadView();
  section.scrollIntoView({ behavior: "instant", block: "start" });
}

async function loadView() {
  const spec = page.view, serial = ++page.viewSerial;
  const section = $("#view"), status = $("#view-status");
  section.dataset.state = "loading";
  status.className = "";
  status.textContent = "loading…";
  $("#view-table thead").replaceChildren();
  $("#view-table tbody").replaceChildren();
  $("#view-omitted").textContent = "";
  $("#view-warning").textContent = "";
  const flame = $("#flame");
  flame.dataset.loaded = "";
  const query = viewQuery(spec);
  for (const a of document.querySelectorAll("#downloads a")) a.href = `/api/download?format=${a.dataset.format}&` + viewQuery(spec, { width: 1600 });
  let answer;
  for (;;) {
    try {
      answer = await getJSON("/api/report?" + query);
    } catch (e) {
      answer = { status: 0, body: { error: "the server did not answer" } };
    }
    if (serial !== page.viewSerial) return;
    if (answer.status !== 202) break;
    const b = answer.body;
    status.textContent = b.total ? `symbolizing ${b.done}/${b.total} addresses…` : "symbolizing…";
    await new Promise((resolve) => setTimeout(resolve, 400));
    if (serial !== page.viewSerial) return;
  }
  if (answer.status !== 200) {
    section.dataset.state = "error";
    status.className = "error";
    status.textContent = answer.body.error || `HTTP ${answer.status}`;
    flame.removeAttribute("src");
    return;
  }
  renderReport(answer.body);
  status.textContent = "";
  flame.onload = () => {
    if (serial !== page.viewSerial) return;
    // Fit the frame to the drawing, so the page scrolls instead of the frame.
    const drawing = flame.contentDocument && flame.contentDocument.documentElement;
    const height = drawing && drawing.getAttribute("height");
    if (height) flame.style.height = (Number(height) + 4) + "px";
    flame.dataset.loaded = "1";
  };
  const width = Math.max(600, Math.min(2400, Math.round(flame.clientWidth || 1200) - 4));
  flame.src = "/api/flamegraph.svg?" + viewQuery(spec, { width });
  section.dataset.state = "ready";
}

function renderReport(report) {
  const diff = report.schema.startsWith("heapsnap.diff");
  const metric = report.metric, isBytes = metric.endsWith("Bytes");
  const fmt = (v, signed) => isBytes ? bytes(v, signed) : count(v, signed);
  const snap = report.snapshot;
  const moment = snap.atPeakNs == null ? time(snap.timeNs / 1e6) : `peak at ${time(snap.atPeakNs / 1e6)}`;
  let subtitle = `${snap.executable} [${snap.pid}] on ${snap.hostname} · ${moment} · ` +
    (snap.rate === 1 ? "exact" : `sampled every ${bytes(snap.rate)}`);
  const total = report.total[metric];
  subtitle += diff ? ` · change ${fmt(total.value, true)} ± ${fmt(total.error)} (${fmt(report.oldTotal[metric].value)} → ${fmt(report.newTotal[metric].value)})`
                   : ` · total ${fmt(total.value)} ± ${fmt(total.error)}`;
  if (report.include.length || report.exclude.length) subtitle += ` · filtered: ${report.matchedStacks} stacks`;
  $("#view-subtitle").textContent = subtitle;
  const head = $("#view-table thead"), body = $("#view-table tbody");
  const location = (row) => {
    const fn = row.frame && row.frame.function && row.frame.function !== row.label ? el("span", { className: "fn" }, "  " + row.frame.function) : null;
    return el("td", { className: "loc", title: row.stack ? row.stack.map((f) => f.function + (f.file ? ` (${f.file}:${f.line})` : "")).join("\n") : "" }, row.label, fn);
  };
  if (diff) {
    head.replaceChildren(el("tr", {}, el("th", { className: "num" }, "Change"), el("th", { className: "num" }, "± 95%"),
      el("th", { className: "num" }, "Old"), el("th", { className: "num" }, "New"), el("th", {}, "Location")));
    for (const row of report.rows) {
      const change = row.values[metric].value;
      body.append(el("tr", { className: row.withinNoise ? "noise" : "" },
        el("td", { className: "num " + (row.withinNoise ? "" : change > 0 ? "grew" : change < 0 ? "shrank" : "") }, (row.withinNoise ? "~ " : "") + fmt(change, true)),
        el("td", { className: "num" }, fmt(row.values[metric].error)),
        el("td", { className: "num" }, fmt(row.old[metric].value)), el("td", { className: "num" }, fmt(row.new[metric].value)),
        location(row)));
    }
  } else {
    head.replaceChildren(el("tr", {}, el("th", { className: "num" }, isBytes ? "Size" : "Count"), el("th", { className: "num" }, "± 95%"),
      el("th", { className: "num" }, "Share"), el("th", { className: "num" }, isBytes ? "Objects" : "Bytes"), el("th", {}, "Location")));
    const companion = metric.startsWith("inuse") ? (isBytes ? "inuseObjects" : "inuseBytes") : (isBytes ? "allocObjects" : "allocBytes");
    for (const row of report.rows) {
      body.append(el("tr", {},
        el("td", { className: "num" }, fmt(row.values[metric].value)), el("td", { className: "num" }, fmt(row.values[metric].error)),
        el("td", { className: "num" }, row.percent === null ? "" : row.percent.toFixed(1) + "%"),
        el("td", { className: "num" }, isBytes ? count(row.values[companion].value) : bytes(row.values[companion].value)),
        location(row)));
    }
  }
  if (report.rows.length === 0) body.append(el("tr", {}, el("td", { colspan: 5, className: "muted" }, "No allocations match.")));
  $("#view-omitted").textContent = report.omittedRows ? `${report.omittedRows} more rows (set Rows to 0 for all).` : "";
  // Above the table, under the header: dropped samples (first) make every figure low.
  $("#view-warning").textContent = report.warnings.map((w) => "warning: " + w).join(" ");
}

// ---- leak suspects: heapsnap leaks over the snapshots of a program's processes ----

async function openLeaks(groups) {
  const serial = ++page.leaksSerial;
  const section = $("#leaks"), status = $("#leaks-status");
  section.hidden = false;
  section.dataset.state = "loading";
  $("#leaks-title").textContent = `Leak suspects: ${groups[0].program}, ${groups.length} process${groups.length === 1 ? "" : "es"}`;
  $("#leaks-subtitle").textContent = "";
  $("#leaks-table tbody").replaceChildren();
  $("#leaks-chart").replaceChildren();
  status.className = "";
  status.textContent = "reading and testing every snapshot…";
  section.scrollIntoView({ behavior: "instant", block: "start" });
  const query = groups.map((g) => "g=" + encodeURIComponent(g.key)).join("&");
  let answer;
  try { answer = await getJSON("/api/leaks?" + query); } catch (e) { answer = { status: 0, body: { error: "the server did not answer" } }; }
  if (serial !== page.leaksSerial) return;
  if (answer.status !== 200) {
    section.dataset.state = "error";
    status.className = "error";
    status.textContent = answer.body.error || `HTTP ${answer.status}`;
    return;
  }
  status.textContent = "";
  renderLeaks(answer.body);
  section.dataset.state = "ready";
}

function renderLeaks(report) {
  const value = (e) => e === null || e === undefined ? null : typeof e === "number" ? e : e.value;
  $("#leaks-title").textContent = `Leak suspects: ${report.program}, ${report.processes.length} process${report.processes.length === 1 ? "" : "es"}`;
  const m = report.moments, counts = {};
  for (const site of report.sites) counts[site.verdict] = (counts[site.verdict] || 0) + 1;
  $("#leaks-subtitle").textContent = `${report.executable} · ${m.seconds.length} moments over ` +
    `${(m.seconds[m.seconds.length - 1] || 0).toFixed(0)} s · ` +
    ["leak", "growing", "steady", "too few samples"].map((v) => `${counts[v] || 0} ${v}`).join(", ") +
    ` · confidence ≥ ${(report.test.minConfidence * 100).toFixed(2).replace(/\.?0+$/, "")}%`;
  const body = $("#leaks-table tbody");
  const rows = report.sites.filter((s) => s.verdict === "leak" || s.verdict === "growing").concat(
    report.sites.filter((s) => s.verdict === "steady" && s.tested).slice(0, 10));
  for (const site of rows) {
    const g = site.growthPerMinute;
    const tr = el("tr", { className: "leak-row " + site.verdict.replace(/ /g, "-"), tabindex: 0,
        title: "click to draw its growth over time" },
      el("td", { className: "num" }, bytes(value(site.inuseNow))),
      el("td", { className: "num" }, g ? bytes(g.value, true) : ""),
      el("td", { className: "num muted" }, g ? `${bytes(g.low, true)} .. ${bytes(g.high, true)}` : ""),
      el("td", { className: "num" }, site.confidence === null ? "" : site.confidence > 0.9999 ? ">99.99%" : (site.confidence * 100).toFixed(2) + "%"),
      el("td", { className: "verdict" }, site.verdict),
      el("td", { className: "loc" }, site.label,
        site.frame && site.frame.function && site.frame.function !== site.label ? el("span", { className: "fn" }, "  " + site.frame.function) : null));
    tr.addEventListener("click", () => drawLeak(report, site, tr));
    body.append(tr);
  }
  if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: 6, className: "muted" }, "No site grows.")));
  if (rows.length && (rows[0].verdict === "leak" || rows[0].verdict === "growing")) drawLeak(report, rows[0], body.firstChild);
}

// One site's growth (bytes, summed over the processes) at each moment, with its Theil-Sen line.
function drawLeak(report, site, row) {
  document.querySelectorAll("#leaks-table tr.current").forEach((r) => r.classList.remove("current"));
  if (row) row.classList.add("current");
  const W = 900, H = 160, L = 64, R = 10, T = 10, B = 22;
  const xs = report.moments.seconds, ys = site.series;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "leak-chart", role: "img", "aria-label": `growth of ${site.label}` });
  const x1 = Math.max(1, xs[xs.length - 1] || 1), y0 = Math.min(0, ...ys), y1 = Math.max(1, ...ys);
  const X = (t) => L + (W - L - R) * t / x1, Y = (v) => H - B - (H - T - B) * (v - y0) / (y1 - y0);
  chart.append(svg("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), class: "axis" }));
  chart.append(svg("text", { x: L - 4, y: Y(y1) + 4, "text-anchor": "end" }, bytes(y1, true)));
  chart.append(svg("text", { x: L - 4, y: Y(0) + 4, "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, `${x1.toFixed(0)} s`));
  chart.append(svg("polyline", { class: "series", points: xs.map((t, i) => `${X(t).toFixed(1)},${Y(ys[i]).toFixed(1)}`).join(" ") }));
  const g = site.growthPerMinute;
  if (g) {
    const mid = xs.reduce((a, b) => a + b, 0) / xs.length, level = [...ys].sort((a, b) => a - b)[ys.length >> 1];
    const at = (t) => level + g.value * (t - mid) / 60;
    chart.append(svg("line", { x1: X(0), y1: Y(at(0)), x2: X(x1), y2: Y(at(x1)), class: "fit" }));
  }
  chart.append(svg("title", {}, `${site.label}: ${site.verdict}`));
  $("#leaks-chart").replaceChildren(el("p", { className: "mono" }, site.label, " — ", site.verdict), chart);
}

$("#leaks-close").addEventListener("click", () => {
  page.leaksSerial++;
  $("#leaks").hidden = true;
});

$("#view-options").addEventListener("submit", (e) => { e.preventDefault(); if (page.view) loadView(); });
$("#view-options").addEventListener("change", (e) => {
  if (e.target.name === "by" && e.target.value === "traceback") $('#view-options [name="cumulative"]').checked = false;
  if (e.target.tagName === "SELECT" || e.target.type === "checkbox") { if (page.view) loadView(); }
});
$("#view-close").addEventListener("click", () => {
  page.view = null; page.viewSerial++;
  $("#view").hidden = true;
  history.replaceState(null, "", "#");
});

// A view named in the address (#view?spec=...) opens on load, so views can be linked.
function restoreView() {
  const match = /^#view\?(.*)$/.exec(location.hash);
  if (!match) return;
  try {
    const spec = JSON.parse(new URLSearchParams(match[1]).get("spec"));
    if (spec && Array.isArray(spec.f) && spec.f.length) openView(spec);
  } catch (e) { /* a broken link opens nothing */ }
}

poll().then(restoreView);
