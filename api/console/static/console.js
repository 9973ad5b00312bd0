// callbackd operator console. Plain JavaScript, no build step, nothing from other hosts.
// It signs in with an API token kept in this tab only (sessionStorage) and reads the
// daemon's own REST API with it, so it shows exactly what that token may see.
"use strict";

const TOKEN_KEY = "callbackd.token";
const CLIENT_KEY = "callbackd.client";
const LIVE_EVERY_MS = 2000;
const PER_PAGE = 50;
const STATUSES = ["scheduled", "executed", "delayed", "delayed_concurrent_task",
  "delayed_interval", "delayed_asr", "finished"];
const WAITING = new Set(["scheduled", "delayed", "delayed_concurrent_task",
  "delayed_interval", "delayed_asr"]);
const NUMBER_RE = /^\+?[0-9*#]{1,32}$/;

let timer = null;        // the refresh of the page shown, stopped on every navigation
let generation = 0;      // a page that is left discards the answers still on their way

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));
// Whole seconds as they are; fractions (the ladder keeps milliseconds) to a tenth.
const secs = (v) => (v === null || v === undefined ? "—" : `${Number.isInteger(v) ? v : v.toFixed(1)} s`);
const enc = encodeURIComponent;

function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

function statusBadge(task) {
  if (task.status === "finished") {
    return badge(`finished: ${task.finish_result || "?"}`, task.finish_result === "success" ? "ok" : "bad");
  }
  if (task.status === "executed") return badge("in a call", "ok");
  return badge(task.status.replaceAll("_", " "), "warn");
}

function resultBadge(result) {
  if (!result) return badge("in progress", "warn");
  return badge(result.replaceAll("_", " "), result === "success" ? "ok" : "bad");
}

function table(columns, rows, opts = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row) => h("tr", {}, columns.map((c) =>
    h("td", { "data-label": c.label, class: c.num ? "num" : null }, c.cell(row)))));
  const t = h("table", { class: opts.cards === false ? null : "cards" },
    opts.caption ? h("caption", { class: "muted" }, opts.caption) : null,
    h("thead", {}, head), h("tbody", {}, body));
  return h("div", { class: "scroll" }, t);
}

// Re-renders keep the keyboard focus where it was, by element id.
function keepFocus(container, render) {
  const active = document.activeElement;
  const id = active && container.contains(active) ? active.id : "";
  render();
  const again = id && document.getElementById(id);
  if (again) again.focus();
}

function notice(text, kind) {
  const el = document.getElementById("notice");
  el.textContent = text || "";
  el.className = `notice ${kind || ""}`;
  el.hidden = !text;
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function client() { return sessionStorage.getItem(CLIENT_KEY) || "@me"; }
function base() { return `/client/${enc(client())}`; }

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, ...(options.body ? { "Content-Type": "application/json" } : {}) },
    cache: "no-store",
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    if (response.status === 401) signOut("The token was not accepted. Sign in again.");
    throw new ApiError(response.status, detail);
  }
  const total = response.headers.get("X-Total-Count");
  return { body, total: total === null ? null : Number(total) };
}

// ---------- sign-in ----------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CLIENT_KEY);
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else route();
  if (message) notice(message);
}

function signInPage(view) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  const form = h("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    sessionStorage.setItem(TOKEN_KEY, String(data.get("token")).trim());
    sessionStorage.setItem(CLIENT_KEY, String(data.get("client")).trim() || "@me");
    try {
      await api(`${base()}/task_scheduler/`);
      notice("");
      location.hash = "#/queues";
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      notice(`Sign-in failed: ${err.message}`);
    }
  } },
  h("label", {}, "API token", h("input", { name: "token", type: "password", required: true, autocomplete: "off", id: "token", autofocus: true })),
  h("label", {}, "Client id (only for an admin token)", h("input", { name: "client", placeholder: "@me", id: "client" })),
  h("button", { class: "primary", type: "submit" }, "Sign in"),
  h("p", { class: "muted" }, "The token stays in this browser tab only and is forgotten when the tab closes."));
  view.append(h("h1", {}, "Sign in"), form);
}

