// A run's step outputs follow their end while lines come over the websocket, as a terminal
// does; an output scrolled up to read stays put (templates/deployments/run_steps.html).
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
})();
