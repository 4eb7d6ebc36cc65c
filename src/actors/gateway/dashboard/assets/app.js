// Cloudburst dashboard: live tables and SVG charts fed by server-sent events.
// Embedded in the binary; no dependencies. Stays flat over hours: the chart history is a
// bounded array (oldest points dropped) and every table is replaced, never appended to.
"use strict";

const MAX_POINTS = 600; // ten minutes at one point per second (the server keeps as many)
const MAX_WINDOW_MS = MAX_POINTS * 1000;
const RECENT_ROWS = 20; // the server keeps more; the table shows the newest
const MIN_WINDOW_MS = 60 * 1000; // a young cluster's charts span a minute, then grow to ten
const HOT_KEY_ROWS = 20; // the hottest keys over every KVS node's report
// The token travels in an HttpOnly cookie (the server traded the page's ?token= for it),
// which the browser sends with every request of this page, the event stream included.

let history = [];

const CHARTS = {
  calls: [
    { key: "function_calls_per_s", label: "functions", color: "var(--c1)" },
    { key: "dag_calls_per_s", label: "DAGs", color: "var(--c2)" },
    { key: "errors_per_s", label: "errors", color: "var(--c3)" },
  ],
  latency: [
    { key: "function_p99_ms", label: "functions", color: "var(--c1)" },
    { key: "dag_p99_ms", label: "DAGs", color: "var(--c2)" },
  ],
  kvs: [{ key: "kvs_ops_per_s", label: "ops/s", color: "var(--c4)" }],
  ratio: [
    { key: "cache_hit_ratio", label: "cache hits", color: "var(--c4)", scale: 100 },
    { key: "utilisation", label: "utilisation", color: "var(--c1)", scale: 100 },
  ],
  nodes: [
    { key: "active", get: (p) => p.autoscale?.active, label: "active", color: "var(--c1)" },
    { key: "starting", get: (p) => p.autoscale && p.autoscale.starting + p.autoscale.pending, label: "starting", color: "var(--c2)" },
    { key: "draining", get: (p) => p.autoscale?.draining, label: "draining", color: "var(--c3)" },
  ],
  demand: [
    { key: "demand", get: (p) => p.autoscale?.demand_now, label: "demand", color: "var(--c3)" },
    { key: "capacity", get: (p) => p.autoscale?.capacity, label: "capacity", color: "var(--c4)" },
  ],
  kvsnodes: [
    { key: "kvs_nodes", label: "live", color: "var(--c1)" },
    { key: "starting", get: (p) => p.kvs && p.kvs.starting + p.kvs.pending, label: "starting", color: "var(--c2)" },
    { key: "draining", get: (p) => p.kvs?.draining, label: "draining", color: "var(--c3)" },
  ],
  kvsstorage: [
    { key: "storage", get: (p) => p.kvs?.storage, label: "storage", color: "var(--c4)", scale: 100 },
  ],
};

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmt(v, digits = 1) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function pill(text, cls) { return el("span", text, `pill ${cls}`); }

// Replace a table body with one row per item; `cells` gives a row's cells (strings,
// numbers or nodes; numbers are right-aligned).
function fill(id, items, cells, rowAttrs) {
  const body = document.querySelector(`#${id} tbody`);
  const cols = document.querySelectorAll(`#${id} thead th`).length;
  const rows = items.map((item) => {
    const tr = el("tr");
    if (rowAttrs) for (const [k, v] of Object.entries(rowAttrs(item))) tr.setAttribute(k, v);
    for (const c of cells(item)) {
      if (c instanceof Node) { const td = el("td"); td.append(c); tr.append(td); }
      else tr.append(el("td", typeof c === "number" ? fmt(c) : c, typeof c === "number" ? "num" : ""));
    }
    return tr;
  });
  if (!rows.length) { const tr = el("tr"); const td = el("td", "none yet", "empty"); td.colSpan = cols; tr.append(td); rows.push(tr); }
  body.replaceChildren(...rows);
}

function utilBar(u) {
  const wrap = el("span");
  const bar = el("span", null, "bar");
  const fill_ = el("span");
  fill_.style.width = `${Math.round(Math.min(1, Math.max(0, u)) * 100)}%`;
  bar.append(fill_);
  wrap.append(bar, `${(u * 100).toFixed(0)}%`);
  return wrap;
}

// One hot-key entry: `[key, count]` as a node reports it, or an object with `key`, a count
// (`count` or `accesses`) and the key's replication factor `replicas` when routing knows one.
function hotEntry(e) {
  if (Array.isArray(e)) return { key: e[0], count: e[1] };
  return { key: e.key, count: e.count ?? e.accesses ?? 0, replicas: e.replicas };
}

