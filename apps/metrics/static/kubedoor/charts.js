/* KubeDoor's charts: horizontal bars and daily lines drawn as SVG, no library, nothing fetched.
 *
 * KubeDoorCharts.hbar(target, entries, options)
 *   entries: [{label, value, text, note, title, href}] biggest first; one <g class="kd-bar-row"> each
 *   with <rect class="kd-bar">, <text class="kd-bar-label"> and <text class="kd-bar-value"> (its
 *   <tspan class="kd-bar-note"> holds the note, e.g. the source day).
 * KubeDoorCharts.lines(target, days, series, options)
 *   days: ["YYYY-MM-DD", ...]; series: [{name, cls, values: [number|null per day], points: bool}];
 *   each series is a <path class="kd-line kd-<cls>">; a series with points gets one
 *   <circle class="kd-point kd-<cls>"> per known value, its <title> naming the day and value.
 *   options.marked: {"YYYY-MM-DD": "why"} days drawn behind the lines as <rect class="kd-marked-day">
 *   (excluded days: in the archive and the chart, never a source day).
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";

  function tr(text) {
    return typeof window.gettext === "function" ? window.gettext(text) : text;
  }

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(target) {
    while (target.firstChild) target.removeChild(target.firstChild);
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "—";
    var d = digits === undefined ? 2 : digits;
    return Number(value).toLocaleString(undefined, {maximumFractionDigits: d, minimumFractionDigits: 0});
  }

  function empty(target, message) {
    clear(target);
    var p = document.createElement("p");
    p.className = "kd-chart-empty";
    p.textContent = message || tr("Nothing to show.");
    target.appendChild(p);
  }

  function hbar(target, entries, options) {
    options = options || {};
    if (!entries.length) return empty(target, options.emptyText);
    clear(target);
    var rowH = 24, labelW = 210, valueW = 170, width = 620, barW = width - labelW - valueW - 10;
    var height = entries.length * rowH + 4;
    var max = Math.max.apply(null, entries.map(function (e) { return e.value; })) || 1;
    var svg = el("svg", {
      "class": "kd-hbar", viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
      "aria-label": options.title || ""
    }, target);
    entries.forEach(function (entry, i) {
      var y = i * rowH + 2;
      var row = el("g", {"class": "kd-bar-row", "data-value": entry.value}, svg);
      if (entry.title) el("title", {}, row, entry.title);
      var holder = entry.href ? el("a", {href: entry.href}, row) : row;
      el("text", {"class": "kd-bar-label", x: labelW - 6, y: y + rowH / 2 + 4, "text-anchor": "end"}, holder, entry.label);
      var w = Math.max(1, Math.round((barW * entry.value) / max));
      el("rect", {"class": "kd-bar", x: labelW, y: y + 3, width: w, height: rowH - 7, rx: 2}, row);
      var value = el("text", {"class": "kd-bar-value", x: labelW + w + 6, y: y + rowH / 2 + 4}, row, entry.text || fmt(entry.value));
      if (entry.note) el("tspan", {"class": "kd-bar-note", dx: 6}, value, entry.note);
    });
    return svg;
  }

  function lines(target, days, series, options) {
    options = options || {};
    if (!days.length) return empty(target, options.emptyText);
    clear(target);
    var width = 720, height = 250, left = 60, right = 16, top = 12, bottom = 46;
    var plotW = width - left - right, plotH = height - top - bottom;
    var all = [];
    series.forEach(function (s) {
      s.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); });
    });
    var max = all.length ? Math.max.apply(null, all) : 1;
    if (max <= 0) max = 1;
    max = max * 1.1;
    var x = function (i) { return left + (days.length === 1 ? plotW / 2 : (plotW * i) / (days.length - 1)); };
    var y = function (v) { return top + plotH - (plotH * v) / max; };
    var svg = el("svg", {
      "class": "kd-lines", viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
      "aria-label": options.title || ""
    }, target);
    var axis = el("g", {"class": "kd-axis"}, svg);
    [0, 0.5, 1].forEach(function (f) {
      var v = (max / 1.1) * f;
      el("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), "class": "kd-grid"}, axis);
      el("text", {"class": "kd-axis-label kd-y-label", x: left - 6, y: y(v) + 4, "text-anchor": "end"}, axis,
        fmt(v, options.digits));
    });
    var marked = options.marked || {};
    days.forEach(function (day, i) {
      if (!Object.prototype.hasOwnProperty.call(marked, day)) return;
      var half = days.length === 1 ? plotW / 2 : plotW / (days.length - 1) / 2;
      var band = el("rect", {"class": "kd-marked-day", x: (x(i) - half).toFixed(1), y: top, width: (2 * half).toFixed(1),
        height: plotH, "data-day": day}, axis);
      el("title", {}, band, day + ": " + marked[day]);
    });
    var ticks = days.length > 2 ? [0, Math.floor((days.length - 1) / 2), days.length - 1] : days.map(function (_, i) { return i; });
    ticks.forEach(function (i) {
      var anchor = days.length === 1 ? "middle" : (i === 0 ? "start" : (i === days.length - 1 ? "end" : "middle"));
      el("text", {"class": "kd-axis-label kd-x-label", x: x(i), y: top + plotH + 16, "text-anchor": anchor}, axis, days[i]);
    });
    // Marked days (options.marks: [{day, cls, label}]): a vertical line at the day, e.g. the source day.
    (options.marks || []).forEach(function (mark) {
      var i = days.indexOf(mark.day);
      if (i < 0) return;
      var line = el("line", {"class": "kd-mark kd-mark-" + mark.cls, x1: x(i), x2: x(i), y1: top, y2: top + plotH,
        "data-day": mark.day}, svg);
      el("title", {}, line, mark.label + ": " + mark.day);
    });
    series.forEach(function (s) {
      var d = "", pen = "M";
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = "M"; return; }
        d += pen + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
        pen = "L";
      });
      if (d) el("path", {"class": "kd-line kd-" + s.cls, d: d.trim(), "data-series": s.name}, svg);
      if (s.points) {
        s.values.forEach(function (v, i) {
          if (v === null || v === undefined) return;
          var c = el("circle", {"class": "kd-point kd-" + s.cls, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3.5,
            "data-day": days[i], "data-value": v}, svg);
          el("title", {}, c, days[i] + ": " + fmt(v, options.digits));
        });
      }
    });
    var legend = el("g", {"class": "kd-legend"}, svg);
    var lx = left;
    series.forEach(function (s) {
      el("rect", {"class": "kd-swatch kd-" + s.cls, x: lx, y: height - 10, width: 10, height: 4}, legend);
      var label = el("text", {"class": "kd-legend-label", x: lx + 14, y: height - 5}, legend, s.name);
      // Measured width: a fixed width per character is too narrow for Chinese labels.
      lx += 24 + (label.getComputedTextLength ? label.getComputedTextLength() : s.name.length * 7);
      return label;
    });
    return svg;
  }

  window.KubeDoorCharts = {hbar: hbar, lines: lines, fmt: fmt, tr: tr, empty: empty};
})();
