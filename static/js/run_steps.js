// A run's page (templates/deployments/run_steps.html), live:
// - step outputs follow their end while lines come over the websocket, as a terminal does;
//   an output scrolled up to read stays put;
// - the time a running step or run has taken so far counts up every second between the
//   sections the server sends. It counts on from the seconds the server rendered, so a
//   browser whose clock is off still shows the right time.
// A file rather than hx-on attributes: the Content-Security-Policy allows no inline code.
(function () {
  "use strict";
  var following = [];
  var atEnd = function (pre) {
    return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  };
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (event.target.id !== "run-progress") return;
    following = Array.from(event.target.querySelectorAll("pre[id]"))
      .filter(atEnd)
      .map(function (pre) { return pre.id; });
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    if (event.target.id !== "run-progress") return;
    following.forEach(function (id) {
      var pre = document.getElementById(id);
      if (pre) pre.scrollTop = pre.scrollHeight;
    });
  });

  // The same words as the "duration" template filter (deployments/templatetags/panel.py).
  var pad = function (n) { return (n < 10 ? "0" : "") + n; };
  var duration = function (seconds) {
    if (seconds < 60) return seconds.toFixed(1) + "s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m " + pad(Math.floor(seconds) % 60) + "s";
    return Math.floor(minutes / 60) + "h " + pad(minutes % 60) + "m";
  };
  var firstSeen = new WeakMap();
  var tick = function () {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed-seconds]").forEach(function (element) {
      if (!firstSeen.has(element)) firstSeen.set(element, now);
      var rendered = parseFloat(element.getAttribute("data-elapsed-seconds"));
      if (isNaN(rendered)) return;
      element.textContent = duration(rendered + (now - firstSeen.get(element)) / 1000);
    });
  };
  tick();
  setInterval(tick, 1000);
  // A section just swapped in starts counting from its own seconds at once.
  document.addEventListener("htmx:afterSettle", tick);
  document.addEventListener("htmx:wsAfterMessage", tick);
})();
