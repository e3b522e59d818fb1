// Semantica dashboard: a small single-page app over the daemon's own JSON-RPC methods
// (the session cookie authorizes them). No framework and no build step: routes are the
// URL's hash, pages are built with `h()` (text is always set as text, never as HTML).
"use strict";

const STATES = ["QUEUED", "SCHEDULED", "RUNNING", "DONE", "FAILED", "CANCELLED", "SUPERSEDED", "SKIPPED_TTL", "SKIPPED_DEADLINE"];
const TERMINAL = new Set(["DONE", "FAILED", "CANCELLED", "SUPERSEDED", "SKIPPED_TTL", "SKIPPED_DEADLINE"]);
const RETRYABLE = ["FAILED", "CANCELLED", "SKIPPED_TTL", "SKIPPED_DEADLINE"];
const REFRESH_MS = 2000;
const LOG_POLL_MS = 700;
const RETRY_ALL_MAX = 1000;

// ---- helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children.flat()) if (child) el.append(child instanceof Node ? child : String(child));
  return el;
}

let rpcId = 0;
async function rpc(method, params) {
  const response = await fetch("/", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params: params || {} }),
  });
  if (response.status === 401 || response.status === 403) {
    location.href = "/ui/signin";
    throw new Error("signed out");
  }
  const body = await response.json();
  if (body.error) {
    const error = new Error(body.error.message || "error " + body.error.code);
    error.code = body.error.code;
    throw error;
  }
  return body.result;
}

async function overviewExtras() {
  const response = await fetch("/ui/api/overview", { credentials: "same-origin" });
  if (response.redirected || !response.ok) throw new Error("signed out");
  return response.json();
}

function badge(state) {
  return h("span", { class: "badge s-" + state }, state.replace("_", " "));
}

function ago(ms) {
  if (ms === null || ms === undefined) return "—";
  const seconds = Math.round((Date.now() - ms) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  const text = s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" : s < 86400 ? Math.floor(s / 3600) + "h" : Math.floor(s / 86400) + "d";
  return future ? "in " + text : text + " ago";
}

function when(ms) {
  if (ms === null || ms === undefined) return h("span", { class: "muted" }, "—");
  return h("span", { title: new Date(ms).toISOString() }, ago(ms));
}

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  if (ms < 3600000) return Math.floor(ms / 60000) + "m " + Math.round((ms % 60000) / 1000) + "s";
  return Math.floor(ms / 3600000) + "h " + Math.round((ms % 3600000) / 60000) + "m";
}

function runtime(job) {
  if (!job.started_at) return "—";
  return duration((job.finished_at || Date.now()) - job.started_at);
}

function short(id) {
  return id ? id.slice(0, 8) : "";
}

let toastTimer = null;
function toast(text, isError) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = "toast" + (isError ? " error" : "");
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 3500);
}

function setLive(state) {
  const el = document.getElementById("live");
  el.className = "live" + (state === "paused" ? " paused" : state === "down" ? " down" : "");
  document.getElementById("live-text").textContent = state === "paused" ? "Paused" : state === "down" ? "Disconnected" : "Live";
}

// ---- router --------------------------------------------------------------------------

// Each page gets a fresh `view`; a page's timers stop when `view.alive` goes false.
let current = null;

function route() {
  if (current) current.alive = false;
  const view = { alive: true, timers: [] };
  current = view;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const main = document.getElementById("main");
  let name = "overview";
  if (path === "/jobs") name = "jobs";
  else if (path.startsWith("/jobs/")) name = "jobs";
  else if (path === "/recurring") name = "recurring";
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === name);
  setLive("live");
  if (path.startsWith("/jobs/")) jobPage(view, main, decodeURIComponent(path.slice(6)));
  else if (path === "/jobs") jobsPage(view, main, params);
  else if (path === "/recurring") recurringPage(view, main);
  else overviewPage(view, main);
}