// ---------- health (AMI, store, ASR guard) ----------

async function loadHealth() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    return await response.json();
  } catch {
    return null;
  }
}

function showHealth(ready) {
  const el = document.getElementById("health");
  if (!ready) { el.textContent = "daemon: no answer"; return; }
  el.textContent = ready.ready ? "PBX link: ready" : `not ready — AMI: ${ready.ami}, store: ${ready.store}`;
}

// The answer-rate (ASR) guard of each extension profile whose guard is on (/readyz).
function asrTable(ready) {
  const guards = Object.entries((ready && ready.asr_guard) || {});
  const pct = (r) => `${Math.round(100 * r)}%`;
  if (!guards.length) return h("p", { class: "muted" }, "No extension profile has its ASR guard on.");
  const t = table([
    { label: "Profile", cell: ([p]) => (p === "default" ? "default profile" : `extension ${p}`) },
    { label: "Guard", cell: ([, g]) => (g.tripped ? badge("tripped: holds its tasks", "bad") : badge("clear", "ok")) },
    { label: "Answered", cell: ([, g]) => `${g.answered} of ${g.attempts} attempts${g.ratio === null ? "" : ` (${pct(g.ratio)})`}` },
    { label: "Trips below", num: true, cell: ([, g]) => pct(g.min_ratio) },
    { label: "Once the window holds", num: true, cell: ([, g]) => `${g.min_attempts} attempts` },
  ], guards);
  t.id = "asr";
  return t;
}

// ---------- queues ----------

function intervalCell(queue) {
  if (queue.interval_open === undefined) return "—";
  if (queue.interval_id === null || queue.interval_id === undefined) return badge("always open", "idle");
  if (queue.interval_open) return badge("open", "ok");
  return h("span", {}, badge("closed", "bad"), queue.next_open_utc ? ` opens ${queue.next_open_utc} UTC` : " never opens again");
}

async function toggleQueue(queue, after) {
  const status = queue.status === "on" ? "off" : "on";
  try {
    await api(`${base()}/task_scheduler/${queue.id}`, { method: "PUT", body: JSON.stringify({ status }) });
    notice(`Queue “${queue.name}” switched ${status}.`, "info");
  } catch (err) {
    notice(`Could not switch the queue: ${err.message}`);
  }
  after();
}

function queueSwitch(queue, after) {
  const on = queue.status === "on";
  return h("button", { type: "button", id: `switch-${queue.id}`, "aria-pressed": on ? "true" : "false",
    "aria-label": `Queue ${queue.name} is ${queue.status}; switch it ${on ? "off" : "on"}`,
    onclick: () => toggleQueue(queue, after) }, on ? "● on — switch off" : "○ off — switch on");
}

async function queuesPage(view, mine) {
  view.append(h("h1", {}, "Queues"));
  const [{ body: queues }, ready] = await Promise.all([api(`${base()}/task_scheduler/`), loadHealth()]);
  if (mine !== generation) return;
  showHealth(ready);
  const again = () => route();
  view.append(queues.length === 0 ? h("p", {}, "This client has no queues yet.") : table([
    { label: "Queue", cell: (q) => h("a", { href: `#/queue/${q.id}` }, `${q.name} (#${q.id})`) },
    { label: "Status", cell: (q) => queueSwitch(q, again) },
    { label: "Tasks", num: true, cell: (q) => q.task_count },
    { label: "Unfinished", num: true, cell: (q) => q.sched_task_count },
    { label: "Concurrency limit", num: true, cell: (q) => q.concurrent_task_limit },
    { label: "Calling hours", cell: intervalCell },
    { label: "Last call (UTC)", cell: (q) => dash(q.last_call_date) },
  ], queues, { caption: `${queues.length} queue${queues.length === 1 ? "" : "s"}` }));
  view.append(h("h2", {}, "ASR guard of the extension profiles"), asrTable(ready));
}

// ---------- the tasks of a queue ----------

