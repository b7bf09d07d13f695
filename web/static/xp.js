/* xp web UI: small progressive enhancements. Everything works without this file;
   it is a file (not inline) so the pages run under a Content-Security-Policy
   without 'unsafe-inline'. */
(function () {
  "use strict";

  // The experiment form: show the sum of the weights as they are typed.
  function showWeightTotal() {
    var form = document.getElementById("spec-form");
    var out = document.getElementById("weight-total");
    if (!form || !out) { return; }
    function update() {
      var inputs = form.querySelectorAll("input.weight");
      var total = 0, count = 0;
      for (var i = 0; i < inputs.length; i += 1) {
        var text = inputs[i].value.trim();
        if (text === "" || inputs[i].disabled) { continue; }
        var value = Number(text);
        if (!isFinite(value)) { out.textContent = ""; return; }
        total += value; count += 1;
      }
      if (count === 0) { out.textContent = ""; return; }
      var shown = Math.round(total * 100) / 100;
      out.textContent = Math.abs(total - 100) <= 0.5
        ? "Total " + shown + "%: fine."
        : "Total " + shown + "%: they must add up to 100%.";
      out.className = Math.abs(total - 100) <= 0.5 ? "total-ok" : "total-bad";
    }
    form.addEventListener("input", function (event) {
      if (event.target && event.target.classList && event.target.classList.contains("weight")) { update(); }
    });
    update();
  }

  // A freshly created API key: select it on focus, so it is easy to copy.
  function selectNewKey() {
    var key = document.getElementById("new-key");
    if (!key) { return; }
    key.addEventListener("focus", function () { key.select(); });
    key.focus();
  }

  function start() { showWeightTotal(); selectNewKey(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