function every(view, ms, fn) {
  let running = false;
  const tick = async () => {
    if (!view.alive) return;
    if (!running && !view.paused) {
      running = true;
      try {
        await fn();
        if (!view.paused) setLive("live");
      } catch (error) {
        if (view.alive) setLive("down");
      } finally {
        running = false;
      }
    }
    if (view.alive) view.timers.push(setTimeout(tick, ms));
  };
  tick();
}

// ---- overview ------------------------------------------------------------------------

function overviewPage(view, main) {
  document.title = "Overview · Semantica";
  const cards = h("div", { class: "cards" });
  const chart = h("div", { class: "panel-body chart", id: "chart" });
  const queues = h("tbody");
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Overview"), h("p", { class: "muted" }, "Queues, workers and what finished in the last hour."))),
    cards,
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Throughput"), h("span", { class: "muted small" }, "jobs finished per minute, last 60 minutes"), h("span", { class: "spacer" }),
        h("span", { class: "legend" }, h("span", {}, h("i", { class: "legend-done" }), "done"), h("span", {}, h("i", { class: "legend-failed" }), "failed, cancelled, skipped"))),
      chart),
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Queues")),
      h("table", { id: "queues" },
        h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Status"), ["Queued", "Scheduled", "Running", "Done", "Failed", "Cancelled"].map((t) => h("th", { class: "num" }, t)), h("th", { class: "num" }, "Oldest wait"), h("th", { class: "num" }, "Avg wait"), h("th", {}))),
        queues)),
  );
  for (const [cls, color] of [["legend-done", "#6172f3"], ["legend-failed", "#f97066"]]) for (const el of main.getElementsByClassName(cls)) el.style.background = color;

  every(view, REFRESH_MS, async () => {
    const [stats, extras] = await Promise.all([rpc("admin.stats.v1"), overviewExtras()]);
    if (!view.alive) return;
    const total = (key) => stats.queues.reduce((sum, q) => sum + (q[key] || 0), 0);
    const busy = total("running");
    const lastHour = extras.throughput.reduce((sum, m) => sum + m.done + m.failed, 0);
    const failedHour = extras.throughput.reduce((sum, m) => sum + m.failed, 0);
    const meter = h("div", { class: "meter" }, h("span", { style: { width: Math.min(100, (100 * busy) / Math.max(1, extras.workers)) + "%" } }));
    cards.replaceChildren(
      h("div", { class: "card", id: "workers" }, h("div", { class: "label" }, "Workers busy"), h("div", { class: "value" }, busy, h("small", {}, " / " + extras.workers)), meter),
      h("div", { class: "card" }, h("div", { class: "label" }, "Waiting"), h("div", { class: "value" }, total("queued"), h("small", {}, " queued · " + total("scheduled") + " scheduled"))),
      h("div", { class: "card" }, h("div", { class: "label" }, "Finished, last hour"), h("div", { class: "value" }, lastHour, h("small", {}, failedHour ? " · " + failedHour + " not done" : ""))),
      h("div", { class: "card" }, h("div", { class: "label" }, "Database"), h("div", { class: "value" }, bytes(stats.system.db_size), h("small", {}, " · up " + duration(stats.system.uptime_ms)))),
    );
    chart.replaceChildren(throughputChart(extras.throughput));
    queues.replaceChildren(...(stats.queues.length ? stats.queues.map((q) => queueRow(q)) : [h("tr", {}, h("td", { colspan: 11, class: "empty" }, "No queues yet: enqueue a job and it shows here."))]));
  });
}

function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(0) + " KiB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
  return (n / 1073741824).toFixed(2) + " GiB";
}