// The hottest keys over every KVS node's last report: accesses per second added up over
// the nodes that counted them, and the replication factor (the default unless an entry
// carries its own).
function hotKeyRows(k) {
  const rows = new Map();
  const add = (e, perS, node) => {
    const h = hotEntry(e);
    const row = rows.get(h.key) ?? { key: h.key, per_s: 0, nodes: new Set(), replicas: null };
    row.per_s += h.count * perS;
    if (node) row.nodes.add(node);
    if (typeof h.replicas === "number") row.replicas = Math.max(row.replicas ?? 0, h.replicas);
    rows.set(h.key, row);
  };
  for (const n of k.nodes ?? []) {
    const perS = 1000 / Math.max(1, n.window_ms);
    for (const e of n.hot_keys ?? []) add(e, perS, n.node.id);
  }
  for (const e of k.hot_keys ?? []) add(e, 0, null); // the monitor's own list, if it keeps one
  return [...rows.values()]
    .map((r) => ({ ...r, replicas: r.replicas ?? k.replication }))
    .sort((a, b) => b.per_s - a.per_s || (a.key < b.key ? -1 : 1))
    .slice(0, HOT_KEY_ROWS);
}

function kvsRows(k) {
  fill("kvs-nodes", k ? k.nodes : [], (n) => {
    const perS = (x) => x * 1000 / Math.max(1, n.window_ms);
    const used = n.budget_bytes ? n.bytes / n.budget_bytes : 0;
    const bar = utilBar(used);
    bar.append(` (${bytes(n.bytes)} / ${bytes(n.budget_bytes)})`);
    return [n.node.id, n.keys, bar, perS(n.requests), perS(n.gets), perS(n.puts), utilBar(n.occupancy),
      n.service_us_mean, n.draining ? pill("draining", "suspect") : pill("serving", "up")];
  }, (n) => ({ "data-node": n.node.id, "data-bytes": n.bytes, "data-budget": n.budget_bytes,
    "data-requests": n.requests, "data-occupancy": n.occupancy }));
  fill("hot-keys", k ? hotKeyRows(k) : [], (r) => [r.key, r.per_s, [...r.nodes].join(", ") || "–", r.replicas ?? "–"],
    (r) => ({ "data-key": r.key, "data-replicas": r.replicas ?? "" }));
  const n = k?.last;
  document.getElementById("kvs-summary").textContent = k && n
    ? `${n.active} active, ${bytes(n.bytes)} of ${bytes(n.budget_bytes)} (${(n.storage * 100).toFixed(0)}% of the counted nodes' budget), replication ${k.replication}`
    : "no monitor in the cluster";
  const counts = (k?.decision_counts ?? []).map((c) => `${c.action} ${c.reason} × ${c.count}`).join(", ");
  document.getElementById("kvs-autoscale-summary").textContent = k
    ? `${k.enabled ? "on" : "off"}: ${k.min_kvs}–${k.max_kvs} KVS nodes; ${counts || "no decision yet"}`
    : "";
  fill("kvs-decisions", k ? k.decisions.slice().reverse() : [], (d) => [new Date(d.at_ms).toLocaleTimeString(), d.action,
    d.node ?? "–", d.reason, `${(d.numbers.storage * 100).toFixed(0)}%`,
    `${bytes(d.numbers.bytes)} / ${bytes(d.numbers.budget_bytes)}`,
    `${(d.numbers.occupancy_min * 100).toFixed(0)}% / ${(d.numbers.occupancy_mean * 100).toFixed(0)}%`,
    d.numbers.service_us,
    `${d.numbers.active} / ${d.numbers.starting} / ${d.numbers.draining} / ${d.numbers.pending}`],
  (d) => ({ "data-action": d.action, "data-reason": d.reason }));
}

function callRows(id, rows) {
  fill(id, rows, (r) => [r.name, r.calls, r.errors, r.calls_per_s, r.p50_ms, r.p99_ms, r.mean_ms],
    (r) => ({ "data-name": r.name, "data-calls": r.calls }));
}

