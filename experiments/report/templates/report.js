/* Draw every report chart: each .xp-chart names the JSON script holding its figure. */
(function () {
  "use strict";
  function draw() {
    if (typeof window.Plotly === "undefined") { return; }
    var charts = document.querySelectorAll(".xp-chart[data-figure]");
    for (var i = 0; i < charts.length; i += 1) {
      var source = document.getElementById(charts[i].getAttribute("data-figure"));
      if (!source) { continue; }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(charts[i], figure.data, figure.layout,
        { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