function queueRow(q) {
  const action = q.paused
    ? h("button", { class: "btn sm", "data-action": "resume", onclick: () => queueAction("admin.queue.resume.v1", q.name) }, "Resume")
    : h("button", { class: "btn sm", "data-action": "pause", onclick: () => queueAction("admin.queue.pause.v1", q.name) }, "Pause");
  const link = h("a", { href: "#/jobs?queue=" + encodeURIComponent(q.name) }, q.name);
  const cell = (n, state) => h("td", { class: "num" }, n ? h("a", { href: "#/jobs?queue=" + encodeURIComponent(q.name) + "&state=" + state }, n) : h("span", { class: "muted" }, "0"));
  return h("tr", { "data-queue": q.name },
    h("td", {}, link),
    h("td", {}, badge(q.paused ? "PAUSED" : "ACTIVE")),
    cell(q.queued, "QUEUED"), cell(q.scheduled, "SCHEDULED"), cell(q.running, "RUNNING"), cell(q.done, "DONE"), cell(q.failed, "FAILED"), cell(q.cancelled, "CANCELLED"),
    h("td", { class: "num" }, q.oldest_wait_ms ? duration(q.oldest_wait_ms) : h("span", { class: "muted" }, "—")),
    h("td", { class: "num" }, duration(Math.round(q.avg_wait_ms || 0))),
    h("td", { class: "actions" }, action));
}

async function queueAction(method, queue) {
  try {
    const result = await rpc(method, { queue });
    toast(result.paused ? "Paused " + queue + ": running jobs finish, nothing new starts" : "Resumed " + queue);
    route();
  } catch (error) {
    toast(error.message, true);
  }
}

function throughputChart(minutes) {
  const width = 1200, height = 180, left = 36, bottom = 22, top = 10;
  const max = Math.max(4, ...minutes.map((m) => m.done + m.failed));
  const step = Math.pow(10, Math.floor(Math.log10(max)));
  const ceiling = Math.ceil(max / step) * step;
  const plotW = width - left - 8, plotH = height - top - bottom;
  const barW = plotW / minutes.length;
  const y = (n) => top + plotH - (n / ceiling) * plotH;
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const value = (ceiling * i) / 4;
    parts.push(svg("line", { class: "grid", x1: left, x2: width - 8, y1: y(value), y2: y(value) }));
    parts.push(svg("text", { class: "axis", x: left - 6, y: y(value) + 3, "text-anchor": "end" }, Number.isInteger(value) ? value : value.toFixed(1)));
  }
  minutes.forEach((m, i) => {
    const x = left + i * barW + 1;
    const w = Math.max(1, barW - 2);
    const title = svg("title", {}, new Date(m.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ": " + m.done + " done, " + m.failed + " not done");
    if (m.done) parts.push(svg("rect", { class: "done", x, y: y(m.done), width: w, height: y(0) - y(m.done), rx: 1.5 }, title));
    if (m.failed) parts.push(svg("rect", { class: "failed", x, y: y(m.done + m.failed), width: w, height: y(m.done) - y(m.done + m.failed), rx: 1.5 }, title.cloneNode(true)));
    if (i % 10 === 0 || i === minutes.length - 1) {
      const label = i === minutes.length - 1 ? "now" : "-" + (minutes.length - 1 - i) + "m";
      parts.push(svg("text", { class: "axis", x: x + w / 2, y: height - 6, "text-anchor": "middle" }, label));
    }
  });
  return svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img", "aria-label": "jobs finished per minute" }, parts);
}

// ---- jobs ----------------------------------------------------------------------------

function filterFrom(params) {
  const filter = {};
  const states = params.getAll("state").filter((s) => STATES.includes(s));
  if (states.length) filter.state = states;
  const queue = params.get("queue");
  if (queue) filter.queue = [queue];
  for (const key of ["job_type", "tag", "chain_group_id", "subject_key_prefix"]) if (params.get(key)) filter[key] = params.get(key);
  return filter;
}

