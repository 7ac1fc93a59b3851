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
    });
    if (!found.length) {
      document.dispatchEvent(new CustomEvent("wcms-unknown-machine", { detail: d }));
    }
  });

  function connect() {
    const dot = document.getElementById("live");
    const topics = document.body.dataset.topics || "presence,command,machine,layout";
    const source = new EventSource("/api/events?topics=" + encodeURIComponent(topics));
    ["presence", "status", "command", "machine", "layout", "resync"].forEach(function (topic) {
      source.addEventListener(topic, function (message) {
        document.dispatchEvent(new CustomEvent("wcms-" + topic, { detail: JSON.parse(message.data || "{}") }));
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
        ask() {
          const n = Number(this.$root.dataset.count || 0);
          const dangerous = destructive.indexOf(this.type) >= 0;
          if (!always && !dangerous) return this.go();
          if (n < 1) { this.question = (W.t.confirm || "").replace("{n}", 0); this.$refs.dialog.showModal(); return; }
          this.question = (dangerous ? W.t.destructive : W.t.confirm).replace("{n}", n);
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
    Alpine.data("historyChart", function (id) {
      return {
        range: "1h",
        empty: false,
        plot: null,
        init() {
          this.load("1h");
          window.addEventListener("resize", () => { if (this.plot) this.plot.setSize(this.size()); });
          document.addEventListener("wcms-status", (e) => this.append((e.detail.machines || {})[id]));
        },
        append(s) {
          // The last hour grows live, one point per status event.
          if (!s || !this.plot || this.range !== "1h") return;
          const data = this.plot.data.map(function (column) { return Array.from(column); });
          [Date.now() / 1000, s.cpu, s.ram, s.disk].forEach(function (v, i) { data[i].push(v); });
          this.empty = false;
          this.plot.setData(data);
        },
        size() { return { width: Math.max(this.$refs.chart.clientWidth, 280), height: 220 }; },
        async load(range) {
          this.range = range;
          const response = await fetch("/api/machines/" + encodeURIComponent(id) + "/history?range=" + range);
          if (!response.ok || !window.uPlot) return;
          const d = await response.json();
          this.empty = d.t.length === 0;
          if (this.plot) this.plot.destroy();
          const ink = getComputedStyle(document.body).color;
          const axis = { stroke: ink, grid: { stroke: "rgba(128,128,128,.2)" }, ticks: { stroke: "rgba(128,128,128,.3)" } };
          this.plot = new window.uPlot(
            Object.assign(this.size(), {
              scales: {
                x: { time: true, range: () => { const t = Date.now() / 1000; return [t - SPANS[range], t]; } },
                y: { range: [0, 100] },
              },
              series: [
                {},
                { label: "CPU %", stroke: "#3b82f6", width: 2 },
                { label: "RAM %", stroke: "#10b981", width: 2 },
                { label: "Disk %", stroke: "#f59e0b", width: 2 },
              ],
              axes: [axis, Object.assign({ values: function (u, v) { return v.map(function (x) { return x + "%"; }); } }, axis)],
            }),
            [d.t, d.cpu, d.ram, d.disk],
            this.$refs.chart
          );
        },
      };
    });
  });
})();
