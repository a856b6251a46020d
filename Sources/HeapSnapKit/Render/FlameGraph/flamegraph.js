// The flamegraph SVG's script, embedded as it is by FlameGraphSVG: hover shows
// a box's details, click zooms, Ctrl-F or "Search" highlights the matches and
// reports their share, Esc resets; FILE.svg?s=REGEX opens with a search applied.
// The document's own values come in `config`, set by the script element before
// this one:
//   width      the image's width in pixels
//   padding    the margin left and right of the boxes, in pixels
//   charWidth  the width of one character of the labels, in pixels
"use strict";
var W = config.width, PAD = config.padding, CW = config.charWidth;
var frames, details, matched, unzoomButton, searchTerm = null;
function init(evt) {
  frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
  details = document.getElementById("details").firstChild;
  matched = document.getElementById("matched").firstChild;
  unzoomButton = document.getElementById("unzoom");
  var svg = document.documentElement;
  svg.addEventListener("click", function (e) {
    var g = e.target.closest ? e.target.closest("g.f") : null;
    if (g) { zoom(g); return; }
    if (e.target.id === "unzoom") unzoom();
    if (e.target.id === "search") { if (searchTerm === null) searchPrompt(); else resetSearch(); }
  });
  svg.addEventListener("mouseover", function (e) {
    var g = e.target.closest ? e.target.closest("g.f") : null;
    details.nodeValue = g ? g.querySelector("title").textContent.replace(/\n/g, "   ") : " ";
  });
  window.addEventListener("keydown", function (e) {
    if (e.keyCode === 114 || ((e.ctrlKey || e.metaKey) && e.keyCode === 70)) { e.preventDefault(); searchPrompt(); }
    else if (e.keyCode === 27) { resetSearch(); unzoom(); }
  });
  // As in flamegraph.pl, FILE.svg?s=REGEX opens with that search applied.
  var query = /[?&]s=([^&]*)/.exec(window.location.search);
  if (query) search(decodeURIComponent(query[1]));
}
function label(g) { return g.querySelector("title").textContent.split("\n")[0].replace(/  \(.*\)$/, ""); }
function place(g, x, w) {
  var drawable = W - 2 * PAD, r = g.querySelector("rect"), t = g.querySelector("text");
  var px = PAD + x * drawable, pw = w * drawable;
  r.setAttribute("x", px.toFixed(2)); r.setAttribute("width", pw.toFixed(2));
  t.setAttribute("x", (px + 3).toFixed(2));
  var room = Math.floor((pw - 6) / CW), name = label(g);
  t.textContent = room < 3 ? "" : name.length <= room ? name : name.substring(0, room - 2) + "..";
}
function zoom(node) {
  var x0 = +node.dataset.x, w0 = +node.dataset.w, d0 = +node.dataset.d, eps = 1e-9;
  frames.forEach(function (g) {
    var x = +g.dataset.x, w = +g.dataset.w, d = +g.dataset.d;
    var inside = x >= x0 - eps && x + w <= x0 + w0 + eps;
    if (d < d0 && x <= x0 + eps && x + w >= x0 + w0 - eps) {
      g.style.display = ""; g.classList.add("parent"); place(g, 0, 1);
    } else if (d >= d0 && inside) {
      g.style.display = ""; g.classList.remove("parent"); place(g, (x - x0) / w0, w / w0);
    } else {
      g.style.display = "none";
    }
  });
  unzoomButton.style.opacity = "1";
}
function unzoom() {
  frames.forEach(function (g) {
    g.style.display = ""; g.classList.remove("parent"); place(g, +g.dataset.x, +g.dataset.w);
  });
  unzoomButton.style.opacity = "0";
}
function searchPrompt() {
  var term = prompt("Search frames (regular expression)", searchTerm || "");
  if (term === null) return;
  if (term === "") { resetSearch(); return; }
  search(term);
}
function search(term) {
  var re;
  try { re = new RegExp(term); } catch (err) { matched.nodeValue = "Bad expression: " + err.message; return; }
  searchTerm = term;
  var spans = [];
  frames.forEach(function (g) {
    var r = g.querySelector("rect");
    if (re.test(label(g))) { r.setAttribute("fill", "rgb(225,0,225)"); spans.push([+g.dataset.x, +g.dataset.w]); }
    else r.setAttribute("fill", r.dataset.c);
  });
  spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
  var total = 0, end = -1;
  spans.forEach(function (s) {
    if (s[0] >= end - 1e-12) { total += s[1]; end = s[0] + s[1]; }
    else if (s[0] + s[1] > end) { total += s[0] + s[1] - end; end = s[0] + s[1]; }
  });
  matched.nodeValue = "Matched: " + (100 * total).toFixed(2) + "% (\"" + term + "\")";
  document.getElementById("search").firstChild.nodeValue = "Reset search (Esc)";
}
function resetSearch() {
  searchTerm = null;
  frames.forEach(function (g) { var r = g.querySelector("rect"); r.setAttribute("fill", r.dataset.c); });
  matched.nodeValue = " ";
  document.getElementById("search").firstChild.nodeValue = "Search (Ctrl-F)";
}
