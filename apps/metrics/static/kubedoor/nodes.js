/* The node board on the Dashboard: fetches GET /api/v1/dashboard/nodes and draws, per node, what its
 * pods used (P95) and requested against what it can allocate, for CPU and memory; then the most and
 * least loaded nodes and the spread of their load. */
(function () {
  "use strict";

  var C = window.KubeDoorCharts;
  var tr = C.tr, fmt = C.fmt;
  var SVG = "http://www.w3.org/2000/svg";

  function interpolate(text, values) {
    if (typeof window.interpolate === "function") return window.interpolate(text, values, true);
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (parent) parent.appendChild(node);
    return node;
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : fmt(value, 1) + " %";
  }

  var RESOURCES = [
    {key: "cpu", label: tr("CPU"), unit: tr("cores"), digits: 2},
    {key: "mem", label: tr("memory"), unit: "MiB", digits: 0}
  ];

  function drawBars(target, nodes) {
    while (target.firstChild) target.removeChild(target.firstChild);
    var rowH = 46, labelW = 170, textW = 480, width = 1150, barW = width - labelW - textW - 20;
    var scale = 100;
    nodes.forEach(function (n) {
      ["cpu_used_pct", "cpu_request_pct", "mem_used_pct", "mem_request_pct"].forEach(function (k) {
        if (n[k] !== null && n[k] > scale) scale = n[k];
      });
    });
    var svg = el("svg", {"class": "kd-nodes", viewBox: "0 0 " + width + " " + (nodes.length * rowH + 24), width: "100%",
      role: "img", "aria-label": tr("Requested and used against allocatable, per node")}, target);
    nodes.forEach(function (n, i) {
      var y = i * rowH + 4;
      var row = el("g", {"class": "kd-node-row", "data-node": n.node}, svg);
      el("text", {"class": "kd-node-label", x: labelW - 8, y: y + rowH / 2, "text-anchor": "end"}, row, n.node);
      RESOURCES.forEach(function (res, j) {
        var by = y + j * 20;
        var alloc = n[res.key + "_allocatable_" + (res.key === "cpu" ? "cores" : "mib")];
        var used = n[res.key + "_used_" + (res.key === "cpu" ? "cores" : "mib")];
        var req = n[res.key + "_request_" + (res.key === "cpu" ? "cores" : "mib")];
        var w = function (p) { return p === null || p === undefined ? 0 : Math.max(1, Math.round(barW * p / scale)); };
        el("rect", {"class": "kd-node-alloc", x: labelW, y: by + 2, width: w(alloc === null ? null : 100), height: 14, rx: 2}, row);
        el("rect", {"class": "kd-node-request", x: labelW, y: by + 2, width: w(n[res.key + "_request_pct"]), height: 14, rx: 2}, row);
        el("rect", {"class": "kd-node-used", "data-resource": res.key, x: labelW, y: by + 6, width: w(n[res.key + "_used_pct"]), height: 6}, row);
        var text = interpolate(tr("%(resource)s: used %(used)s, requested %(requested)s of %(allocatable)s %(unit)s"), {
          resource: res.label, used: fmt(used, res.digits), requested: fmt(req, res.digits),
          allocatable: fmt(alloc, res.digits), unit: res.unit
        });
        el("text", {"class": "kd-node-text", x: labelW + barW + 10, y: by + 14}, row, text + " (" + pct(n[res.key + "_used_pct"]) + ")");
      });
    });
    var legend = el("g", {"class": "kd-legend"}, svg);
    var ly = nodes.length * rowH + 14, lx = labelW;
    [["kd-node-alloc", tr("allocatable")], ["kd-node-request", tr("requested")], ["kd-node-used", tr("P95 used")]].forEach(function (item) {
      el("rect", {"class": item[0], x: lx, y: ly - 8, width: 12, height: 8}, legend);
      var label = el("text", {"class": "kd-legend-label", x: lx + 16, y: ly}, legend, item[1]);
      lx += 40 + (label.getComputedTextLength ? label.getComputedTextLength() : item[1].length * 7);
    });
  }

  function card(title, lines, key) {
    var box = document.createElement("div");
    box.className = "kd-node-card";
    box.dataset.key = key;
    var head = document.createElement("div");
    head.className = "kd-node-card-title";
    head.textContent = title;
    box.appendChild(head);
    lines.forEach(function (line) {
      var p = document.createElement("div");
      p.className = "kd-node-line";
      p.textContent = line;
      box.appendChild(p);
    });
    return box;
  }

  function describe(n) {
    return interpolate(tr("%(node)s: CPU %(cpu)s, memory %(mem)s"), {node: n.node, cpu: pct(n.cpu_used_pct), mem: pct(n.mem_used_pct)});
  }

  function drawSummary(target, data) {
    target.textContent = "";
    var s = data.spread;
    target.appendChild(card(tr("Most loaded (P95 CPU used against allocatable)"), data.most_loaded.map(describe), "most"));
    target.appendChild(card(tr("Least loaded"), data.least_loaded.map(describe), "least"));
    target.appendChild(card(tr("Spread (highest minus lowest share used)"), [
      interpolate(tr("CPU: %(spread)s points (%(min)s to %(max)s)"), {spread: fmt(s.cpu_spread_pct, 1), min: pct(s.cpu_min_pct), max: pct(s.cpu_max_pct)}),
      interpolate(tr("memory: %(spread)s points (%(min)s to %(max)s)"), {spread: fmt(s.mem_spread_pct, 1), min: pct(s.mem_min_pct), max: pct(s.mem_max_pct)})
    ], "spread"));
  }

  async function load(section, root) {
    var note = section.querySelector("#kd-nodes-day");
    var q = new URLSearchParams({cluster: root.dataset.cluster, day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo});
    var response;
    try {
      response = await fetch(section.dataset.nodesApi + "?" + q.toString(), {credentials: "same-origin", headers: {"Accept": "application/json"}});
    } catch (error) {
      note.textContent = tr("The node board could not be loaded: the server did not answer.");
      return;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      note.textContent = data.detail || response.statusText;
      return;
    }
    if (!data.nodes.length) {
      var chart = section.querySelector("#kd-node-chart");
      chart.textContent = "";
      var p = document.createElement("p");
      p.className = "kd-nodes-empty";  // not .kd-chart-empty: the node board is not one of the top-10 charts
      p.textContent = tr("No node figures in this range: they come with the next collection.");
      chart.appendChild(p);
    } else {
      note.textContent = interpolate(tr("%(count)s nodes on %(day)s, the range's last day with node figures"), {count: data.nodes.length, day: data.day});
      drawSummary(section.querySelector("#kd-node-summary"), data);
      drawBars(section.querySelector("#kd-node-chart"), data.nodes);
    }
    section.dataset.nodes = String(data.nodes.length);
    section.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-dashboard");
    var section = document.getElementById("kd-nodes");
    if (root && section) load(section, root);
  });
})();