function jobsPage(view, main, params) {
  document.title = "Jobs · Semantica";
  const filter = filterFrom(params);
  const field = (name, label, placeholder) => h("label", {}, label, h("input", { name, value: params.get(name) || "", placeholder, autocomplete: "off" }));
  const stateSelect = h("select", { name: "state" }, h("option", { value: "" }, "Any state"), STATES.map((s) => h("option", { value: s, selected: filter.state && filter.state[0] === s }, s)));
  const form = h("form", { class: "filters", id: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.append(key, value);
    location.hash = "#/jobs" + (next.toString() ? "?" + next : "");
  } },
    h("label", {}, "State", stateSelect),
    field("queue", "Queue", "any"), field("job_type", "Job type", "any"), field("tag", "Tag", "any"), field("chain_group_id", "Chain group", "any"), field("subject_key_prefix", "Subject prefix", "e.g. repo/"),
    h("div", {}, h("button", { class: "btn primary", type: "submit" }, "Filter")));
  const rows = h("tbody", { id: "jobs-body" });
  const confirmBar = h("div", { class: "confirm", hidden: true });
  const liveButton = h("button", { class: "btn sm", id: "live-toggle", type: "button" }, "Pause live updates");
  const pageInfo = h("span", { class: "muted small" });
  const newer = h("button", { class: "btn sm", type: "button", disabled: true }, "← Newer");
  const older = h("button", { class: "btn sm", type: "button", disabled: true, id: "older" }, "Older →");
  const retryAll = h("button", { class: "btn sm", type: "button", id: "retry-all" }, "Retry all matching…");
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Jobs"), h("p", { class: "muted" }, "Newest first. Filters run on the daemon."))),
    h("section", { class: "panel" },
      form,
      h("div", { class: "panel-head" }, h("h2", {}, "Results"), pageInfo, h("span", { class: "spacer" }), retryAll, liveButton),
      confirmBar,
      h("table", { id: "jobs" }, h("thead", {}, h("tr", {}, h("th", {}, "State"), h("th", {}, "Job"), h("th", {}, "Type"), h("th", {}, "Queue"), h("th", {}, "Subject"), h("th", { class: "num" }, "Attempts"), h("th", {}, "Created"), h("th", { class: "num" }, "Run time"), h("th", {}))), rows),
      h("div", { class: "pager" }, newer, h("span", { class: "spacer" }), older)));

  // Cursor paging: `cursors[i]` starts page i (page 0 has none).
  const cursors = [null];
  let page = 0;
  let nextCursor = null;
  const load = async () => {
    const query = { filter, sort: "DESC", limit: 50 };
    if (cursors[page]) query.cursor = cursors[page];
    const result = await rpc("dev.query_jobs.v1", query);
    if (!view.alive) return;
    nextCursor = result.next_cursor;
    newer.disabled = page === 0;
    older.disabled = !nextCursor;
    pageInfo.textContent = "page " + (page + 1) + " · " + result.items.length + " shown";
    rows.replaceChildren(...(result.items.length ? result.items.map(jobRow) : [h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No job matches."))]));
  };
  newer.addEventListener("click", () => { if (page > 0) { page--; load(); } });
  older.addEventListener("click", () => { if (nextCursor) { cursors[page + 1] = nextCursor; page++; load(); } });
  liveButton.addEventListener("click", () => {
    view.paused = !view.paused;
    liveButton.textContent = view.paused ? "Resume live updates" : "Pause live updates";
    liveButton.classList.toggle("primary", !!view.paused);
    setLive(view.paused ? "paused" : "live");
  });
  retryAll.addEventListener("click", () => confirmRetryAll(view, filter, confirmBar, load));
  every(view, REFRESH_MS, load);
}

function jobRow(job) {
  const actions = [];
  if (!TERMINAL.has(job.state)) actions.push(h("button", { class: "btn sm danger", "data-action": "cancel", onclick: () => cancelJob(job.id) }, "Cancel"));
  if (RETRYABLE.includes(job.state)) actions.push(h("button", { class: "btn sm", "data-action": "retry", onclick: () => retryJob(job.id) }, "Retry"));
  return h("tr", { "data-job-id": job.id },
    h("td", { class: "state" }, badge(job.state)),
    h("td", {}, h("a", { class: "mono", href: "#/jobs/" + job.id, title: job.id }, short(job.id))),
    h("td", {}, job.job_type),
    h("td", {}, job.queue),
    h("td", {}, h("span", { class: "trunc mono", title: job.subject_key }, job.subject_key), job.generation > 1 ? h("span", { class: "muted small" }, " g" + job.generation) : null),
    h("td", { class: "num" }, job.attempts + "/" + job.max_attempts),
    h("td", {}, when(job.created_at)),
    h("td", { class: "num" }, runtime(job)),
    h("td", { class: "actions" }, actions));
}

async function cancelJob(id) {
  try {
    await rpc("dev.cancel.v1", { job_id: id });
    toast("Cancelled " + short(id));
  } catch (error) {
    toast(error.message, true);
  }
  route();
}

async function retryJob(id) {
  try {
    const result = await rpc("dev.retry.v1", { job_id: id });
    toast("Retried as " + short(result.results[0].job_id));
    location.hash = "#/jobs/" + result.results[0].job_id;
  } catch (error) {
    toast(error.message, true);
  }
}

// Counts what a retry by this filter would take (pages of the same query), shows the
// count, and retries only when confirmed.
async function confirmRetryAll(view, filter, bar, reload) {
  const states = filter.state ? filter.state.filter((s) => RETRYABLE.includes(s)) : RETRYABLE;
  bar.hidden = false;
  if (!states.length) {
    bar.replaceChildren(h("span", {}, "The state filter excludes every state a retry takes (failed, cancelled, skipped)."), h("span", { class: "spacer" }), h("button", { class: "btn sm", onclick: () => (bar.hidden = true) }, "Close"));
    return;
  }
  const retryFilter = Object.assign({}, filter, { state: states });
  bar.replaceChildren(h("span", {}, "Counting…"));
  let count = 0;
  let cursor = null;
  try {
    do {
      const query = { filter: retryFilter, limit: 200 };
      if (cursor) query.cursor = cursor;
      const page = await rpc("dev.query_jobs.v1", query);
      count += page.items.length;
      cursor = page.next_cursor;
    } while (cursor && count < RETRY_ALL_MAX);
  } catch (error) {
    bar.replaceChildren(h("span", {}, error.message));
    return;
  }
  count = Math.min(count, RETRY_ALL_MAX);
  const go = h("button", { class: "btn sm primary", id: "retry-all-confirm", disabled: count === 0 }, "Retry " + count);
  go.addEventListener("click", async () => {
    try {
      const result = await rpc("dev.retry.v1", { filter: retryFilter, limit: Math.max(1, count) });
      toast("Retried " + result.results.length + " jobs");
    } catch (error) {
      toast(error.message, true);
    }
    bar.hidden = true;
    reload();
  });
  bar.replaceChildren(
    h("span", { id: "retry-all-count" }, count === 0 ? "No failed, cancelled or skipped job matches this filter." : count + (count === RETRY_ALL_MAX ? "+" : "") + " ended jobs match: each is enqueued again as its subject's next generation."),
    h("span", { class: "spacer" }), go, h("button", { class: "btn sm", onclick: () => (bar.hidden = true) }, "Cancel"));
}

// ---- job detail ----------------------------------------------------------------------

function jobPage(view, main, id) {
  document.title = "Job " + short(id) + " · Semantica";
  const head = h("div", { class: "page-head" });
  const errorBox = h("div", { class: "error-box", hidden: true });
  const fields = h("dl", { class: "detail-grid" });
  const payload = h("pre", { class: "json" });
  const result = h("pre", { class: "json" });
  const artifacts = h("tbody");
  const family = h("tbody");
  const log = h("pre", { class: "log", id: "log" });
  const logState = h("span", { class: "muted small", id: "log-state" }, "following…");
  main.replaceChildren(
    head, errorBox,
    h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Details")), fields),
    h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Log"), logState), log),
    h("div", { class: "two" },
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Payload")), payload),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Result")), result)),
    h("div", { class: "two" },
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Artifacts")), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Size"))), artifacts)),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Parent and children")), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Relation"), h("th", {}, "Job"), h("th", {}, "State"))), family))));

  let job = null;
  let familyLoaded = false;
  every(view, 1000, async () => {
    job = await rpc("dev.get.v1", { job_id: id });
    if (!view.alive) return;
    renderJob(job, head, errorBox, fields, payload, result, artifacts);
    if (!familyLoaded || !TERMINAL.has(job.state)) {
      familyLoaded = true;
      await renderFamily(job, family);
    }
  });

  // The log, followed by polling logs.tail.v1 until the daemon says eof.
  let offset = 0;
  const follow = async () => {
    if (!view.alive) return;
    try {
      const chunk = await rpc("logs.tail.v1", { job_id: id, offset });
      if (!view.alive) return;
      if (chunk.chunk) {
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(chunk.chunk);
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      offset = chunk.next_offset;
      if (chunk.eof) {
        logState.textContent = offset ? "complete · " + bytes(offset) : "no output";
        return;
      }
      logState.textContent = "following… " + bytes(offset);
      view.timers.push(setTimeout(follow, chunk.chunk ? 50 : LOG_POLL_MS));
    } catch (error) {
      logState.textContent = error.message;
      view.timers.push(setTimeout(follow, LOG_POLL_MS * 3));
    }
  };
  follow();
}