async function queuePage(view, mine, queueId, params) {
  const page = Math.max(1, Number(params.get("page") || 1));
  const status = params.get("status") || "";
  const search = (params.get("q") || "").trim();
  const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
  if (status) query.append("status", status);
  if (search) query.set(NUMBER_RE.test(search) ? "number" : "name", search);
  const [{ body: queue }, { body: tasks, total }] = await Promise.all([
    api(`${base()}/task_scheduler/${queueId}`),
    api(`${base()}/task_scheduler/${queueId}/tasks/?${query}`),
  ]);
  if (mine !== generation) return;
  view.append(h("p", {}, h("a", { href: "#/queues" }, "← Queues")),
    h("h1", {}, `Queue ${queue.name} (#${queue.id})`),
    h("dl", { class: "grid" },
      field("Status", queueSwitch(queue, () => route())),
      field("Tasks", queue.task_count), field("Unfinished", queue.sched_task_count),
      field("Concurrency limit", queue.concurrent_task_limit),
      field("Calling hours", intervalCell(queue)), field("Last call (UTC)", dash(queue.last_call_date)),
      queue.comment ? field("Comment", queue.comment) : null));
  const form = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    if (data.get("status")) next.set("status", String(data.get("status")));
    if (String(data.get("q")).trim()) next.set("q", String(data.get("q")).trim());
    location.hash = `#/queue/${queueId}?${next}`;
  } },
  h("label", {}, "Status", h("select", { name: "status", id: "status-filter" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s.replaceAll("_", " "))))),
  h("label", {}, "Number or name", h("input", { name: "q", value: search, type: "search", id: "task-search", placeholder: "e.g. 1105 or order-42" })),
  h("button", { type: "submit" }, "Show"));
  view.append(h("h2", {}, "Tasks"), form);
  view.append(tasks.length === 0 ? h("p", {}, "No task matches.") : table([
    { label: "Task", cell: (t) => h("a", { href: `#/task/${queueId}/${t.id}` }, `#${t.id}${t.name ? " " + t.name : ""}`) },
    { label: "Status", cell: statusBadge },
    { label: "A", cell: (t) => [t.a_number, ...(t.callback_params.extended_a_numbers || [])].join(", ") },
    { label: "B", cell: (t) => t.b_number },
    { label: "Attempts", num: true, cell: (t) => `${t.attempts_made} of ${t.try_count}` },
    { label: "Next attempt (UTC)", cell: (t) => dash(t.next_attempt_utc) },
    { label: "Comment", cell: (t) => dash(t.finish_comment) },
  ], tasks));
  view.append(pager(page, total, (p) => {
    const next = new URLSearchParams(params);
    next.set("page", String(p));
    return `#/queue/${queueId}?${next}`;
  }));
}

