/* The Dashboard's waste board: fetches GET /api/v1/dashboard/waste and draws the waste totals, the
 * top-10 wasting services, the waste per day (excluded days marked) and the namespace totals. */
(function () {
  "use strict";

  var C = window.KubeDoorCharts;
  var tr = C.tr, fmt = C.fmt;

  function status(root, text, isError) {
    var node = root.querySelector("#kd-waste-status");
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("errornote", Boolean(isError));
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : fmt(value, 1) + " %";
  }

  function card(box, key, value, label) {
    var node = document.createElement("div");
    node.className = "kd-total";
    node.dataset.key = key;
    var number = document.createElement("div");
    number.className = "kd-total-value";
    number.textContent = value;
    var text = document.createElement("div");
    text.className = "kd-total-label";
    text.textContent = label;
    node.appendChild(number);
    node.appendChild(text);
    box.appendChild(node);
  }

  function curvesHref(root, entry) {
    var q = new URLSearchParams({
      cluster: root.dataset.cluster, namespace: entry.namespace, deployment: entry.deployment,
      day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo
    });
    return root.dataset.curvesPage + "?" + q.toString();
  }

  function draw(root, data) {
    var priced = data.price_cpu_core_hour !== null || data.price_mem_gib_hour !== null;
    var totals = root.querySelector("#kd-waste-totals");
    totals.textContent = "";
    card(totals, "cpu_waste_cores", fmt(data.totals.cpu_waste_cores, 2), tr("Wasted CPU (cores)"));
    card(totals, "cpu_waste_pct", pct(data.totals.cpu_waste_pct), tr("of the CPU request"));
    card(totals, "mem_waste_gib", fmt(data.totals.mem_waste_gib, 2), tr("Wasted memory (GiB)"));
    card(totals, "mem_waste_pct", pct(data.totals.mem_waste_pct), tr("of the memory request"));
    if (priced) card(totals, "monthly_cost", fmt(data.totals.monthly_cost, 2), tr("Monthly cost of the waste"));

    var top = data.top.filter(function (s) { return (priced ? s.monthly_cost : s.cpu_waste_cores) > 0; });
    C.hbar(root.querySelector("#kd-waste-top"), top.map(function (s) {
      var value = priced ? s.monthly_cost : s.cpu_waste_cores;
      return {
        label: s.namespace + "/" + s.deployment,
        value: value,
        text: priced ? fmt(value, 2) : fmt(value, 3) + " " + tr("cores"),
        note: interpolate(tr("score %(score)s"), {score: s.score === null ? "—" : s.score}),
        title: interpolate(tr("%(service)s — source day %(day)s; CPU %(cpu)s, memory %(mem)s wasted"), {
          service: s.namespace + "/" + s.deployment, day: s.source_day, cpu: pct(s.cpu_waste_pct), mem: pct(s.mem_waste_pct)
        }),
        href: curvesHref(root, s)
      };
    }), {title: root.querySelector("#kd-waste-top-title").textContent, emptyText: tr("No service wastes anything in this range.")});

    var marked = {};
    data.trend.forEach(function (p) { if (p.is_excluded) marked[p.day] = tr("excluded"); });
    C.lines(root.querySelector("#kd-waste-trend"), data.trend.map(function (p) { return p.day; }), [
      {name: tr("wasted CPU (cores)"), cls: "waste-cpu", values: data.trend.map(function (p) { return p.cpu_waste_cores; }), points: true},
      {name: tr("wasted memory (GiB)"), cls: "waste-mem", values: data.trend.map(function (p) { return p.mem_waste_gib; }), points: true}
    ], {digits: 2, title: tr("Waste per day"), marked: marked, emptyText: tr("No data in this range.")});

    var body = root.querySelector("#kd-waste-namespaces").tBodies[0];
    body.textContent = "";
    data.namespaces.forEach(function (row) {
      var line = document.createElement("tr");
      line.dataset.namespace = row.namespace;
      var t = row.totals;
      [row.namespace, fmt(t.services, 0), fmt(t.cpu_waste_cores, 3), pct(t.cpu_waste_pct), fmt(t.mem_waste_gib, 3),
        pct(t.mem_waste_pct), priced ? fmt(t.monthly_cost, 2) : "—"].forEach(function (text, i) {
        var cell = document.createElement(i === 0 ? "th" : "td");
        cell.textContent = text;
        line.appendChild(cell);
      });
      body.appendChild(line);
    });
  }

  function interpolate(text, values) {
    if (typeof window.interpolate === "function") return window.interpolate(text, values, true);
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  async function load(root) {
    var q = new URLSearchParams({cluster: root.dataset.cluster, day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo});
    var response;
    try {
      response = await fetch(root.dataset.wasteApi + "?" + q.toString(), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      });
    } catch (error) {
      status(root, tr("The waste board could not be loaded: the server did not answer."), true);
      return;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      status(root, interpolate(tr("The waste board could not be loaded: %(detail)s"), {detail: data.detail || response.statusText}), true);
      return;
    }
    draw(root, data);
    status(root, "");
    root.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-waste");
    if (root) load(root);
  });
})();
