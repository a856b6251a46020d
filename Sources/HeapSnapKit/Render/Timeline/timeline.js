// The timeline SVG's script, embedded as it is by TimelineSVG: hovering the plot
// shows the values of each process at the nearest point and the sites of the
// nearest snapshot. The document's own values come in `config`, set by the
// script element before this one:
//   x0, x1, y0, y1  the plot area in pixels (left, right, top, bottom)
//   tMax, yMax      the seconds at the right edge and the bytes at the top
//   processes       [{label, points: [[seconds, in use, ± 95%, allocated, RSS], …]}, …]
//   sites           the labels of the stacked sites (none when they are not drawn)
//   snapshots       [[seconds, name, [bytes of each site], bytes of the other sites], …]
"use strict";
var X0 = config.x0, X1 = config.x1, Y0 = config.y0, Y1 = config.y1;
var TMAX = config.tMax, YMAX = config.yMax;
var PROCS = config.processes, SITES = config.sites, SNAPS = config.snapshots;
var root, hover, cross, dots, details, details2;
function init(evt) {
  hover = document.getElementById("hover");
  cross = document.getElementById("cross");
  dots = Array.prototype.slice.call(hover.querySelectorAll("circle.dot"));
  details = document.getElementById("details").firstChild;
  details2 = document.getElementById("details2").firstChild;
  var hit = document.getElementById("hit");
  root = hit.ownerSVGElement;
  hit.addEventListener("mousemove", move);
  hit.addEventListener("mouseleave", function () { hover.style.display = "none"; details.nodeValue = " "; details2.nodeValue = " "; });
}
function bytes(v) {
  var sign = v < 0 ? "-" : "", a = Math.abs(v);
  if (a < 1023.5) return sign + Math.round(a) + " B";
  var units = ["KiB", "MiB", "GiB", "TiB", "PiB"], u = -1;
  while ((a >= 1023.5 || u < 0) && u < units.length - 1) { a /= 1024; u++; }
  return sign + (a < 9.995 ? a.toFixed(2) : a < 99.95 ? a.toFixed(1) : a.toFixed(0)) + " " + units[u];
}
function secs(t) { return t.toFixed(2) + " s"; }
function px(t) { return X0 + (TMAX > 0 ? t / TMAX : 0) * (X1 - X0); }
function py(v) { return Y1 - (YMAX > 0 ? Math.max(0, v) / YMAX : 0) * (Y1 - Y0); }
function nearest(list, t) {
  var lo = 0, hi = list.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (list[mid][0] < t) lo = mid + 1; else hi = mid; }
  if (lo > 0 && t - list[lo - 1][0] < list[lo][0] - t) lo--;
  return lo;
}
function move(evt) {
  var pt = root.createSVGPoint();
  pt.x = evt.clientX; pt.y = evt.clientY;
  var p = pt.matrixTransform(root.getScreenCTM().inverse());
  var t = (p.x - X0) / (X1 - X0) * TMAX, parts = [];
  hover.style.display = "";
  cross.setAttribute("x1", p.x.toFixed(1)); cross.setAttribute("x2", p.x.toFixed(1));
  PROCS.forEach(function (proc, i) {
    var k = nearest(proc.points, t);
    if (k < 0) { dots[i].style.display = "none"; return; }
    var q = proc.points[k];
    dots[i].style.display = "";
    dots[i].setAttribute("cx", px(q[0]).toFixed(1)); dots[i].setAttribute("cy", py(q[1]).toFixed(1));
    var text = (PROCS.length > 1 ? proc.label + ": " : "") + secs(q[0]) + "  in use " + bytes(q[1]) + (q[2] > 0 ? " ± " + bytes(q[2]) : "")
      + ", allocated " + bytes(q[3]) + (q[4] > 0 ? ", RSS " + bytes(q[4]) : "");
    parts.push(text);
  });
  details.nodeValue = parts.join("   ");
  var k = nearest(SNAPS, t);
  if (k >= 0) {
    var s = SNAPS[k], items = SITES.map(function (name, j) { return name.replace(/^.*\//, "") + " " + bytes(s[2][j]); });
    items.push("other " + bytes(s[3]));
    details2.nodeValue = s[1] + " at " + secs(s[0]) + ": " + items.join(", ");
  } else {
    details2.nodeValue = " ";
  }
}