function field(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function pager(page, total, href) {
  const pages = Math.max(1, Math.ceil((total || 0) / PER_PAGE));
  const first = total ? (page - 1) * PER_PAGE + 1 : 0;
  const last = Math.min(page * PER_PAGE, total || 0);
  return h("nav", { class: "pager", "aria-label": "Pages" },
    page > 1 ? h("a", { href: href(page - 1), rel: "prev" }, "← Previous") : null,
    h("span", {}, `${first}–${last} of ${total || 0} (page ${page} of ${pages})`),
    page < pages ? h("a", { href: href(page + 1), rel: "next" }, "Next →") : null);
}

// ---------- one task ----------

async function taskPage(view, mine, queueId, taskId) {
  const path = `${base()}/task_scheduler/${queueId}/tasks/${taskId}`;
  const [{ body: task }, { body: why }, { body: attempts }, { body: hooks }] = await Promise.all([
    api(path), api(`${path}/why`), api(`${path}/attempts`), api(`${path}/webhooks`)]);
  const ladders = await Promise.all(attempts.map((a) =>
    api(`${base()}/call_history/${enc(a.call_uuid)}/ladder`).then((r) => r.body)));
  if (mine !== generation) return;
  view.append(h("p", {}, h("a", { href: `#/queue/${queueId}` }, `← Queue #${queueId}`)),
    h("h1", {}, `Task #${task.id}${task.name ? " — " + task.name : ""} `, statusBadge(task)));
  view.append(whyPanel(why));
  view.append(h("dl", { class: "grid" },
    field("A number", [task.a_number, ...(task.callback_params.extended_a_numbers || [])].join(", ")),
    field("B number", task.b_number),
    field("Attempts", `${task.attempts_made} of ${task.try_count}`),
    field("Pause between attempts", `${task.try_again_pause} s`),
    field("Start time (UTC)", dash(task.start_time_utc)),
    field("Next attempt (UTC)", dash(task.next_attempt_utc)),
    field("Result", dash(task.finish_result)),
    field("Comment", dash(task.finish_comment)),
    field("Extension profile", dash(task.extension_id)),
    field("Caller ID shown to A", dash(task.callback_params.caller_id_number)),
    field("Created (UTC)", task.create_date_utc)));
  view.append(taskActions(task, path));
  view.append(h("h2", {}, `Attempts (${attempts.length})`));
  if (!attempts.length) view.append(h("p", { class: "muted" }, "No attempt yet."));
  attempts.forEach((attempt, i) => view.append(attemptCard(attempt, ladders[i])));
  view.append(h("h2", {}, `Webhooks (${hooks.length})`));
  view.append(hooks.length === 0 ? h("p", { class: "muted" }, "No webhook queued for this task.") : table([
    { label: "Event", cell: (d) => d.event },
    { label: "URL", cell: (d) => d.url },
    { label: "Delivery", cell: (d) => badge(d.state.replace("_", " "), d.state === "delivered" ? "ok" : d.state === "pending" ? "warn" : "bad") },
    { label: "Tries", num: true, cell: (d) => d.tries },
    { label: "Last answer", cell: (d) => d.state === "delivered" ? "2xx" : dash(d.last_status ?? d.last_error) },
    { label: "Queued (UTC)", cell: (d) => d.created_utc },
    { label: "Delivered / next try (UTC)", cell: (d) => dash(d.delivered_utc || d.next_try_utc) },
  ], hooks));
  if (task.status === "executed" || WAITING.has(task.status)) {
    // Kept current while it may change, unless the operator is editing or reading events.
    timer = setTimeout(() => {
      if (mine === generation && !document.querySelector("form.edit, details[open]")) route();
    }, 5000);
  }
}

function whyPanel(why) {
  const [first, ...more] = why.reasons;
  const running = first.reason === "in_call" || first.reason === "finished";
  return h("section", { class: `why${running ? " running" : ""}`, "aria-label": "Why it is not running now", id: "why" },
    h("strong", {}, running ? "Now: " : "Why it is not running now: "), first.text,
    more.length ? h("ul", {}, more.map((r) => h("li", {}, r.text))) : null);
}

function taskActions(task, path) {
  const waiting = WAITING.has(task.status);
  const box = h("div", { class: "actions" });
  if (task.status !== "finished") {
    box.append(h("button", { type: "button", class: "danger", id: "cancel-task", onclick: async () => {
      if (!confirm(`Cancel task #${task.id}?${task.status === "executed" ? " Its call is hung up." : ""}`)) return;
      try {
        await api(path, { method: "DELETE" });
        notice(`Task #${task.id} cancelled.`, "info");
      } catch (err) { notice(`Could not cancel: ${err.message}`); }
      route();
    } }, "Cancel task"));
  }
  if (waiting) {
    box.append(h("button", { type: "button", id: "edit-task", onclick: () => {
      if (!document.querySelector("form.edit")) box.after(editForm(task, path));
      document.querySelector("form.edit input").focus();
    } }, "Edit task"));
  }
  return box;
}

function editForm(task, path) {
  const fields = [["name", "Name", task.name, "text"], ["a_number", "A number", task.a_number, "text"],
    ["b_number", "B number", task.b_number, "text"], ["try_count", "Attempts in total", task.try_count, "number"],
    ["try_again_pause", "Pause (s)", task.try_again_pause, "number"],
    ["start_time_utc", "Start time (UTC, YYYY-MM-DD HH:MM)", task.start_time_utc || "", "text"]];
  const form = h("form", { class: "stack edit", "aria-label": "Edit task", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const change = {};
    for (const [name, , old, type] of fields) {
      const value = String(data.get(name)).trim();
      if (value === String(old ?? "")) continue;
      change[name] = type === "number" ? Number(value) : value === "" && name === "start_time_utc" ? null : value;
    }
    try {
      await api(path, { method: "PUT", body: JSON.stringify(change) });
      notice(`Task #${task.id} changed.`, "info");
      route();
    } catch (err) { notice(`Not changed: ${err.message}`); }
  } },
  fields.map(([name, label, value, type]) => h("label", {}, label, h("input", { name, value: value ?? "", type, min: type === "number" ? 0 : null }))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save"),
    h("button", { type: "button", onclick: () => form.remove() }, "Discard")));
  return form;
}

