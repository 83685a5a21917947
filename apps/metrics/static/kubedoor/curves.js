/* The daily-curves page of one microservice: fetches GET /api/v1/dashboard/curves and draws P95 CPU
 * and memory per pod against request and limit, and the pod count, one point per day with data. */
(function () {
  "use strict";

  var C = window.KubeDoorCharts;
  var tr = C.tr;

  function status(root, text, isError) {
    var node = root.querySelector("#kd-status");
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("errornote", Boolean(isError));
  }

  function column(points, key) {
    return points.map(function (p) { return p[key]; });
  }

  async function load(root) {
    var q = new URLSearchParams({
      cluster: root.dataset.cluster, namespace: root.dataset.namespace, deployment: root.dataset.deployment,
      day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo
    });
    var response;
    try {
      response = await fetch(root.dataset.curvesApi + "?" + q.toString(), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      });
    } catch (error) {
      status(root, tr("The curves could not be loaded: the server did not answer."), true);
      return;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      status(root, data.detail || response.statusText, true);
      return;
    }
    var points = data.points;
    var days = column(points, "day");
    var marks = root.dataset.sourceDay ? [{day: root.dataset.sourceDay, cls: "source", label: tr("source day")}] : [];
    var marked = {};
    (data.excluded_days || []).forEach(function (e) { marked[e.day] = tr("excluded") + " — " + e.reason; });
    var opts = {emptyText: tr("No data for this microservice in this range."), marked: marked, marks: marks};
    var note = root.querySelector("#kd-excluded");
    note.textContent = "";
    if ((data.excluded_days || []).length) {
      note.appendChild(document.createTextNode(tr("Excluded days (never a source day):") + " "));
      data.excluded_days.forEach(function (e) {
        var item = document.createElement("span");
        item.className = "kd-excluded-day";
        item.dataset.day = e.day;
        item.title = e.reason;
        item.textContent = e.day;
        note.appendChild(item);
      });
    }
    note.hidden = !(data.excluded_days || []).length;
    C.lines(root.querySelector("#kd-chart-cpu"), days, [
      {name: tr("P95 CPU"), cls: "used", values: column(points, "cpu_cores"), points: true},
      {name: tr("request"), cls: "request", values: column(points, "cpu_request_cores")},
      {name: tr("limit"), cls: "limit", values: column(points, "cpu_limit_cores")}
    ], Object.assign({digits: 3, title: tr("CPU per pod (cores)")}, opts));
    C.lines(root.querySelector("#kd-chart-mem"), days, [
      {name: tr("P95 memory"), cls: "used", values: column(points, "mem_mib"), points: true},
      {name: tr("request"), cls: "request", values: column(points, "mem_request_mib")},
      {name: tr("limit"), cls: "limit", values: column(points, "mem_limit_mib")}
    ], Object.assign({digits: 0, title: tr("Memory per pod (MiB)")}, opts));
    C.lines(root.querySelector("#kd-chart-pods"), days, [
      {name: tr("pods"), cls: "pods", values: column(points, "pods"), points: true}
    ], Object.assign({digits: 0, title: tr("Pods")}, opts));
    root.querySelector("#kd-empty").hidden = points.length > 0;
    status(root, "");
    root.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-curves");
    if (root) load(root);
  });
})();
