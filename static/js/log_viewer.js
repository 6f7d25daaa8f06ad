/*
 * The live log viewer: follows a service's (or a whole stack's) log lines over a websocket.
 *
 * Lines arriving between two flushes are buffered and written to the page every 250 ms, so a
 * burst costs one layout, not thousands. The page keeps at most MAX_DOM line elements (the
 * newest matching the filter) and MAX_KEPT lines in memory for the filter and the download.
 * Log text only ever reaches the page through textContent.
 *
 * A stack's view shows its services' lines in time order, whatever order they arrive in: each
 * container's stream opens on its own, so the tail of one often comes a moment after another's.
 * A batch whose lines belong before lines already shown is merged in by time (a stable merge:
 * lines of one time keep their order) and the view is drawn again.
 *
 * While paused (the Pause button, or scrolling up) nothing is written to the page: new lines
 * wait, and the status says "Paused" with how many wait, until the viewer follows again.
 *
 * Server messages:
 *   {"type": "lines", "lines": [{ts, stream, text, service?, segments?}], "skipped": n}
 *   {"type": "status", "state": "connecting"|"following"|"ended"|"error", "message": "..."}
 * When the websocket fails to open FAILURES_BEFORE_POLLING times in a row (a proxy that cuts
 * websockets), the viewer polls the recent-lines JSON every POLL_MS instead:
 *   {"lines": [...], "skipped": n, "cursor": "...", "replayed": true|false}
 * Each poll sends the cursor of the previous answer and gets the lines after it; an answer
 * that starts over (`replayed`: the last lines again) is shown without the lines seen before.
 */