// ---------- an attempt: summary, ladder, raw events ----------

function attemptCard(call, drawing) {
  const card = h("section", { class: "attempt", "aria-label": `Attempt ${call.attempt}` },
    h("h3", {}, `Attempt ${call.attempt} `, resultBadge(call.result), call.result_comment ? ` ${call.result_comment}` : ""),
    h("dl", { class: "grid" },
      field("Call", call.call_uuid),
      field("Started (UTC)", call.start_time_gmt),
      field("A answered (UTC)", dash(call.a_answer_time_gmt)),
      field("Bridged (UTC)", dash(call.bridged_time_gmt)),
      field("Ended (UTC)", dash(call.end_time_gmt)),
      field("Duration", secs(call.duration)),
      field("Talk time (bridged)", secs(call.bridged_duration)),
      field("Caller ID sent to A", dash(call.a_caller_id_number) + (call.a_caller_id_name ? ` “${call.a_caller_id_name}”` : "")),
      field("Caller ID sent to B", call.b_caller_id_number || "the A number that answered"),
      field("Hung up first", drawing.hung_up_first ? `${drawing.hung_up_first} side` : "—")));
  card.append(ladderView(drawing));
  card.append(rawEvents(call));
  return card;
}

function ladderView(drawing) {
  if (!drawing.legs.length) return h("p", { class: "muted" }, "No channel events were stored for this call.");
  const all = drawing.legs.flatMap((leg) => leg.steps.map((s) => s.offset));
  const span = Math.max(1, ...all);
  const pct = (offset) => `${(100 * offset / span).toFixed(2)}%`;
  const lanes = drawing.legs.map((leg) => {
    const at = (kind) => leg.steps.find((s) => s.kind === kind);
    const dialled = at("dialled");
    const answered = at("answered");
    const bridged = at("bridged");
    const end = at("hung_up") || at("not_answered") || leg.steps[leg.steps.length - 1];
    const segs = [];
    const seg = (cls, from, to, label) => segs.push(h("div", { class: `seg ${cls}`, title: label,
      style: null, "data-from": from, "data-to": to }));
    const ringEnd = answered || end;
    seg("ring", dialled.offset, ringEnd.offset, "ringing");
    if (answered) seg("up", answered.offset, (bridged || end).offset, "answered, waiting for the other leg");
    if (bridged) seg("talk", bridged.offset, end.offset, "connected");
    const marks = leg.steps.map((s) => h("div", { class: "mark", title: `${s.text} (+${secs(s.offset)})`, "data-at": s.offset }));
    const track = h("div", { class: "track", role: "img",
      "aria-label": `${leg.side} leg ${leg.number}: ${leg.steps.map((s) => `${s.text} at +${secs(s.offset)}`).join("; ")}` }, segs, marks);
    return h("div", { class: "leg" },
      h("div", { class: "lane" }, h("span", { class: "who" }, `${leg.side} ${leg.number}`), track),
      h("ol", { class: "steps", "aria-label": `Steps of the ${leg.side} leg ${leg.number}` },
        leg.steps.map((s) => h("li", { "data-kind": s.kind }, h("span", { class: "t" }, `+${secs(s.offset)} ${s.at.slice(11)}`), `${leg.side}: ${s.text}`))),
      h("p", { class: "muted" },
        `caller ID shown: ${leg.caller_id_number || "default"}${leg.caller_id_name ? ` “${leg.caller_id_name}”` : ""}`,
        ` · dial status ${dash(leg.dial_status)}`,
        ` · hang-up cause ${dash(leg.hangup_cause)}${leg.hangup_cause_text ? ` (${leg.hangup_cause_text})` : ""}`,
        ` · post-dial delay ${leg.post_dial_delay === null ? "not recorded" : secs(leg.post_dial_delay)}`,
        ` · time to answer ${secs(leg.time_to_answer)} · talk time ${secs(leg.talk_time)}`));
  });
  const box = h("div", { class: "ladder" },
    h("div", { class: "legend", "aria-hidden": "true" },
      h("span", { class: "l-ring" }, "ringing"), h("span", { class: "l-up" }, "answered, waiting"),
      h("span", { class: "l-talk" }, "connected"), h("span", {}, `scale: ${secs(span)}`)), lanes);
  // Positions are set through the CSSOM: the page's policy allows no inline styles.
  for (const el of box.querySelectorAll(".seg")) {
    el.style.left = pct(Number(el.dataset.from));
    el.style.width = pct(Math.max(0, Number(el.dataset.to) - Number(el.dataset.from)));
  }
  for (const el of box.querySelectorAll(".mark")) el.style.left = pct(Number(el.dataset.at));
  return box;
}