function render(s) {
  document.getElementById("node").textContent = s.node;
  document.getElementById("uptime").textContent = `${fmt(s.uptime_s)} s`;
  document.getElementById("updated").textContent = new Date(s.at_ms).toLocaleTimeString();
  fill("nodes", s.nodes, (n) => [n.id, n.addr, n.roles.join(", "), pill(n.draining ? n.state + ", draining" : n.state, n.state), n.kvs_shards, String(n.generation)],
    (n) => ({ "data-node": n.id }));
  const a = s.autoscale;
  const warm = (node) => ((a && a.warm && a.warm[node]) || []).join(", ") || "–";
  fill("executors", s.executors, (e) => e.down
    ? [e.node, "–", "–", pill("down", "down"), "–"]
    : [e.node, e.workers, e.extra_workers, utilBar(e.utilisation), warm(e.node)], (e) => ({ "data-node": e.node, "data-down": e.down }));
  callRows("functions", s.functions);
  callRows("dags", s.dags);
  fill("shards", s.shards, (x) => [x.node, x.shard, x.keys ?? "–", bytes(x.bytes), x.ops_per_s, x.gets, x.puts,
    x.error ? pill("down", "down") : pill("up", "up")], (x) => ({ "data-keys": x.keys ?? "" }));
  fill("caches", s.caches, (c) => c.down
    ? [c.node, pill("down", "down"), "–", "–", "–", "–", "–", "–"]
    : [c.node, c.hit_ratio === null ? "–" : `${(c.hit_ratio * 100).toFixed(1)}%`,
      c.hits, c.misses, c.keys, `${bytes(c.bytes)} / ${bytes(c.capacity)}`, c.evictions, c.pinned]);
  document.getElementById("autoscale-summary").textContent = a
    ? `monitor ${a.node}: ${a.min_executors}–${a.max_executors} executor nodes, ${a.decisions_total} decisions, ${coldStarts(a)}${a.gave_up ? ", launches stopped after repeated failures" : ""}`
    : "no monitor in the cluster";
  fill("decisions", a ? a.decisions.slice().reverse() : [], (d) => [new Date(d.at_ms).toLocaleTimeString(), d.action,
    d.node ?? (d.count ? String(d.count) : "–"), d.reason,
    `${fmt(d.numbers.demand_stable)} / ${fmt(d.numbers.demand_panic)}`, d.numbers.capacity,
    `${d.numbers.active} / ${d.numbers.starting} / ${d.numbers.draining} / ${d.numbers.pending}`, d.numbers.desired]);
  kvsRows(a?.kvs);
  fill("recent", s.recent.slice(0, RECENT_ROWS), (r) => [new Date(r.at_ms).toLocaleTimeString(), r.node || "–", r.kind, r.name, r.call ?? "–",
    r.ok ? pill("ok", "ok") : pill(r.error ?? "error", "error"), r.duration_us / 1000, logCell(r.log)],
    (r) => ({ "data-call": r.call ?? "", "data-node": r.node }));
}

// A call's output (what its functions printed, its traceback): the first line, the whole
// text on hover and when opened.
function logCell(log) {
  if (!log) return "–";
  const d = el("details", null, "log");
  d.append(el("summary", log.split("\n", 1)[0]), el("pre", log));
  return d;
}

// Cold starts from zero: how many, and the median and largest of the newest durations.
function coldStarts(a) {
  const ms = (a.cold_start_ms || []).slice().sort((x, y) => x - y);
  if (!a.cold_starts || !ms.length) return "no cold start";
  return `${a.cold_starts} cold starts (median ${ms[Math.floor(ms.length / 2)]} ms, max ${ms[ms.length - 1]} ms)`;
}

// One SVG chart: a faint grid and one path per series over the last minute (growing to
// ten as history accumulates).
function drawChart(name) {
  const svg = document.getElementById(`chart-${name}`);
  const series = CHARTS[name];
  const now = history.length ? history[history.length - 1].at_ms : Date.now();
  const span = history.length ? now - history[0].at_ms : 0;
  const windowMs = Math.min(MAX_WINDOW_MS, Math.max(MIN_WINDOW_MS, span));
  const value = (p, s) => {
    const v = s.get ? s.get(p) : p[s.key];
    return (v === null || v === undefined) ? null : v * (s.scale ?? 1);
  };
  let max = 0;
  for (const p of history) for (const s of series) { const v = value(p, s); if (v !== null && v > max) max = v; }
  const top = max > 0 ? max * 1.1 : 1;
  const ns = "http://www.w3.org/2000/svg";
  const parts = [];
  for (const y of [25, 50, 75]) {
    const l = document.createElementNS(ns, "line");
    l.setAttribute("class", "grid");
    l.setAttribute("x1", 0); l.setAttribute("x2", 300); l.setAttribute("y1", y); l.setAttribute("y2", y);
    parts.push(l);
  }
  const legend = document.querySelector(`.legend[data-chart="${name}"]`);
  legend.replaceChildren();
  for (const s of series) {
    let d = "", pen = false;
    for (const p of history) {
      const v = value(p, s);
      if (v === null) { pen = false; continue; }
      const x = 300 - ((now - p.at_ms) / windowMs) * 300;
      const y = 100 - (v / top) * 98;
      d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    }
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.style.stroke = s.color;
    parts.push(path);
    const last = history.length ? value(history[history.length - 1], s) : null;
    const swatch = el("i"); swatch.style.background = s.color;
    legend.append(swatch, `${s.label} ${fmt(last)}`);
  }
  legend.append(` · max ${fmt(max)}`);
  svg.replaceChildren(...parts);
}

function drawCharts() { for (const name of Object.keys(CHARTS)) drawChart(name); }

function setStatus(text) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = `status ${text}`;
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("history", (e) => {
    history = JSON.parse(e.data).slice(-MAX_POINTS);
    drawCharts();
  });
  events.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    setStatus("live");
    render(s);
    const last = history[history.length - 1];
    if (!last || last.at_ms < s.point.at_ms) history.push(s.point);
    if (history.length > MAX_POINTS) history.splice(0, history.length - MAX_POINTS);
    drawCharts();
  });
  events.onerror = () => setStatus("reconnecting"); // EventSource retries by itself
}

connect();
