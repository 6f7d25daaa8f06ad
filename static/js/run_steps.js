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

  // While the socket is down (closed abnormally: htmx's extension reconnects by itself) the
  // page says so; the steps section reads the run every few seconds meanwhile.
  var liveStatus = function (interrupted) {
    var notice = document.getElementById("run-live-status");
    if (notice) notice.hidden = !interrupted;
  };
  document.addEventListener("htmx:wsClose", function (event) {
    if (event.target.id !== "run-progress") return;
    var code = event.detail && event.detail.event ? event.detail.event.code : 1006;
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) liveStatus(true);
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    if (event.target.id === "run-progress") liveStatus(false);
  });

  // The same words as the "duration" template filter (deployments/templatetags/panel.py):
  // "8 s", "1 min 5 s", "2 h 3 min", with the units in the page's language, which the page
  // hands over in this script tag's data-unit-* attributes.
  var script = document.currentScript;
  var unit = function (name) {
    return (script && script.getAttribute("data-unit-" + name)) || name;
  };
  var units = { h: unit("h"), min: unit("min"), s: unit("s") };
  var duration = function (seconds) {
    var whole = Math.max(0, Math.floor(seconds));
    var minutes = Math.floor(whole / 60);
    var parts;
    if (!minutes) parts = [[whole, units.s]];
    else if (minutes < 60) parts = [[minutes, units.min], [whole % 60, units.s]];
    else parts = [[Math.floor(minutes / 60), units.h], [minutes % 60, units.min]];
    return parts
      .filter(function (part, i) { return part[0] > 0 || i === 0; })
      .map(function (part) { return part[0] + " " + part[1]; })
      .join(" ");
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
