/* WCMS dashboard: live events, local times, and the Alpine.js components. */
(function () {
  "use strict";
  const W = (window.WCMS = {});
  const meta = document.querySelector('meta[name="csrf-token"]');
  W.csrf = meta ? meta.content : "";
  W.t = JSON.parse((document.getElementById("i18n") || {}).textContent || "{}");
  W.lang = document.documentElement.lang || "en";
  const timeFormat = new Intl.DateTimeFormat(W.lang === "ko" ? "ko-KR" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "medium",
  });

  /* Times arrive as UTC ISO strings; show them in the browser's zone and language. */
  W.localizeTimes = function (root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = timeFormat.format(when);
        el.title = el.getAttribute("datetime");
      }
    });
  };
  document.addEventListener("DOMContentLoaded", function () { W.localizeTimes(document); });
  document.addEventListener("htmx:afterSettle", function (e) { W.localizeTimes(e.target); });

  W.copy = function (text, button) {
    navigator.clipboard.writeText(text.trim()).then(function () {
      button.textContent = W.t.copied || "Copied";
    });
  };

  function setBar(root, field, value) {
    root.querySelectorAll('i[data-field="' + field + '"]').forEach(function (i) {
      i.style.width = (value == null ? 0 : Math.round(value)) + "%";
      const text = i.parentElement.querySelector('b[data-field="' + field + '-text"]');
      if (text) {
        const label = text.textContent.split(" ").slice(0, -1).join(" ");
        text.textContent = (label ? label + " " : "") + (value == null ? "–" : Math.round(value) + "%");
      }
    });
  }

  function machines(id) {
    return document.querySelectorAll('[data-machine="' + CSS.escape(id) + '"]');
  }

  /* Seat maps, lists and the machine page update in place from the event stream. */
  document.addEventListener("wcms-status", function (e) {
    Object.entries(e.detail.machines || {}).forEach(function ([id, s]) {
      machines(id).forEach(function (el) {
        setBar(el, "cpu", s.cpu);
        setBar(el, "ram", s.ram);
        setBar(el, "disk", s.disk);
        el.querySelectorAll('[data-field="users"]').forEach(function (u) { u.textContent = (s.users || []).join(", "); });
        el.querySelectorAll('[data-field="processes"]').forEach(function (p) { p.textContent = s.processes; });
      });
    });
  });
  document.addEventListener("wcms-presence", function (e) {
    const d = e.detail;
    const found = machines(d.id);
    found.forEach(function (el) {
      el.dataset.status = d.status;
      el.querySelectorAll('[data-field="status"]').forEach(function (s) { s.textContent = W.t[d.status] || d.status; });
      el.querySelectorAll('[data-field="reason"]').forEach(function (s) { s.textContent = (W.t.reasons || {})[d.reason] || d.reason || "–"; });
      el.querySelectorAll('[data-field="changed"]').forEach(function (s) { s.textContent = d.at ? new Date(d.at).toLocaleString() : ""; });
    });
    if (!found.length) {
      document.dispatchEvent(new CustomEvent("wcms-unknown-machine", { detail: d }));
    }
  });

  /* Live blocks refresh on "wcms-<topic>-one" (per subject: a command's id, a machine's
     program) and "wcms-<topic>-any" (per topic) rather than on the raw events with htmx's
     throttle, which drops the events of its window and could leave a block on the state
     before the last one. Each is dispatched at once, then at most once per wait while
     events keep coming, and always once after the last. */
  const paced = {};
  function pace(name, key, detail, wait) {
    const slot = name + "\u0000" + key;
    if (paced[slot]) { paced[slot].detail = detail; return; }
    const fire = function (d) { document.dispatchEvent(new CustomEvent(name, { detail: d })); };
    const entry = (paced[slot] = { detail: null });
    fire(detail);
    const flush = function () {
      if (entry.detail === null) { delete paced[slot]; return; }
      fire(entry.detail);
      entry.detail = null;
      setTimeout(flush, wait);
    };
    setTimeout(flush, wait);
  }
  function subject(d) { return [d.id, d.machine, d.name].join("/"); }

  function connect() {
    const dot = document.getElementById("live");
    const topics = document.body.dataset.topics || "presence,command,machine,layout";
    const source = new EventSource("/api/events?topics=" + encodeURIComponent(topics));
    ["presence", "status", "command", "machine", "layout", "program", "alert", "resync"].forEach(function (topic) {
      source.addEventListener(topic, function (message) {
        const detail = JSON.parse(message.data || "{}");
        document.dispatchEvent(new CustomEvent("wcms-" + topic, { detail: detail }));
        pace("wcms-" + topic + "-one", subject(detail), detail, 300);
        pace("wcms-" + topic + "-any", "", detail, 1000);
      });
    });
    source.addEventListener("hello", function () { if (dot) { dot.dataset.state = "on"; dot.title = "Live"; } });
    source.onerror = function () { if (dot) { dot.dataset.state = "off"; dot.title = W.t.reconnecting; } };
    W.source = source;
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.dataset.live) connect();
  });

  document.addEventListener("alpine:init", function () {
    const Alpine = window.Alpine;

    Alpine.data("commandForm", function (first, destructive, always) {
      return {
        type: first,
        question: "",
        action: "",
        dangerous: false,
        ask() {
          const n = Number(this.$root.dataset.count || 0);
          const option = this.$root.querySelector('select[name="type"] option:checked');
          this.action = option ? option.textContent.trim() : this.type;
          this.dangerous = destructive.indexOf(this.type) >= 0;
          if (!always && !this.dangerous) return this.go();
          const words = n < 1 ? W.t.confirm : (this.dangerous ? W.t.destructive : W.t.confirm);
          this.question = (words || "").replace("{n}", n).replace("{action}", this.action);
          this.$refs.dialog.showModal();
        },
        go() {
          if (this.$refs.dialog.open) this.$refs.dialog.close();
          window.htmx.trigger(this.$root, "confirmed");
        },
      };
    });

    Alpine.data("selection", function () {
      return {
        selected: 0,
        init() {
          this.$el.addEventListener("change", (e) => {
            if (e.target.matches("[data-select-page]")) {
              document.querySelectorAll('#machine-table input[name="ids"]').forEach(function (box) { box.checked = e.target.checked; });
            }
            this.count();
          });
        },
        count() {
          const all = document.querySelector("[data-select-matching]");
          if (all && all.checked) { this.selected = Number(all.dataset.count); return; }
          this.selected = document.querySelectorAll('#machine-table input[name="ids"]:checked').length;
        },
      };
    });

    Alpine.data("layoutEditor", function (room, list, seats) {
      return {
        machines: list,
        seats: Object.assign({}, seats),
        original: Object.assign({}, seats),
        picked: null,
        dirty: false,
        saving: false,
        failed: false,
        message: "",
        byId(id) { return this.machines.find(function (m) { return m.id === id; }); },
        at(seat) {
          for (const id in this.seats) { if (this.seats[id] === seat) return this.byId(id); }
          return null;
        },
        unplaced() { return this.machines.filter((m) => !this.seats[m.id]); },
        drag(e, id) { e.dataTransfer.setData("text/plain", id); e.dataTransfer.effectAllowed = "move"; },
        drop(e, seat) { const id = e.dataTransfer.getData("text/plain"); if (id) this.place(id, seat); },
        tap(id) { this.picked = this.picked === id ? null : id; },
        tapSeat(seat) { if (this.picked) { this.place(this.picked, seat); this.picked = null; } },
        place(id, seat) {
          const other = seat ? this.at(seat) : null;
          if (other && other.id !== id) this.seats[other.id] = this.seats[id] || null;
          this.seats[id] = seat;
          this.dirty = true;
          this.message = "";
        },
        async save() {
          const changes = {};
          this.machines.forEach((m) => {
            const now = this.seats[m.id] || null;
            if (now !== (this.original[m.id] || null)) changes[m.id] = now;
          });
          this.saving = true;
          const response = await fetch("/api/rooms/" + encodeURIComponent(room) + "/layout", {
            method: "PUT",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": W.csrf },
            body: JSON.stringify({ seats: changes }),
          });
          this.saving = false;
          if (response.ok) {
            this.original = Object.assign({}, this.seats);
            this.dirty = false;
            this.failed = false;
            this.message = W.t.saved || "Saved";
          } else {
            const body = await response.json().catch(function () { return {}; });
            this.failed = true;
            this.message = (body.error && body.error.message) || response.statusText;
          }
        },
      };
    });

    const SPANS = { "1h": 3600, "24h": 86400, "7d": 604800, "90d": 7776000 };
    const GRID = { stroke: "rgba(128,128,128,.2)" };
    const percent = function (u, v) { return v.map(function (x) { return x + "%"; }); };

    /* A time chart over one of SPANS: `url(range)` answers the history, `columns(d)` the
       arrays to draw ([t, ...series]), `series`, `scales` and `axes(axis)` as uPlot takes
       them; `live(chart)` may wire events that call chart.append([...values]). */
    function timeChart(options) {
      return {
        range: "1h",
        empty: false,
        plot: null,
        init() {
          this.load("1h");
          window.addEventListener("resize", () => { if (this.plot) this.plot.setSize(this.size()); });
          if (options.live) options.live(this);
        },
        append(values) {
          // The last hour grows live, one point per event.
          if (!values || !this.plot || this.range !== "1h") return;
          const data = this.plot.data.map(function (column) { return Array.from(column); });
          [Date.now() / 1000].concat(values).forEach(function (v, i) { data[i].push(v); });
          this.empty = false;
          this.plot.setData(data);
        },
        size() { return { width: Math.max(this.$refs.chart.clientWidth, 280), height: 220 }; },
        async load(range) {
          this.range = range;
          const response = await fetch(options.url(range));
          if (!response.ok || !window.uPlot) return;
          const columns = options.columns(await response.json());
          this.empty = columns[0].length === 0;
          if (this.plot) this.plot.destroy();
          const ink = getComputedStyle(document.body).color;
          const axis = { stroke: ink, grid: GRID, ticks: { stroke: "rgba(128,128,128,.3)" } };
          const x = { time: true, range: () => { const t = Date.now() / 1000; return [t - SPANS[range], t]; } };
          this.plot = new window.uPlot(
            Object.assign(this.size(), {
              scales: Object.assign({ x: x }, options.scales),
              series: [{}].concat(options.series),
              axes: [axis].concat(options.axes(axis)),
            }),
            columns,
            this.$refs.chart
          );
        },
      };
    }

    Alpine.data("historyChart", function (id) {
      return timeChart({
        url: function (range) { return "/api/machines/" + encodeURIComponent(id) + "/history?range=" + range; },
        columns: function (d) { return [d.t, d.cpu, d.ram, d.disk]; },
        series: [
          { label: "CPU %", stroke: "#3b82f6", width: 2 },
          { label: "RAM %", stroke: "#10b981", width: 2 },
          { label: "Disk %", stroke: "#f59e0b", width: 2 },
        ],
        scales: { y: { range: [0, 100] } },
        axes: function (axis) { return [Object.assign({ values: percent }, axis)]; },
        live: function (chart) {
          document.addEventListener("wcms-status", function (e) {
            const s = (e.detail.machines || {})[id];
            if (s) chart.append([s.cpu, s.ram, s.disk]);
          });
        },
      });
    });

    const HOURS = { "1h": 1, "24h": 24, "7d": 168, "90d": 2160 };
    const MIB = 1048576;
    const atLeast = function (floor) { return function (u, min, max) { return [0, Math.max(floor, max || 0)]; }; };
    Alpine.data("programChart", function (machine, name, t) {
      const base = "/api/programs/" + encodeURIComponent(machine) + "/" + encodeURIComponent(name);
      return timeChart({
        url: function (range) { return base + "/history?hours=" + HOURS[range]; },
        columns: function (d) {
          const mib = d.rss_max.map(function (v) { return v == null ? null : Math.round(v / MIB); });
          return [d.t, d.cpu, mib, d.players_max];
        },
        series: [
          { label: "CPU %", stroke: "#3b82f6", width: 2, scale: "%" },
          { label: "RSS MiB", stroke: "#10b981", width: 2, scale: "mib" },
          { label: t.players, stroke: "#f59e0b", width: 2, scale: "n", paths: window.uPlot && window.uPlot.paths.stepped ? window.uPlot.paths.stepped({ align: 1 }) : undefined },
        ],
        scales: { "%": { range: atLeast(100) }, mib: { range: atLeast(1) }, n: { range: atLeast(1) } },
        axes: function (axis) {
          return [
            Object.assign({}, axis, { scale: "%", values: percent }),
            Object.assign({}, axis, { scale: "mib", side: 1, grid: { show: false }, values: function (u, v) { return v.map(function (x) { return x + " MiB"; }); } }),
            Object.assign({}, axis, { scale: "n", side: 1, grid: { show: false } }),
          ];
        },
      });
    });

    /* A program's console: a program_logs command that follows for FOLLOW_S, made again
       while the page stays open and cancelled when it is left, so the agent streams
       only while someone watches. */
    const FOLLOW_S = 300;
    const MAX_LINES = 2000;
    const sleep = function (ms) { return new Promise(function (done) { setTimeout(done, ms); }); };
    async function api(method, path, body, keepalive) {
      const response = await fetch(path, {
        method: method,
        keepalive: !!keepalive,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": W.csrf },
        body: body ? JSON.stringify(body) : undefined,
      });
      const answer = await response.json().catch(function () { return {}; });
      if (!response.ok) throw new Error((answer.error && answer.error.message) || response.statusText);
      return answer;
    }
    Alpine.data("programConsole", function (machine, name, t) {
      let lines = [];
      let partial = "";
      return {
        id: null,
        offset: null,
        open: true,
        note: "",
        line: "",
        answer: "",
        failed: "",
        sending: false,
        init() {
          window.addEventListener("pagehide", () => this.leave());
          this.follow(200);
        },
        command(type, payload, timeout) {
          return api("POST", "/api/commands", { selector: machine, type: type, payload: payload, timeout_s: timeout, expires_in_s: 60 });
        },
        async follow(count) {
          this.offset = null;
          while (this.open) {
            let created;
            const payload = { name: name, lines: count, follow_s: FOLLOW_S };
            if (this.offset !== null) payload.offset = this.offset;  // go on where the last run ended
            try {
              created = await this.command("program_logs", payload, FOLLOW_S + 30);
            } catch (error) {
              this.note = error.message;
              await sleep(10000);
              continue;
            }
            this.id = created.id;
            this.note = t.waiting;
            const ok = await this.tail(created.id);
            count = 0;
            if (!ok) await sleep(10000);
          }
        },
        async tail(id) {
          let shown = 0;
          while (this.open) {
            await sleep(1000);
            let c;
            try { c = await api("GET", "/api/commands/" + id); } catch (error) { this.note = error.message; continue; }
            const run = c.runs[0] || {};
            const text = (run.result && run.result.stdout) || (run.live && run.live.stdout) || "";
            if (run.state === "running") this.note = "";
            if (text.length < shown) shown = 0;
            if (text.length > shown) { this.append(text.slice(shown)); shown = text.length; }
            if (c.done) {
              const data = run.result && run.result.data;
              this.offset = data && typeof data.offset === "number" ? data.offset : null;
              if (run.state === "succeeded" || run.state === "cancelled") return true;
              const error = run.result && run.result.error;
              this.note = ["queued", "delivered", "expired"].indexOf(run.state) >= 0 ? t.offline : t.ended.replace("{state}", error || run.state);
              return false;
            }
          }
          return true;
        },
        append(text) {
          const out = this.$refs.out;
          const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          const parts = (partial + text).split("\n");
          partial = parts.pop();
          lines = lines.concat(parts);
          if (lines.length > MAX_LINES) lines = lines.slice(lines.length - MAX_LINES);
          out.textContent = lines.join("\n") + (partial ? "\n" + partial : "");
          if (atBottom) out.scrollTop = out.scrollHeight;
        },
        leave() {
          this.open = false;
          if (this.id) api("POST", "/api/commands/" + this.id + "/cancel", null, true).catch(function () {});
        },
        async send() {
          const text = this.line.trim();
          if (!text) return;
          this.sending = true;
          this.failed = "";
          try {
            const created = await this.command("program_send", { name: name, text: text }, 60);
            this.line = "";
            const c = await api("GET", "/api/commands/" + created.id + "?wait=30");
            const run = c.runs[0] || {};
            const result = run.result || {};
            if (run.state === "succeeded") this.answer = result.stdout || t.sent;
            else this.failed = result.error || (["queued", "delivered", "expired"].indexOf(run.state) >= 0 ? t.offline : run.state);
          } catch (error) {
            this.failed = error.message;
          }
          this.sending = false;
        },
      };
    });
  });
})();