function rawEvents(call) {
  const pre = h("pre", { class: "events", tabindex: "0" }, "loading…");
  const details = h("details", { ontoggle: async () => {
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = "1";
    try {
      const { body } = await api(`${base()}/call_history/${enc(call.call_uuid)}?events=1`);
      pre.textContent = body.events.map((ev) => Object.entries(ev).map(([k, v]) => `${k}: ${v}`).join("\n")).join("\n\n") || "no events";
    } catch (err) { pre.textContent = `could not load: ${err.message}`; }
  } }, h("summary", {}, "Raw AMI events"), pre);
  return details;
}

// ---------- live calls ----------

async function livePage(view, mine) {
  view.append(h("h1", {}, h("span", { class: "live-dot", "aria-hidden": "true" }), "Live calls"));
  const holder = h("div", { id: "live", "aria-live": "polite" });
  const stamp = h("p", { class: "muted", id: "live-updated" });
  view.append(stamp, holder);
  const refresh = async () => {
    let calls;
    try {
      ({ body: calls } = await api(`${base()}/call_history/?state=live&per_page=200`));
    } catch (err) {
      if (mine === generation) notice(`Live calls: ${err.message}`);
      return;
    }
    if (mine !== generation) return;
    stamp.textContent = `${calls.length} call${calls.length === 1 ? "" : "s"} in progress · updated ${new Date().toLocaleTimeString()} · refreshes every ${LIVE_EVERY_MS / 1000} s`;
    keepFocus(holder, () => holder.replaceChildren(calls.length === 0 ? h("p", {}, "No call in progress.") : callTable(calls, true)));
    timer = setTimeout(refresh, LIVE_EVERY_MS);
  };
  await refresh();
}

function callState(call) {
  if (call.state === "ended") return resultBadge(call.result);
  if (call.bridged_time_gmt) return badge("connected", "ok");
  if (call.a_answer_time_gmt) return badge("A answered, ringing B", "warn");
  return badge("ringing A", "warn");
}

