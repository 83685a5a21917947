/* The pod curves on a service's daily-curves page: fetches GET /api/v1/dashboard/pods and draws one
 * line per pod (P95 CPU cores, P95 memory MiB), one point per day the pod ran. */
(function () {
  "use strict";

  var C = window.KubeDoorCharts;
  var tr = C.tr;
  var COLOURS = 10;

  function interpolate(text, values) {
    if (typeof window.interpolate === "function") return window.interpolate(text, values, true);
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  function series(data, key) {
    return data.pods.map(function (curve, i) {
      var byDay = {};
      curve.points.forEach(function (p) { byDay[p.day] = p[key]; });
      return {
        name: curve.pod,
        cls: "pod-" + (i % COLOURS),
        values: data.days.map(function (day) { return byDay[day] === undefined ? null : byDay[day]; }),
        points: true
      };
    });
  }

  async function load(section, root) {
    var note = section.querySelector("#kd-pods-note");
    var q = new URLSearchParams({
      cluster: root.dataset.cluster, namespace: root.dataset.namespace, deployment: root.dataset.deployment,
      day_from: root.dataset.dayFrom, day_to: root.dataset.dayTo
    });
    var response;
    try {
      response = await fetch(section.dataset.podsApi + "?" + q.toString(), {
        credentials: "same-origin", headers: {"Accept": "application/json"}
      });
    } catch (error) {
      note.textContent = tr("The pod curves could not be loaded: the server did not answer.");
      return;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      note.textContent = data.detail || response.statusText;
      return;
    }
    var opts = {emptyText: tr("No pod of this microservice was measured in this range.")};
    C.lines(section.querySelector("#kd-chart-pod-cpu"), data.days, series(data, "cpu_cores"),
      Object.assign({digits: 3, title: tr("P95 CPU of each pod (cores)")}, opts));
    C.lines(section.querySelector("#kd-chart-pod-mem"), data.days, series(data, "mem_mib"),
      Object.assign({digits: 0, title: tr("P95 memory of each pod (MiB)")}, opts));
    note.textContent = data.pods_total > data.pods.length
      ? interpolate(tr("the %(shown)s busiest of %(total)s pods"), {shown: data.pods.length, total: data.pods_total})
      : interpolate(tr("%(total)s pods"), {total: data.pods_total});
    section.dataset.pods = String(data.pods.length);
    section.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-curves");
    var section = document.getElementById("kd-pods");
    if (root && section) load(section, root);
  });
})();
