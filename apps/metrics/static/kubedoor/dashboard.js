/* The Dashboard page: fetches GET /api/v1/dashboard/summary and draws totals, top-10 bars and the
 * sortable namespace table. Strings go through Django's JavaScript catalogue (gettext). */
(function () {
  "use strict";

  var C = window.KubeDoorCharts;
  var tr = C.tr, fmt = C.fmt;

  var BOARD_DIGITS = {load: 3, cpu_pct: 1, memory: 0, mem_pct: 1, pods: 0};
  var TOTALS = [
    ["namespaces", tr("Namespaces"), 0],
    ["services", tr("Services"), 0],
    ["pods", tr("Pods"), 0],
    ["cpu_request_cores", tr("CPU request (cores)"), 2],
    ["cpu_used_cores", tr("P95 CPU used (cores)"), 2],
    ["cpu_limit_cores", tr("CPU limit (cores)"), 2],
    ["mem_request_gib", tr("Memory request (GiB)"), 2],
    ["mem_used_gib", tr("P95 memory used (GiB)"), 2],
    ["mem_limit_gib", tr("Memory limit (GiB)"), 2]
  ];

  function status(root, text, isError) {
    var node = root.querySelector("#kd-status");
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("errornote", Boolean(isError));
  }

  function curvesHref(root, entry) {
    var q = new URLSearchParams({
      cluster: root.dataset.cluster, namespace: entry.namespace, deployment: entry.deployment,
      day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo
    });
    return root.dataset.curvesPage + "?" + q.toString();
  }

  function drawTotals(root, data) {
    var box = root.querySelector("#kd-totals");
    box.textContent = "";
    TOTALS.forEach(function (item) {
      var value = item[0] === "namespaces" ? data.namespaces : data.totals[item[0]];
      var card = document.createElement("div");
      card.className = "kd-total";
      card.dataset.key = item[0];
      var number = document.createElement("div");
      number.className = "kd-total-value";
      number.textContent = fmt(value, item[2]);
      var label = document.createElement("div");
      label.className = "kd-total-label";
      label.textContent = item[1];
      card.appendChild(number);
      card.appendChild(label);
      box.appendChild(card);
    });
  }

  function drawBoards(root, data) {
    root.querySelectorAll(".kd-chart[data-board]").forEach(function (target) {
      var board = target.dataset.board;
      var unit = target.dataset.unit ? " " + target.dataset.unit : "";
      var entries = (data.top[board] || []).map(function (e) {
        return {
          label: e.namespace + "/" + e.deployment,
          value: e.value,
          text: fmt(e.value, BOARD_DIGITS[board]) + unit,
          note: e.source_day,
          title: interpolate(tr("%(service)s — source day %(day)s"), {service: e.namespace + "/" + e.deployment, day: e.source_day}, true),
          href: curvesHref(root, e)
        };
      });
      C.hbar(target, entries, {title: target.previousElementSibling.textContent, emptyText: tr("No service has this figure.")});
    });
  }

  function interpolate(text, values, named) {
    if (typeof window.interpolate === "function") return window.interpolate(text, values, named);
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  var COLUMNS = ["namespace", "services", "pods", "cpu_request_cores", "cpu_used_cores", "cpu_limit_cores",
    "mem_request_gib", "mem_used_gib", "mem_limit_gib"];

  function drawNamespaces(root, data) {
    var table = root.querySelector("#kd-namespaces");
    var body = table.tBodies[0];
    body.textContent = "";
    data.namespace_rows.forEach(function (row) {
      var tr_ = document.createElement("tr");
      tr_.dataset.namespace = row.namespace;
      COLUMNS.forEach(function (key) {
        var td = document.createElement(key === "namespace" ? "th" : "td");
        if (key === "namespace") {
          td.textContent = row.namespace;
          td.dataset.sortValue = row.namespace;
        } else {
          var digits = key === "services" || key === "pods" ? 0 : 2;
          td.dataset.sortValue = row.totals[key];
          var value = document.createElement("span");
          value.className = "kd-cell-value";
          value.textContent = fmt(row.totals[key], digits);
          var share = document.createElement("span");
          share.className = "kd-share";
          share.textContent = fmt(row.shares[key], 1) + " %";
          var meter = document.createElement("span");
          meter.className = "kd-share-bar";
          meter.style.width = Math.min(100, row.shares[key]) + "%";
          td.appendChild(value);
          td.appendChild(share);
          td.appendChild(meter);
          td.title = fmt(row.shares[key], 2) + " % " + tr("of the cluster total");
        }
        tr_.appendChild(td);
      });
      body.appendChild(tr_);
    });
  }

  function sortBy(table, th) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var index = headers.indexOf(th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    if (th.getAttribute("aria-sort") === null && th.dataset.type !== "text") ascending = false;  // numbers: biggest first
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].dataset.sortValue, y = b.cells[index].dataset.sortValue;
      var cmp = th.dataset.type === "text" ? x.localeCompare(y) : Number(x) - Number(y);
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
  }

  function setupSorting(root) {
    var table = root.querySelector("#kd-namespaces");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.tabIndex = 0;
      th.classList.add("kd-sortable");
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th); }
      });
    });
  }

  async function load(root) {
    var q = new URLSearchParams({cluster: root.dataset.cluster, day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo});
    status(root, tr("Loading…"));
    var response;
    try {
      response = await fetch(root.dataset.summaryApi + "?" + q.toString(), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      });
    } catch (error) {
      status(root, tr("The dashboard could not be loaded: the server did not answer."), true);
      return;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      var detail = data.errors ? JSON.stringify(data.errors) : (data.detail || response.statusText);
      status(root, interpolate(tr("The dashboard could not be loaded: %(detail)s"), {detail: detail}, true), true);
      return;
    }
    var excludedNote = document.getElementById("kd-excluded-note");
    var excluded = data.excluded_days || [];
    excludedNote.hidden = !excluded.length;
    excludedNote.textContent = excluded.length ? interpolate(
      tr("Never a source day (the cluster's excluded days): %(days)s"), {days: excluded.join(", ")}, true) : "";
    drawTotals(root, data);
    drawBoards(root, data);
    drawNamespaces(root, data);
    if (!data.totals.services) {
      status(root, interpolate(tr("No data in this range — the archive holds %(first)s to %(last)s."),
        {first: data.data.first_day, last: data.data.last_day}, true));
    } else {
      status(root, "");
    }
    root.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-dashboard");
    if (!root) return;
    setupSorting(root);
    load(root);
  });
})();