function callTable(calls, live) {
  const now = Date.now();
  const since = (t) => Math.max(0, Math.round((now - Date.parse(t.replace(" ", "T") + "Z")) / 1000));
  return table([
    { label: "Task", cell: (c) => h("a", { href: `#/task/${c.scheduler_id}/${c.task_id}`, id: `call-${c.call_uuid}` }, `#${c.task_id}`) },
    { label: "Attempt", num: true, cell: (c) => c.attempt },
    { label: "State", cell: callState },
    { label: "A", cell: (c) => c.answered_a_number || c.a_numbers.join(", ") },
    { label: "B", cell: (c) => c.b_number },
    { label: "Started (UTC)", cell: (c) => c.start_time_gmt },
    live ? { label: "Running for", num: true, cell: (c) => secs(since(c.start_time_gmt)) }
      : { label: "Talk time", num: true, cell: (c) => secs(c.bridged_duration) },
  ], calls);
}

// ---------- call history ----------

async function historyPage(view, mine, params) {
  const page = Math.max(1, Number(params.get("page") || 1));
  const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
  for (const key of ["number", "task_id", "since", "until"]) {
    const value = (params.get(key) || "").trim();
    if (value) query.set(key, value.replace("T", " "));
  }
  view.append(h("h1", {}, "Call history"));
  const input = (name, label, attrs) => h("label", {}, label, h("input", { name, id: `h-${name}`, value: params.get(name) || "", ...attrs }));
  const form = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (String(value).trim()) next.set(key, String(value).trim());
    location.hash = `#/history?${next}`;
  } },
  input("number", "Number (A or B, or a part)", { type: "search", inputmode: "tel" }),
  input("task_id", "Task id", { type: "number", min: 1 }),
  input("since", "From (UTC)", { type: "datetime-local" }),
  input("until", "Until (UTC)", { type: "datetime-local" }),
  h("button", { type: "submit" }, "Search"));
  view.append(form);
  let calls, total;
  try {
    ({ body: calls, total } = await api(`${base()}/call_history/?${query}`));
  } catch (err) {
    if (err.status === 422) { view.append(h("p", { role: "alert" }, `Check the search: ${err.message}`)); return; }
    throw err;
  }
  if (mine !== generation) return;
  view.append(calls.length === 0 ? h("p", {}, "No call matches.") : callTable(calls, false));
  view.append(pager(page, total, (p) => {
    const next = new URLSearchParams(params);
    next.set("page", String(p));
    return `#/history?${next}`;
  }));
}

// ---------- routing ----------

async function route() {
  clearTimeout(timer);
  timer = null;
  const mine = ++generation;
  const main = document.getElementById("main");
  const [path, queryText] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(queryText || "");
  const parts = path.split("/").filter(Boolean);
  // Each view is built aside and swapped in whole: no empty page while it loads.
  const view = document.createElement("div");
  const show = () => keepFocus(main, () => main.replaceChildren(...view.childNodes));
  if (!token()) {
    if (parts[0] !== "signin") { location.hash = "#/signin"; return; }
    signInPage(view);
    show();
    main.querySelector("[autofocus]")?.focus();
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = `client ${client()}`;
  const section = { queue: "queues", task: "queues" }[parts[0]] || parts[0];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${section}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (parts[0] === "queue" && parts[1]) await queuePage(view, mine, parts[1], params);
    else if (parts[0] === "task" && parts[2]) await taskPage(view, mine, parts[1], parts[2]);
    else if (parts[0] === "live") await livePage(view, mine);
    else if (parts[0] === "history") await historyPage(view, mine, params);
    else if (parts[0] === "queues") await queuesPage(view, mine);
    else { location.hash = "#/queues"; return; }
  } catch (err) {
    if (mine !== generation) return;
    view.append(h("p", { role: "alert" }, err.status === 404 ? "Not found: it does not exist, or this token may not see it." : `Could not load: ${err.message}`));
  }
  if (mine === generation) {
    show();
    main.dataset.route = location.hash;  // which view is shown, for tests and tools
    document.title = `${main.querySelector("h1")?.textContent || "callbackd"} — callbackd console`;
  }
}

window.addEventListener("hashchange", () => {
  notice("");
  // Keyboard users land on the new view, unless it put the focus somewhere itself.
  route().then(() => {
    const main = document.getElementById("main");
    if (!main.contains(document.activeElement)) main.focus();
  });
});
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", () => signOut());
  loadHealth().then(showHealth);
  route();
});
