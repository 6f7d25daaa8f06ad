/*
 * Live progress of a pipeline run, on any page that shows the steps section (#run-steps).
 *
 * The section says where to start: data-last-seq is the last event the server rendered,
 * data-events-path the websocket route (present while the run is not finished). The
 * script connects, sends {"after": <last seq>} and applies each event once, in order;
 * data-last-seq follows what has been applied, so a reconnect sends it again and gets
 * exactly the events after it. Event text only ever reaches the page as text.
 *
 * While the socket is up the section's htmx polling is held back (data-live="ws"). When
 * the socket cannot get through (a proxy that cuts websockets) it gives up after a few
 * tries (data-live="poll") and the polling goes on as it does without this script. At the
 * run's end the section is fetched once more to show the final state (data-live="done").
 */
(function () {
  "use strict";

  var SECTION_ID = "run-steps";
  var MAX_FAILED_CONNECTS = 4;
  var MAX_BACKOFF_MS = 30000;
  var FLUSH_MS = 100;
  var MAX_LINES = 2000;
  var RUN_LABELS = {
    queued: "Queued",
    running: "Running",
    succeeded: "Succeeded",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  var STEP_LABELS = { running: "Running", succeeded: "Succeeded", failed: "Failed" };

  var socket = null;
  var state = ""; // data-live: connecting, ws, poll or done
  var live = false; // the socket is open and this page follows it
  var stopped = false;
  var failures = 0; // connections in a row that never opened
  var retryTimer = null;
  var pending = [];
  var flushTimer = null;
  var lineCounts = new WeakMap();

  function section() {
    return document.getElementById(SECTION_ID);
  }

  function mark(value) {
    state = value;
    var el = section();
    if (el) el.dataset.live = value;
  }

  function lastSeq(el) {
    var seq = parseInt(el.dataset.lastSeq, 10);
    return isNaN(seq) ? 0 : seq;
  }

  function connect() {
    retryTimer = null;
    var el = section();
    if (stopped || !el || !el.dataset.eventsPath) return;
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var opened = false;
    mark("connecting");
    try {
      socket = new WebSocket(scheme + "//" + window.location.host + el.dataset.eventsPath);
    } catch (error) {
      socket = null;
      retry(false);
      return;
    }
    socket.onopen = function () {
      opened = true;
      failures = 0;
      var current = section();
      if (!current || !current.dataset.eventsPath) {
        stop();
        return;
      }
      live = true;
      mark("ws");
      socket.send(JSON.stringify({ after: lastSeq(current) }));
    };
    socket.onmessage = function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      pending.push(event);
      if (flushTimer === null) flushTimer = window.setTimeout(flush, FLUSH_MS);
    };
    socket.onclose = function () {
      socket = null;
      flush();
      live = false;
      if (!stopped) retry(opened);
    };
  }

  function retry(opened) {
    if (!opened) failures += 1;
    if (failures >= MAX_FAILED_CONNECTS) {
      mark("poll");
      return;
    }
    mark("connecting");
    var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, failures));
    retryTimer = window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  function stop() {
    stopped = true;
    live = false;
    if (retryTimer !== null) window.clearTimeout(retryTimer);
    if (socket !== null) socket.close();
  }

  // Apply what has arrived, in order, skipping what the page already shows.
  function flush() {
    if (flushTimer !== null) window.clearTimeout(flushTimer);
    flushTimer = null;
    var batch = pending;
    pending = [];
    var el = section();
    if (!el || stopped) return;
    var seq = lastSeq(el);
    var scrolled = new Map(); // output <pre> touched -> whether it was scrolled to its end
    for (var i = 0; i < batch.length; i++) {
      var event = batch[i];
      if (typeof event.seq !== "number" || event.seq <= seq) continue;
      if (event.seq !== seq + 1) {
        // Never expected: start again from what the page shows.
        el.dataset.lastSeq = String(seq);
        if (socket !== null) socket.close();
        return;
      }
      apply(el, event, scrolled);
      seq = event.seq;
      if (event.kind === "run_finished") {
        el.dataset.lastSeq = String(seq);
        finish();
        return;
      }
    }
    el.dataset.lastSeq = String(seq);
    // Follow the output of a step the way a terminal does, unless scrolled up to read.
    scrolled.forEach(function (atEnd, pre) {
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  }

  function apply(el, event, scrolled) {
    if (RUN_LABELS[event.status]) {
      setBadge(el.querySelector("[data-run-status]"), event.status, RUN_LABELS);
    }
    var index = event.step_index;
    if (typeof index !== "number") return;
    if (event.kind === "step_started") {
      stepRow(el, index, event.message, true);
    } else if (event.kind === "output") {
      var pre = outputPre(stepRow(el, index, "", false), "");
      if (!scrolled.has(pre)) {
        scrolled.set(pre, pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4);
      }
      appendLine(pre, event.message);
    } else if (event.kind === "step_finished") {
      var row = stepRow(el, index, "", false);
      var outcome = event.status === "running" ? "succeeded" : "failed";
      row.dataset.stepStatus = outcome;
      setBadge(row.querySelector(".badge"), outcome, STEP_LABELS);
      if (outcome === "failed" && event.message) {
        outputPre(row, "error").textContent = event.message;
      }
    }
  }

  function setBadge(badge, status, labels) {
    if (!badge) return;
    badge.className = "badge status-" + status;
    badge.textContent = labels[status];
  }

  // The latest row of step `index`. A step that starts gets a new row unless its latest
  // one is running already (a new step, or the step's next attempt).
  function stepRow(el, index, name, starting) {
    var rows = el.querySelectorAll('tr[data-step-index="' + index + '"]');
    var last = rows[rows.length - 1];
    if (last && (!starting || last.dataset.stepStatus === "running")) return last;
    var table = el.querySelector("table.steps");
    var tbody = table.tBodies[0];
    var row = document.createElement("tr");
    row.dataset.stepIndex = String(index);
    row.dataset.stepStatus = "running";
    var cells = [name || "step " + (index + 1), el.dataset.attempt || "", "", "", ""];
    for (var i = 0; i < cells.length; i++) {
      var cell = document.createElement("td");
      cell.textContent = cells[i];
      row.appendChild(cell);
    }
    var badge = document.createElement("span");
    row.cells[2].appendChild(badge);
    setBadge(badge, "running", STEP_LABELS);
    // After the rows of steps up to this one, and the output row of the last of them.
    var after = null;
    var existing = tbody.querySelectorAll("tr[data-step-index]");
    for (var j = 0; j < existing.length; j++) {
      if (parseInt(existing[j].dataset.stepIndex, 10) <= index) after = existing[j];
    }
    var next = after && after.nextElementSibling;
    if (next && next.classList.contains("step-output")) after = next;
    tbody.insertBefore(row, after ? after.nextElementSibling : tbody.firstChild);
    table.hidden = false;
    var empty = el.querySelector("p.empty");
    if (empty) empty.remove();
    return row;
  }

  // The <pre> under a step row for its output ("") or its error ("error").
  function outputPre(row, kind) {
    var holder = row.nextElementSibling;
    if (!holder || !holder.classList.contains("step-output")) {
      holder = document.createElement("tr");
      holder.className = "step-output";
      var cell = document.createElement("td");
      cell.colSpan = 5;
      holder.appendChild(cell);
      row.after(holder);
    }
    var pres = holder.cells[0].getElementsByTagName("pre");
    for (var i = 0; i < pres.length; i++) {
      if ((pres[i].className || "") === kind) return pres[i];
    }
    var pre = document.createElement("pre");
    if (kind) pre.className = kind;
    if (kind || !pres.length) holder.cells[0].appendChild(pre);
    else holder.cells[0].insertBefore(pre, pres[0]);
    return pre;
  }

  function appendLine(pre, line) {
    var count = lineCounts.get(pre);
    if (count === undefined) count = pre.firstChild ? pre.textContent.split("\n").length : 0;
    pre.append(count ? "\n" + line : String(line));
    count += 1;
    if (count > MAX_LINES * 1.25) {
      var lines = pre.textContent.split("\n").slice(-MAX_LINES);
      pre.textContent = "[earlier output omitted]\n" + lines.join("\n");
      count = MAX_LINES + 1;
    }
    lineCounts.set(pre, count);
  }

  // The run ended: show its final state from the server once, and stop.
  function finish() {
    stop();
    var el = section();
    var url = el && el.dataset.stepsUrl;
    if (!url) return;
    window
      .fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.firstElementChild;
        var current = section();
        if (!fresh || fresh.id !== SECTION_ID || !current) return;
        current.replaceWith(fresh);
        mark("done");
        if (window.htmx) window.htmx.process(fresh);
      })
      .catch(function () {
        mark("done");
      });
  }

  // While the socket is up, the section's polling is not needed; a poll that was already
  // on its way must not replace what the socket has applied since.
  function ownsSection(event) {
    var target = event.detail && (event.detail.target || event.detail.elt);
    return live && target && target.id === SECTION_ID;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (ownsSection(event)) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (ownsSection(event)) event.detail.shouldSwap = false;
  });
  // A poll replaced the section (the socket was down): keep the mark, and stop if the
  // poll shows the run finished.
  document.addEventListener("htmx:afterSwap", function () {
    var el = section();
    if (!el) return;
    if (state) el.dataset.live = state;
    if (!el.dataset.eventsPath) stop();
  });

  function start() {
    var el = section();
    if (!el || !el.dataset.eventsPath || !("WebSocket" in window)) return;
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