function renderJob(job, head, errorBox, fields, payload, result, artifacts) {
  const actions = [];
  if (!TERMINAL.has(job.state)) actions.push(h("button", { class: "btn danger", id: "cancel-btn", onclick: () => cancelJob(job.id) }, "Cancel job"));
  if (RETRYABLE.includes(job.state)) actions.push(h("button", { class: "btn", id: "retry-btn", onclick: () => retryJob(job.id) }, "Retry"));
  head.replaceChildren(
    h("div", {}, h("p", { class: "muted small" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", job.queue),
      h("h1", {}, job.job_type, " ", h("span", { id: "job-state" }, badge(job.state))),
      h("p", { class: "mono muted" }, job.id)),
    h("div", {}, actions));
  if (job.error) {
    errorBox.hidden = false;
    errorBox.replaceChildren(h("strong", {}, job.error.kind), job.error.message || "");
  } else errorBox.hidden = true;
  const row = (label, value) => h("div", { class: "field" }, h("dt", {}, label), h("dd", {}, value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "—") : value));
  const link = (other) => (other ? h("a", { class: "mono", href: "#/jobs/" + other }, short(other)) : null);
  fields.replaceChildren(
    row("Queue", h("a", { href: "#/jobs?queue=" + encodeURIComponent(job.queue) }, job.queue)),
    row("Subject", h("span", { class: "mono" }, job.subject_key)),
    row("Generation", job.generation),
    row("Priority", job.priority),
    row("Mode", job.execution_mode === "SUBPROCESS" ? "subprocess" : "in process"),
    row("Attempts", job.attempts + " of " + job.max_attempts),
    row("Created", h("span", {}, new Date(job.created_at).toLocaleString(), " ", h("span", { class: "muted" }, "(" + ago(job.created_at) + ")"))),
    row("Scheduled", job.scheduled_at ? new Date(job.scheduled_at).toLocaleString() : null),
    row("Started", job.started_at ? new Date(job.started_at).toLocaleString() : null),
    row("Finished", job.finished_at ? new Date(job.finished_at).toLocaleString() : null),
    row("Run time", runtime(job)),
    row("PID", job.pid),
    row("Exit code", job.exit_code),
    row("Tag", job.tag ? h("a", { href: "#/jobs?tag=" + encodeURIComponent(job.tag) }, job.tag) : null),
    row("Chain group", job.chain_group_id ? h("a", { href: "#/jobs?chain_group_id=" + encodeURIComponent(job.chain_group_id) }, job.chain_group_id) : null),
    row("Parent", link(job.parent_job_id)),
    row("Retry of", link(job.retry_of)),
    row("Trace", h("span", { class: "mono" }, job.trace_id)));
  const payloadText = JSON.stringify(job.payload, null, 2);
  if (payload.textContent !== payloadText) payload.textContent = payloadText;
  const resultText = job.result_summary === null || job.result_summary === undefined ? "—" : JSON.stringify(job.result_summary, null, 2);
  if (result.textContent !== resultText) result.textContent = resultText;
  const files = job.artifacts || [];
  artifacts.replaceChildren(...(files.length ? files.map((a) => h("tr", {}, h("td", { class: "mono" }, a.name), h("td", { class: "num" }, bytes(a.bytes)))) : [h("tr", {}, h("td", { colspan: 2, class: "empty" }, "None"))]));
}

// Children: jobs naming this one as parent. The query has no parent filter, so this
// looks through the 200 jobs created right after it (in its chain group when it has one).
async function renderFamily(job, family) {
  const rows = [];
  if (job.parent_job_id) {
    let parent = null;
    try { parent = await rpc("dev.get.v1", { job_id: job.parent_job_id }); } catch (error) { parent = null; }
    rows.push(h("tr", {}, h("td", {}, "parent"), h("td", {}, h("a", { class: "mono", href: "#/jobs/" + job.parent_job_id }, short(job.parent_job_id))), h("td", {}, parent ? badge(parent.state) : h("span", { class: "muted" }, "gone"))));
  }
  const filter = { created_after: Math.max(0, job.created_at - 1) };
  if (job.chain_group_id) filter.chain_group_id = job.chain_group_id;
  const page = await rpc("dev.query_jobs.v1", { filter, sort: "ASC", limit: 200 });
  for (const child of page.items.filter((j) => j.parent_job_id === job.id)) {
    rows.push(h("tr", {}, h("td", {}, "child"), h("td", {}, h("a", { class: "mono", href: "#/jobs/" + child.id }, short(child.id)), " ", child.job_type), h("td", {}, badge(child.state))));
  }
  family.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 3, class: "empty" }, "No parent or children"))]));
}

