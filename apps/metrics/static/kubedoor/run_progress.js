// A run's progress bar (admin/metrics/includes/run_progress.html): polls the run's status URL every second
// while it is active (only then does the page give the URL) and reloads the page once it is done or failed.
(function () {
  "use strict";

  function start(root) {
    var bar = document.getElementById("kd-progress");
    var text = document.getElementById("kd-progress-text");
    var totalField = root.dataset.totalField;

    async function poll() {
      try {
        var response = await fetch(root.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}});
        if (response.ok) {
          var run = await response.json();
          var total = run[totalField];
          bar.max = total || 1;
          bar.value = run.progress_done;
          var label = root.dataset["label" + run.state.charAt(0).toUpperCase() + run.state.slice(1)] || run.state;
          text.textContent = label + " — " + run.progress_done + "/" + total + " (" + run.progress_pct + " %)";
          if (run.state === "done" || run.state === "failed") { window.location.reload(); return; }
        }
      } catch (error) { /* the server did not answer: try again */ }
      window.setTimeout(poll, 1000);
    }
    window.setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("kd-run-progress");
    if (root && root.dataset.statusUrl) start(root);  // only an active run has a status URL here
  });
})();