(function () {
  "use strict";

  const FLUSH_MS = 250;
  const MAX_DOM = 1000;
  const MAX_KEPT = 5000;
  const MAX_KEPT_CHARS = 16 * 1024 * 1024;
  const MAX_QUEUED = MAX_KEPT;
  const MAX_LINE_CHARS = 256 * 1024;
  const SHOWN_CHARS = 4000;
  const LONG_CHARS = 1000;
  const RECONNECT_TAIL = 100;
  const POLL_MS = 2000;
  const POLL_TAIL = 200;
  const FAILURES_BEFORE_POLLING = 3;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const BOTTOM_SLACK_PX = 24;
  // What a websocket closed for good by the server means: the key of its words.
  const CLOSE_REASONS = { 4401: "closedSession", 4403: "closedForbidden" };
  // The viewer's words in English. The page sets its own (translated) in data-text-* attributes
  // of the viewer's root: data-text-held-one for heldOne. {count} and the like are filled in.
  const ENGLISH = {
    paused: "Paused",
    heldOne: "1 new line held back",
    heldMany: "{count} new lines held back",
    pause: "Pause",
    resume: "Resume",
    newOne: "{count} new line — resume",
    newMany: "{count} new lines — resume",
    matchesOne: "{count} line matches of {total}",
    matchesMany: "{count} lines match of {total}",
    skippedOne: "{count} line skipped: the stream was faster than the page",
    skippedMany: "{count} lines skipped: the stream was faster than the page",
    gapOne: "{count} line skipped",
    gapMany: "{count} lines skipped",
    noMatch: "No line matches the filter.",
    waiting: "Waiting for lines…",
    showAll: "Show all {count} characters",
    connecting: "Connecting…",
    following: "Following",
    ended: "Ended",
    error: "Error",
    // The badge of a line the container wrote to its error output, and its tooltip.
    stderr: "stderr",
    stderrTitle: "Written to the error output (stderr)",
    errorBecause: "Error: {reason}",
    closedSession: "Error: your session has ended; reload the page to log in again.",
    closedForbidden: "Error: these logs are not visible to you.",
    sessionEnded: "Error: the session has ended; reload the page to log in again.",
    serverAnswered: "the server answered {status}",
    unreachable: "Error: the panel could not be reached; trying again.",
    reconnecting: "Reconnecting…",
    reconnectingIn: "Reconnecting in {seconds} s",
    lastError: " (last error: {error})",
    polling: "Polling every 2 s: the live stream does not get through",
  };

  const ANSI_CLASSES = new Set(
    ["bold", "dim", "italic", "underline", "strike", "inverse"]
      .map((name) => "ansi-" + name)
      .concat(
        ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"].flatMap((c) => [
          c,
          "bright-" + c,
          "bg-" + c,
          "bg-bright-" + c,
        ].map((name) => "ansi-" + name)),
      )
      .concat(["log-cut"]),
  );
  const SERVICE_COLOURS = 8;

  // Escape sequences a server failed to strip are dropped (a lone ESC shows as a symbol), and
  // control characters other than tab and newline are shown as their pictures.
  const ESCAPES = /\x1b\[[0-?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -\/]*[0-~]/g;
  const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

  function controlPicture(c) {
    const code = c.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    return code === 0x7f ? "\u2421" : "\ufffd";
  }

  function clean(text) {
    return String(text == null ? "" : text)
      .replace(ESCAPES, "")
      .replace(CONTROLS, controlPicture);
  }

  // RFC 3339 times compare as text once the fraction has all nine digits (Docker trims zeros).
  const TS = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/;
  function tsKey(ts) {
    if (!ts) return "";
    const m = TS.exec(ts);
    if (!m) return String(ts);
    return m[1] + "." + (m[2] || "").padEnd(9, "0").slice(0, 9) + m[3];
  }
  function tsShown(ts) {
    const m = TS.exec(ts || "");
    if (!m) return ts || "";
    return m[1].replace("T", " ") + "." + (m[2] || "").padEnd(3, "0").slice(0, 3);
  }

  function hashName(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return Math.abs(h) % SERVICE_COLOURS;
  }

  // The page's words for `key` (ENGLISH's where it has none), with {name} filled in.
  function wordsOf(root) {
    return function (key, values) {
      const attribute = "text" + key.charAt(0).toUpperCase() + key.slice(1);
      let text = root.dataset[attribute] || ENGLISH[key];
      for (const [name, value] of Object.entries(values || {})) {
        const shown = typeof value === "number" ? value.toLocaleString("en") : String(value);
        text = text.split("{" + name + "}").join(shown);
      }
      return text;
    };
  }

  // `key`One or `key`Many by the count, with {count} filled in.
  function plural(say, n, key, values) {
    return say(key + (n === 1 ? "One" : "Many"), Object.assign({ count: n }, values || {}));
  }

  class LogViewer {
    constructor(root) {
      this.root = root;
      this.wsPath = root.dataset.wsPath;
      this.pollUrl = root.dataset.pollUrl;
      this.tail = parseInt(root.dataset.tail, 10) || 500;
      this.downloadName = root.dataset.downloadName || "logs";
      this.multi = root.dataset.multi === "true";

      this.view = root.querySelector("#log-view");
      this.empty = root.querySelector("#log-empty");
      this.state = root.querySelector("#log-state");
      this.skippedNote = root.querySelector("#log-skipped");
      this.reconnectButton = root.querySelector("#log-reconnect");
      this.newButton = root.querySelector("#log-new");
      this.pauseButton = root.querySelector("#log-pause");
      this.filterInput = root.querySelector("#log-filter-text");
      this.serviceSelect = root.querySelector("#log-filter-service");
      this.matches = root.querySelector("#log-matches");
      this.timestamps = root.querySelector("#log-timestamps");
      // Words set by the page (translated there), with English where the page has none.
      this.say = wordsOf(root);

      this.kept = []; // records written out, oldest first: what the filter and download see
      this.keptChars = 0;
      this.shown = []; // the records that have an element on the page, oldest first
      this.queue = []; // records received and not yet written out
      this.queueDropped = 0;
      this.matchCount = 0;
      this.query = "";
      this.service = "";
      this.paused = false;
      this.autoPaused = false;
      this.newWhilePaused = 0;
      this.skippedTotal = 0;
      // Per service: the time of the newest line received and how often each text came at
      // that time (lines carry milliseconds, so a few may share one). `watermark` is a copy
      // taken when a connection opens: what its replayed tail must not show again.
      this.newest = new Map();
      this.watermark = new Map();
      this.statuses = new Map(); // service ("" on a service's own page) -> {state, text}
      // The connection's state and words, and what follows the state's word: what the status
      // shows when the viewer is not paused.
      this.connState = "connecting";
      this.connText = "";
      this.connDetail = "";

      this.ws = null;
      this.connected = false;
      this.failures = 0;
      this.attempt = 0;
      this.everConnected = false;
      this.finished = false;
      this.reconnectTimer = null;
      this.countdownTimer = null;
      this.polling = false;
      this.pollTimer = null;
      this.pollCursor = "";
      this.lastError = "";

      this.bind();
      this.flushTimer = setInterval(() => this.flush(), FLUSH_MS);
      this.connect();
    }

    // ---- controls ---------------------------------------------------------------------------

    bind() {
      this.pauseButton.addEventListener("click", () =>
        this.paused ? this.resume() : this.pause(false),
      );
      this.newButton.addEventListener("click", () => this.resume());
      this.root.querySelector("#log-clear").addEventListener("click", () => this.clear());
      this.root.querySelector("#log-download").addEventListener("click", () => this.download());
      this.reconnectButton.addEventListener("click", () => this.reconnectNow());
      this.timestamps.addEventListener("change", () =>
        this.view.classList.toggle("show-ts", this.timestamps.checked),
      );
      this.view.classList.toggle("show-ts", this.timestamps.checked);

      let filterTimer = null;
      this.filterInput.addEventListener("input", () => {
        clearTimeout(filterTimer);
        filterTimer = setTimeout(() => this.setFilter(), 150);
      });
      this.filterInput.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          clearTimeout(filterTimer);
          this.setFilter();
        }
      });
      if (this.serviceSelect) this.serviceSelect.addEventListener("change", () => this.setFilter());

      this.view.addEventListener("scroll", () => this.onScroll(), { passive: true });
      this.view.addEventListener("click", (event) => {
        const button = event.target.closest("button.log-expand");
        if (button) this.expand(button);
      });
      window.addEventListener("pagehide", () => this.stop());
      window.addEventListener("pageshow", (event) => {
        // Back from the browser's page cache: start again where the page left off.
        if (!event.persisted) return;
        this.flushTimer = setInterval(() => this.flush(), FLUSH_MS);
        this.reconnectNow();
      });
    }

    atBottom() {
      const v = this.view;
      return v.scrollHeight - v.scrollTop - v.clientHeight <= BOTTOM_SLACK_PX;
    }

    onScroll() {
      // The viewer itself only ever scrolls to the bottom: any other position is the reader's.
      if (this.atBottom()) {
        if (this.paused && this.autoPaused) this.resume();
      } else if (!this.paused) {
        this.pause(true);
      }
    }

    pause(auto) {
      this.paused = true;
      this.autoPaused = auto;
      this.newWhilePaused = 0;
      this.pauseButton.textContent = this.say("resume");
      this.pauseButton.setAttribute("aria-pressed", "true");
      this.updateNewButton();
      this.showState();
    }

    resume() {
      this.paused = false;
      this.autoPaused = false;
      this.newWhilePaused = 0;
      this.pauseButton.textContent = this.say("pause");
      this.pauseButton.setAttribute("aria-pressed", "false");
      this.updateNewButton();
      this.showState();
      this.flush();
      this.scrollToBottom();
    }

    updateNewButton() {
      const show = this.paused && this.newWhilePaused > 0;
      this.newButton.hidden = !show;
      if (show) this.newButton.textContent = plural(this.say, this.newWhilePaused, "new");
    }

    scrollToBottom() {
      this.view.scrollTop = this.view.scrollHeight;
    }

    // ---- filter -----------------------------------------------------------------------------

    matchesFilter(rec) {
      if (rec.gap) return true;
      if (this.service && rec.service !== this.service) return false;
      return !this.query || rec.text.toLowerCase().includes(this.query);
    }

    setFilter() {
      this.query = this.filterInput.value.trim().toLowerCase();
      this.service = this.serviceSelect ? this.serviceSelect.value : "";
      this.matchCount = 0;
      for (const rec of this.kept) {
        rec.match = this.matchesFilter(rec);
        if (rec.match && !rec.gap) this.matchCount++;
      }
      this.rerender();
    }

    updateMatches() {
      if (!this.query && !this.service) {
        this.matches.textContent = "";
        return;
      }
      let lines = 0;
      for (const rec of this.kept) if (!rec.gap) lines++;
      this.matches.textContent = plural(this.say, this.matchCount, "matches", { total: lines });
    }

    rerender() {
      for (const rec of this.shown) rec.el = null;
      this.shown = [];
      const picked = [];
      for (let i = this.kept.length - 1; i >= 0 && picked.length < MAX_DOM; i--) {
        if (this.kept[i].match) picked.push(this.kept[i]);
      }
      picked.reverse();
      const fragment = document.createDocumentFragment();
      for (const rec of picked) fragment.appendChild(this.element(rec));
      this.view.replaceChildren(fragment);
      this.shown = picked;
      this.updateEmpty();
      this.updateMatches();
      if (!this.paused) this.scrollToBottom();
    }

    // ---- lines ------------------------------------------------------------------------------

    record(line) {
      let text = typeof line.text === "string" ? line.text : String(line.text == null ? "" : line.text);
      let cut = 0;
      if (text.length > MAX_LINE_CHARS) {
        cut = text.length - MAX_LINE_CHARS;
        text = text.slice(0, MAX_LINE_CHARS);
      }
      const rec = {
        ts: typeof line.ts === "string" ? line.ts : "",
        key: "", // where the line sorts in a stack's view: see orderKeys
        stream: line.stream === "stderr" ? "stderr" : "stdout",
        service: typeof line.service === "string" ? line.service : "",
        text: clean(text),
        cut: cut,
        segments: !cut && Array.isArray(line.segments) ? line.segments : null,
        el: null,
        match: false,
        gap: 0,
      };
      return rec;
    }

    enqueue(records) {
      for (const rec of records) this.queue.push(rec);
      if (this.paused) {
        this.newWhilePaused += records.filter((r) => !r.gap).length;
        this.updateNewButton();
        this.showState();
      }
      if (this.queue.length > MAX_QUEUED) {
        const dropped = this.queue.splice(0, this.queue.length - MAX_QUEUED);
        this.queueDropped += dropped.reduce((n, r) => n + (r.gap || 1), 0);
      }
    }

    gap(count) {
      return { gap: count, ts: "", key: "", stream: "", service: "", text: "", el: null, match: true };
    }

    onLines(message) {
      const skipped = Number(message.skipped) || 0;
      const records = [];
      if (skipped > 0) {
        this.skippedTotal += skipped;
        records.push(this.gap(skipped));
        this.showSkipped();
      }
      for (const line of Array.isArray(message.lines) ? message.lines : []) {
        if (!line || typeof line !== "object") continue;
        const rec = this.record(line);
        if (this.seenBefore(rec)) continue;
        this.remember(rec);
        records.push(rec);
        if (this.multi && rec.service) this.knowService(rec.service);
      }
      if (!records.length) return;
      if (this.multi) this.orderKeys(records);
      this.enqueue(records);
    }

    lastKey() {
      return this.kept.length ? this.kept[this.kept.length - 1].key : "";
    }

    orderKeys(records) {
      // A line's key is its time; a line without one stays after the line before it, and a
      // gap (lines skipped just before a message's lines) goes before the line after it.
      let previous = this.lastKey();
      for (const rec of records) {
        if (rec.gap) continue;
        rec.key = tsKey(rec.ts) || previous;
        previous = rec.key;
      }
      let next = previous;
      for (let i = records.length - 1; i >= 0; i--) {
        if (records[i].gap) records[i].key = next;
        else next = records[i].key;
      }
    }

    inTimeOrder(batch) {
      // Array.prototype.sort is stable: lines of one time keep the order they came in.
      const sorted = batch.slice();
      sorted.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      return sorted;
    }

    insertionPoint(key) {
      // Where a line of `key` goes in the kept lines (after those of the same time).
      let low = 0;
      let high = this.kept.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (this.kept[middle].key <= key) low = middle + 1;
        else high = middle;
      }
      return low;
    }

    mergeIn(batch, at) {
      // Lines that belong before some already shown: merged in by time, then drawn again.
      const older = this.kept.slice(0, at);
      const later = this.kept.slice(at);
      const merged = older;
      let i = 0;
      let j = 0;
      while (i < later.length || j < batch.length) {
        if (j >= batch.length || (i < later.length && later[i].key <= batch[j].key)) {
          merged.push(later[i++]);
        } else {
          merged.push(batch[j++]);
        }
      }
      for (const rec of batch) {
        rec.match = this.matchesFilter(rec);
        if (rec.match && !rec.gap) this.matchCount++;
        this.keptChars += rec.text.length;
      }
      for (const rec of this.shown) rec.el = null;
      this.shown = [];
      this.kept = merged;
      this.trim();
      this.rerender();
    }

    seenBefore(rec) {
      const key = tsKey(rec.ts);
      const mark = key && this.watermark.get(rec.service);
      if (!mark || key > mark.key) return false;
      if (key < mark.key) return true;
      const count = mark.texts.get(rec.text) || 0;
      if (!count) return false;
      mark.texts.set(rec.text, count - 1);
      return true;
    }

    remember(rec) {
      const key = tsKey(rec.ts);
      if (!key) return;
      const last = this.newest.get(rec.service);
      if (!last || key > last.key) {
        this.newest.set(rec.service, { key: key, texts: new Map([[rec.text, 1]]) });
      } else if (key === last.key) {
        last.texts.set(rec.text, (last.texts.get(rec.text) || 0) + 1);
      }
    }

    knowService(name) {
      if (!this.serviceSelect) return;
      for (const option of this.serviceSelect.options) if (option.value === name) return;
      this.serviceSelect.add(new Option(name, name));
    }

    showSkipped() {
      this.skippedNote.hidden = false;
      this.skippedNote.textContent = plural(this.say, this.skippedTotal, "skipped");
    }

    flush() {
      if (this.paused || (!this.queue.length && !this.queueDropped)) return;
      let batch = this.queue;
      this.queue = [];
      if (this.queueDropped) {
        const gap = this.gap(this.queueDropped);
        gap.key = batch.length ? batch[0].key : this.lastKey();
        batch = [gap].concat(batch);
        this.skippedTotal += this.queueDropped;
        this.queueDropped = 0;
        this.showSkipped();
      }
      this.append(batch);
    }

    append(batch) {
      if (this.multi && batch.length) {
        batch = this.inTimeOrder(batch);
        const at = this.insertionPoint(batch[0].key);
        if (at < this.kept.length) {
          this.mergeIn(batch, at);
          return;
        }
      }
      // Into memory first, dropping the oldest beyond the caps.
      for (const rec of batch) {
        rec.match = this.matchesFilter(rec);
        if (rec.match && !rec.gap) this.matchCount++;
        this.kept.push(rec);
        this.keptChars += rec.text.length;
      }
      this.trim();

      // Then onto the page: only the newest MAX_DOM matching lines of the batch get an element.
      const fresh = [];
      for (let i = batch.length - 1; i >= 0 && fresh.length < MAX_DOM; i--) {
        if (batch[i].match && !batch[i].dropped) fresh.push(batch[i]);
      }
      fresh.reverse();
      if (fresh.length) {
        const fragment = document.createDocumentFragment();
        for (const rec of fresh) fragment.appendChild(this.element(rec));
        this.view.appendChild(fragment);
        this.shown.push(...fresh);
      }
      const excess = this.shown.length - MAX_DOM;
      if (excess > 0) {
        for (const rec of this.shown.splice(0, excess)) {
          rec.el.remove();
          rec.el = null;
        }
      }
      this.updateEmpty();
      this.updateMatches();
      if (!this.paused) this.scrollToBottom();
    }

    trim() {
      // Drop the oldest kept lines beyond the caps, and their elements.
      let drop = 0;
      while (
        this.kept.length - drop > MAX_KEPT ||
        (this.keptChars > MAX_KEPT_CHARS && this.kept.length - drop > 1)
      ) {
        const old = this.kept[drop++];
        old.dropped = true;
        this.keptChars -= old.text.length;
        if (old.match && !old.gap) this.matchCount--;
        if (old.el) {
          old.el.remove();
          old.el = null;
          this.shown.shift();
        }
      }
      if (drop) this.kept.splice(0, drop);
    }

    updateEmpty() {
      const none = this.shown.length === 0;
      if (none && !this.empty.isConnected) this.view.appendChild(this.empty);
      if (!none && this.empty.isConnected) this.empty.remove();
      this.empty.textContent =
        this.kept.length && (this.query || this.service) ? this.say("noMatch") : this.say("waiting");
    }

    element(rec) {
      const el = document.createElement("div");
      rec.el = el;
      if (rec.gap) {
        el.className = "log-gap";
        el.textContent = plural(this.say, rec.gap, "gap");
        return el;
      }
      el.className = "log-line" + (rec.stream === "stderr" ? " stderr" : "");
      if (rec.ts) {
        const ts = document.createElement("span");
        ts.className = "ts";
        ts.textContent = tsShown(rec.ts);
        ts.title = rec.ts;
        el.appendChild(ts);
      }
      if (this.multi && rec.service) {
        const svc = document.createElement("span");
        svc.className = "svc svc-" + hashName(rec.service);
        svc.textContent = rec.service;
        el.appendChild(svc);
      }
      if (rec.stream === "stderr") {
        const mark = document.createElement("span");
        mark.className = "stream";
        mark.textContent = this.say("stderr");
        mark.title = this.say("stderrTitle");
        el.appendChild(mark);
      }
      const msg = document.createElement("span");
      msg.className = "msg";
      el.appendChild(msg);
      const long = rec.text.length > LONG_CHARS || rec.cut > 0;
      this.fill(msg, rec, long ? SHOWN_CHARS : Infinity);
      if (long) {
        el.classList.add("long");
        const more = document.createElement("button");
        more.type = "button";
        more.className = "log-expand";
        const total = rec.text.length + rec.cut;
        more.textContent = this.say("showAll", { count: total });
        el.appendChild(more);
      }
      return el;
    }

    fill(msg, rec, limit) {
      msg.replaceChildren();
      if (!rec.segments) {
        msg.textContent = rec.text.length > limit ? rec.text.slice(0, limit) + " …" : rec.text;
        return;
      }
      let used = 0;
      for (const segment of rec.segments) {
        if (!Array.isArray(segment) || used >= limit) continue;
        let text = clean(segment[0]);
        if (used + text.length > limit) text = text.slice(0, limit - used) + " …";
        used += text.length;
        const span = document.createElement("span");
        span.textContent = text;
        if (typeof segment[1] === "string") {
          const classes = segment[1].split(/\s+/).filter((c) => ANSI_CLASSES.has(c));
          if (classes.length) span.className = classes.join(" ");
        }
        msg.appendChild(span);
      }
    }

    expand(button) {
      const el = button.closest(".log-line");
      const rec = el && this.shown.find((r) => r.el === el);
      if (!rec) return;
      // Whoever opens a long line means to read it: new lines wait until they scroll down.
      if (!this.paused) this.pause(true);
      this.fill(el.querySelector(".msg"), rec, Infinity);
      if (rec.cut) {
        const note = document.createElement("span");
        note.className = "log-cut";
        note.textContent = " [" + rec.cut.toLocaleString("en") + " more characters not kept]";
        el.querySelector(".msg").appendChild(note);
      }
      el.classList.remove("long");
      el.classList.add("expanded");
      button.remove();
    }

    clear() {
      for (const rec of this.shown) rec.el = null;
      this.kept = [];
      this.keptChars = 0;
      this.shown = [];
      this.matchCount = 0;
      this.view.replaceChildren();
      this.updateEmpty();
      this.updateMatches();
    }

    // ---- download ---------------------------------------------------------------------------

    download() {
      const withTs = this.timestamps.checked;
      const out = [];
      for (const rec of this.kept) {
        if (!rec.match) continue;
        if (rec.gap) {
          out.push(`[${plural(this.say, rec.gap, "gap")}]`);
          continue;
        }
        let line = "";
        if (withTs && rec.ts) line += rec.ts + " ";
        if (this.multi && rec.service) line += rec.service + " | ";
        out.push(line + rec.text);
      }
      const blob = new Blob([out.join("\n") + (out.length ? "\n" : "")], {
        type: "text/plain;charset=utf-8",
      });
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
      link.href = url;
      link.download = `${this.downloadName}-${stamp}.log`;
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }

    // ---- connection -------------------------------------------------------------------------

    setState(state, text, detail) {
      // `detail`: what the text says after the state's word, kept when the viewer is paused.
      this.connState = state;
      this.connText = text;
      this.connDetail = detail || "";
      this.showState();
    }

    showState() {
      // Paused while lines flow: the status says so, and how many lines wait, instead of
      // "Following". A connection that is not delivering says what it is doing.
      const held = this.paused && ["following", "polling"].includes(this.connState);
      this.state.dataset.state = held ? "paused" : this.connState;
      this.state.textContent = held ? this.pausedText() : this.connText;
      this.reconnectButton.hidden = !["ended", "error", "polling"].includes(this.connState);
    }

    pausedText() {
      let text = this.say("paused");
      const waiting = this.newWhilePaused;
      if (waiting > 0) text += " · " + plural(this.say, waiting, "held");
      return text + this.connDetail;
    }

    connect() {
      clearTimeout(this.reconnectTimer);
      clearInterval(this.countdownTimer);
      this.connected = false;
      this.markSeen();
      this.statuses = new Map();
      const tail = this.everConnected ? Math.min(RECONNECT_TAIL, this.tail) : this.tail;
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const url = `${scheme}//${window.location.host}${this.wsPath}?tail=${tail}`;
      if (!this.everConnected || this.connState !== "reconnecting") {
        this.setState("connecting", this.say("connecting"));
      }
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (error) {
        this.onClose(null);
        return;
      }
      this.ws = ws;
      ws.onmessage = (event) => {
        if (this.ws !== ws) return;
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        if (!this.connected) {
          this.connected = true;
          this.everConnected = true;
          this.failures = 0;
        }
        this.onMessage(message);
        // The server sends a few messages ahead of the last one acknowledged; a tab that
        // stops running stops acknowledging, and its lines wait (or are skipped) there.
        if (message && message.type === "lines" && Number.isInteger(message.seq)) {
          ws.send(JSON.stringify({ type: "ack", seq: message.seq }));
        }
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.onClose(event);
      };
    }

    markSeen() {
      // What the replayed tail of a new connection (or a poll that starts over) must not show
      // again: the newest lines received so far.
      this.watermark = new Map();
      for (const [service, last] of this.newest) {
        this.watermark.set(service, { key: last.key, texts: new Map(last.texts) });
      }
    }

    onMessage(message) {
      if (!message || typeof message !== "object") return;
      if (message.type === "lines") {
        this.onLines(message);
        const services = new Set();
        for (const line of Array.isArray(message.lines) ? message.lines : []) {
          if (line && typeof line === "object") services.add(this.multi ? String(line.service || "") : "");
        }
        for (const service of services) {
          const known = this.statuses.get(service);
          if (!known || known.state === "connecting") this.statuses.set(service, { state: "following", text: "" });
        }
        if (services.size) this.showStatuses();
        return;
      }
      if (message.type !== "status") return;
      const state = ["connecting", "following", "ended", "error"].includes(message.state)
        ? message.state
        : "error";
      const text = typeof message.message === "string" ? clean(message.message) : "";
      const service = this.multi && typeof message.service === "string" ? message.service : "";
      this.statuses.set(service, { state: state, text: text });
      if (service) this.knowService(service);
      this.showStatuses();
    }

    showStatuses() {
      // One word for the whole view, then what differs per service (a stack's view).
      const all = [...this.statuses.values()];
      const has = (state) => all.some((s) => s.state === state);
      const terminal = all.length > 0 && all.every((s) => s.state === "ended" || s.state === "error");
      let state;
      if (has("following")) state = "following";
      else if (!terminal) state = "connecting";
      else state = has("error") ? "error" : "ended";
      // A stream that delivers ends the backoff; one that opens and fails keeps slowing down.
      if (state === "following") this.attempt = 0;
      this.finished = terminal && state === "ended";
      const errors = all.filter((s) => s.state === "error" && s.text).map((s) => s.text);
      this.lastError = state === "following" ? "" : errors.join("; ") || this.lastError;

      const parts = [];
      for (const [service, s] of this.statuses) {
        if (service) {
          // A service's state after its name: the view's word for it, in lower case.
          const word = this.say(s.state).replace(/^./, (first) => first.toLocaleLowerCase());
          if (s.state !== state || s.text) parts.push(`${service} ${word}${s.text ? ": " + s.text : ""}`);
        } else if (s.text) {
          parts.push(s.text);
        }
      }
      const separator = state === "ended" || state === "error" ? ": " : " · ";
      const detail = parts.length ? separator + parts.join(" · ") : "";
      this.setState(state, this.say(state) + detail, detail);
    }

    onClose(event) {
      if (this.finished || this.polling) return;
      if (event && CLOSE_REASONS[event.code]) {
        // Refused for good: trying again would not help.
        this.finished = true;
        this.setState("error", this.say(CLOSE_REASONS[event.code]));
        return;
      }
      if (!this.connected) this.failures++;
      this.connected = false;
      if (this.failures >= FAILURES_BEFORE_POLLING) {
        this.startPolling();
        return;
      }
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
      this.attempt++;
      const due = Date.now() + delay;
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
        const why = this.lastError ? this.say("lastError", { error: this.lastError }) : "";
        const when = seconds ? this.say("reconnectingIn", { seconds: seconds }) : this.say("reconnecting");
        this.setState("reconnecting", when + why);
      };
      tick();
      this.countdownTimer = setInterval(tick, 1000);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }

    reconnectNow() {
      this.stopPolling();
      this.finished = false;
      this.failures = 0;
      this.attempt = 0;
      this.lastError = "";
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close();
      }
      this.connect();
    }

    // ---- polling fallback -------------------------------------------------------------------

    startPolling() {
      clearInterval(this.countdownTimer);
      this.polling = true;
      this.pollCursor = "";
      this.setState("polling", this.say("polling"), " · " + this.say("polling"));
      this.poll();
    }

    stopPolling() {
      this.polling = false;
      clearTimeout(this.pollTimer);
    }

    async poll() {
      if (!this.polling) return;
      let url = `${this.pollUrl}?tail=${Math.min(POLL_TAIL, this.tail)}`;
      if (this.pollCursor) url += "&cursor=" + encodeURIComponent(this.pollCursor);
      try {
        const response = await fetch(url, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        const type = response.headers.get("Content-Type") || "";
        if (!type.includes("application/json")) {
          this.setState("error", this.say("sessionEnded"));
        } else {
          const data = await response.json();
          if (!this.polling) return;
          if (!response.ok) {
            const reason = data.error || this.say("serverAnswered", { status: response.status });
            this.setState("error", this.say("errorBecause", { reason: clean(reason) }));
          } else {
            this.setState("polling", this.say("polling"), " · " + this.say("polling"));
            this.onPoll(data);
          }
        }
      } catch (error) {
        this.setState("error", this.say("unreachable"));
      }
      if (this.polling) this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
    }

    onPoll(data) {
      this.pollCursor = typeof data.cursor === "string" ? data.cursor : "";
      // Lines after a cursor are all new; a replayed tail overlaps what is shown.
      if (data.replayed) this.markSeen();
      else this.watermark = new Map();
      this.onLines({ lines: data.lines, skipped: data.skipped });
    }

    stop() {
      this.finished = true;
      this.stopPolling();
      clearInterval(this.flushTimer);
      clearTimeout(this.reconnectTimer);
      clearInterval(this.countdownTimer);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close();
      }
    }
  }

  function start() {
    const root = document.getElementById("log-viewer");
    if (root && !root.logViewer) root.logViewer = new LogViewer(root);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