// ---- recurring -----------------------------------------------------------------------

function recurringPage(view, main) {
  document.title = "Recurring · Semantica";
  const rows = h("tbody");
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Recurring jobs"), h("p", { class: "muted" }, "Cron schedules the daemon enqueues from (", h("code", {}, "semantica recurring set"), ")."))),
    h("section", { class: "panel" }, h("table", { id: "recurring" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Schedule"), h("th", {}, "Time zone"), h("th", {}, "Job type"), h("th", {}, "Queue"), h("th", {}, "Subject"), h("th", {}, "Next run"), h("th", {}, "Last job"))),
      rows)));
  every(view, REFRESH_MS * 2, async () => {
    const list = await rpc("dev.recurring.list.v1");
    if (!view.alive) return;
    rows.replaceChildren(...(list.items.length ? list.items.map((r) => h("tr", {},
      h("td", {}, h("strong", {}, r.name)),
      h("td", {}, h("code", {}, r.cron)),
      h("td", {}, r.timezone),
      h("td", {}, r.job.job_type),
      h("td", {}, h("a", { href: "#/jobs?queue=" + encodeURIComponent(r.job.queue) }, r.job.queue)),
      h("td", {}, h("span", { class: "trunc mono" }, r.job.subject_key)),
      h("td", {}, r.next_at ? h("span", { title: new Date(r.next_at).toISOString() }, new Date(r.next_at).toLocaleString(), " ", h("span", { class: "muted" }, "(" + ago(r.next_at) + ")")) : h("span", { class: "muted" }, "never")),
      h("td", {}, r.last_enqueued_job_id ? h("a", { class: "mono", href: "#/jobs/" + r.last_enqueued_job_id }, short(r.last_enqueued_job_id)) : h("span", { class: "muted" }, "—")),
    )) : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No recurring jobs."))]));
  });
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
