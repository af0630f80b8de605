// tlsresume's live view: a few modules, no framework, no build step. The
// server does the thinking (program names, verdicts, lineage, diffs); this
// page keeps compact rows, draws the visible ones, and follows the event
// stream. detail.js draws one connection, timeline.js the timeline,
// report.js clients × hosts and the diff; util.js writes values.

import { $, esc, api, timeText, ageText, bytesText, connLink, captureWords } from "./util.js";
import { titleHTML, detailHTML } from "./detail.js";
import { drawTimeline as timelineInto, pairOptions, zoomTo, SEP, ALL_HOSTS, splitPair } from "./timeline.js";
import { summaryHTML, diffHTML } from "./report.js";

const ROW = 26;            // px, as --row in style.css
const PAGE = 10000;        // rows per /api/rows request
const REDRAW_MS = 200;     // at most five redraws a second under load

const state = {
  rows: [],                // every row, by seq (ascending)
  bySeq: new Map(),
  filtered: [],            // rows passing the filters, ascending (drawn newest first)
  filters: {},             // the filter form, read when it changes
  open: 0,                 // rows still open
  lastEvent: 0,
  paused: false,
  queued: [],              // events held while paused
  streamDropped: 0,        // events the proxy's stream lost before the view
  selected: 0,             // seq shown in the detail panel
  detail: null,            // its record, for Copy as JSON
  dirty: false,
  refilter: false,
  es: null,
  status: null,
};

// ---- rows: cells ----------------------------------------------------------

function offeredCell(r) {
  if (!r.attempt) return `<span class="err">no hello</span>`;
  // session_ticket: – absent, ask (empty: asks for one), or the ticket's length; pre_shared_key: identities.
  const tkt = r.tkt === undefined ? "–" : r.tkt === "ask" ? "ask" : `${r.tkt}B`;
  const psk = r.psk >= 0 ? String(r.psk) : "–";
  const quic = r.transport === "quic" ? `<span class="quic" title="the hello came in QUIC Initial packets (HTTP/3)">QUIC</span> ` : "";
  return `${quic}<b>${esc(r.attempt)}</b> <span class="small" title="session_ticket: ${r.tkt === undefined ? "absent" : r.tkt === "ask" ? "empty (asks for a ticket)" : `a ${esc(r.tkt)}-byte ticket`}; pre_shared_key: ${r.psk >= 0 ? `${r.psk} identities` : "absent"}">tkt ${esc(tkt)} · psk ${esc(psk)}</span>`;
}

const BY = { psk: "PSK", ticket: "ticket", session_id: "session ID" };

function clientCell(r) {
  if (r.open) return "…";
  if (r.client_error) return `<span class="err" title="${esc(r.client_error)}">failed</span>`;
  if (r.capture) return captureLegCell(r);
  if (r.resumed === undefined) return `<span class="no">–</span>`;
  if (!r.resumed) return `<span class="no">full</span>${r.tickets_sent ? ` <span class="small">${r.tickets_sent} ticket${r.tickets_sent > 1 ? "s" : ""} sent</span>` : ""}`;
  const from = r.ticket_from ? ` <span class="small">ticket from ${connLink(r.ticket_from, r.ticket_seq)}, ${esc(ageText(r.ticket_age_ms))} old</span>` : "";
  return `<span class="yes">RESUMED</span>${from}`;
}

// captureLegCell: what a capture shows of the client's handshake with the
// server itself.
function captureLegCell(r) {
  const title = `title="from the capture: ${esc(r.text)}"`;
  if (r.resumed) return `<span class="yes" ${title}>RESUMED</span> <span class="small">${r.resumed_by ? `by ${esc(BY[r.resumed_by] || r.resumed_by)}` : ""} (server)</span>`;
  if (r.resumed === false) return `<span class="no" ${title}>full</span> <span class="small">${r.capture.startsWith("refused_") ? esc(captureWords(r.capture)) : "(server)"}</span>`;
  return `<span class="no" ${title}>${esc(captureWords(r.capture))}</span>`;
}

function upstreamCell(r) {
  if (r.open) return "…";
  if (r.up_error) return `<span class="err" title="${esc(r.up_error)}">failed</span>`;
  if (r.capture) return `<span class="small" title="read from a capture: the client spoke to the server itself, with no tlsresume between">none: a capture</span>`;
  if (r.passthrough) return `<span class="small">passed through</span>`;
  if (r.up_resumed === undefined) return `<span class="no">–</span>`;
  if (!r.up_resumed) return `<span class="no">full</span>`;
  const from = r.session_from ? ` <span class="small">session from ${connLink(r.session_from, r.session_seq)}</span>` : "";
  return `<span class="yes">RESUMED</span>${from}`;
}

function verdictCell(r) {
  if (r.open) return `<span class="small">open</span>`;
  if (r.capture) return `<span class="v capture fam-${esc(r.family)}" title="from the capture: ${esc(r.text)}">${esc(captureWords(r.capture))}</span>`;
  return `<span class="v fam-${esc(r.family)}" title="${esc(r.text)}">${esc(r.verdict)}</span>`;
}

// programCell: the program, or, where its JA4 named it and the JA4 table
// knows the stack, the program that likely is, marked as likely.
function programCell(r) {
  const title = `${r.program}${r.likely ? ` — ${r.likely}` : ""} (${r.client}) ${r.id}`;
  const name = r.likely ? `<span class="likely">${esc(r.likely)}</span>` : esc(r.program);
  return `<span class="program" title="${esc(title)}">${name} <span class="small">(${esc(r.client)})</span></span>`;
}

function rowHTML(r) {
  const cls = ["grid", "row", r.open ? "open" : "", r.seq === state.selected ? "sel" : ""].join(" ");
  return `<div class="${cls}" data-seq="${r.seq}" data-id="${esc(r.id)}" data-verdict="${esc(r.verdict || "")}" role="row">` +
    `<span>${esc(timeText(r.time))}</span>` +
    programCell(r) +
    `<span title="${esc(r.host)}">${esc(r.host)}</span>` +
    `<span>${offeredCell(r)}</span>` +
    `<span class="client-leg">${clientCell(r)}</span>` +
    `<span class="upstream-leg">${upstreamCell(r)}</span>` +
    `<span>${verdictCell(r)}</span>` +
    // A capture's record counts no bytes and no duration.
    `<span class="num">${r.capture ? "–" : `${bytesText(r.bytes_up)}/${bytesText(r.bytes_down)}`}</span>` +
    `<span class="num">${r.open || r.capture ? "" : Math.round(r.duration_ms)}</span></div>`;
}

// ---- filters --------------------------------------------------------------

function readFilters() {
  const f = Object.fromEntries(new FormData($("#filters")));
  for (const k of ["host", "program", "verdict"]) f[k] = (f[k] || "").trim().toLowerCase();
  state.filters = f;
  return f;
}

// hostMatches: the host filter selects as a selector's host= does
// (inspect.Selector): a prefix of the host as the row names it
// (localhost:9445), of its name alone (localhost: every port), or of
// name:443 for a host shown without its port (example.com:443).
function hostMatches(host, f) {
  host = host.toLowerCase();
  if (host.startsWith(f)) return true;
  const m = host.match(/^\[(.*)\]:\d+$/) || host.match(/^([^:]*):\d+$/);
  if (m) return m[1].startsWith(f);
  return `${host.includes(":") ? `[${host}]` : host}:443`.startsWith(f);
}

function passes(r, f) {
  if (f.host && !hostMatches(r.host, f.host)) return false;
  if (f.program && !r.program.toLowerCase().startsWith(f.program)) return false;
  if (f.verdict && !(r.verdict || r.capture || "").startsWith(f.verdict)) return false;
  if (f.source && r.source !== f.source) return false;
  switch (f.resumed) {
    case "client": return r.resumed === true;
    case "!client": return r.resumed === false;
    case "upstream": return r.up_resumed === true;
    case "!upstream": return r.up_resumed === false;
  }
  return true;
}

function refilter() {
  const f = state.filters;
  state.filtered = state.rows.filter((r) => passes(r, f));
  state.refilter = false;
  state.dirty = true;
}

// ---- the list -------------------------------------------------------------

function draw() {
  if (state.refilter) refilter();
  if (!state.dirty) return;
  state.dirty = false;
  const list = $("#list");
  const n = state.filtered.length;
  $("#spacer").style.height = `${n * ROW}px`;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
  const count = Math.ceil(list.clientHeight / ROW) + 10;
  let html = "";
  for (let i = first; i < Math.min(n, first + count); i++) html += rowHTML(state.filtered[n - 1 - i]); // newest first
  const rows = $("#rows");
  rows.style.transform = `translateY(${first * ROW}px)`;
  rows.innerHTML = html;
  $("#empty").hidden = state.rows.length > 0;
  const open = state.open;
  let counts = `${state.rows.length.toLocaleString()} connections`;
  if (n !== state.rows.length) counts += `, ${n.toLocaleString()} shown`;
  if (open) counts += `, ${open} open`;
  if (state.paused) counts += ` — paused, ${state.queued.length} new waiting`;
  $("#counts").textContent = counts;
  drawStatus();
}

function drawStatus() {
  const el = $("#status");
  const lost = state.streamDropped;
  const live = state.status?.source === "live";
  const conn = !live ? "saved records" : state.es && state.es.readyState === 1 ? "live" : "reconnecting…";
  el.textContent = `${conn}${lost ? ` · dropped ${lost.toLocaleString()} records` : " · dropped 0"}`;
  el.className = lost || (live && state.es?.readyState !== 1) ? "bad" : "";
  el.title = "records the view lost because it fell behind (the proxy never waits for it)";
}

let redrawTimer = 0;
function schedule() {
  state.dirty = true;
  if (!redrawTimer) redrawTimer = setTimeout(() => { redrawTimer = 0; requestAnimationFrame(draw); }, state.rows.length > 2000 ? REDRAW_MS : 16);
}

function upsert(r) {
  const old = state.bySeq.get(r.seq);
  if (old) {
    const matched = state.refilter || passes(old, state.filters);
    if (old.open && !r.open) state.open--;
    Object.assign(old, r);
    if (!r.open) delete old.open;
    if (matched !== passes(old, state.filters)) state.refilter = true;
    if (old.seq === state.selected) showDetail(old.seq, false);
  } else {
    const last = state.rows[state.rows.length - 1];
    state.rows.push(r);
    state.bySeq.set(r.seq, r);
    if (r.open) state.open++;
    if (last && last.seq > r.seq) { state.rows.sort((a, b) => a.seq - b.seq); state.refilter = true; }
    else if (!state.refilter && passes(r, state.filters)) state.filtered.push(r);
  }
  trimToHistory();
  schedule();
}

// The server keeps at most status.history rows; so does the page.
function trimToHistory() {
  const max = state.status?.history || 50000;
  if (state.rows.length <= max + 1000) return;
  for (const r of state.rows.splice(0, state.rows.length - max)) { state.bySeq.delete(r.seq); if (r.open) state.open--; }
  state.refilter = true;
}

// ---- loading and following --------------------------------------------------

async function loadAll() {
  state.rows = []; state.bySeq.clear(); state.filtered = []; state.open = 0;
  let since = 0;
  for (;;) {
    const p = await api(`/api/rows?since=${since}&limit=${PAGE}`);
    for (const r of p.records) { state.rows.push(r); state.bySeq.set(r.seq, r); if (r.open) state.open++; }
    state.lastEvent = Math.max(state.lastEvent, p.last_event);
    since = p.next;
    refilter(); draw();
    if (p.records.length < PAGE) break;
  }
  document.body.dataset.loadedMs = String(Math.round(performance.now())); // since navigation began
  document.body.dataset.loaded = String(state.rows.length);
}

function follow() {
  if (state.es) state.es.close();
  const es = new EventSource(`/api/events?format=rows&last_event_id=${state.lastEvent}`);
  state.es = es;
  // The page's stream sends, a few times a second, the latest row of each
  // connection that changed.
  es.addEventListener("rows", (e) => {
    state.lastEvent = Math.max(state.lastEvent, Number(e.lastEventId) || 0);
    const rows = JSON.parse(e.data);
    if (state.paused) { state.queued.push(...rows); schedule(); return; }
    rows.forEach(upsert);
  });
  // A page that falls behind is dropped by the server; EventSource
  // reconnects with Last-Event-ID and the server sends what it missed.
  es.onerror = () => drawStatus();
  es.onopen = () => drawStatus();
}

async function refreshStatus() {
  try {
    state.status = await api("/api/status");
    state.streamDropped = state.status.stream_dropped;
    drawStatus();
  } catch (e) { showError(e); }
}

function showError(e) {
  const el = $("#status");
  el.textContent = String(e.message || e);
  el.className = "bad";
}

// ---- detail -----------------------------------------------------------------

async function showDetail(seq, scroll = true) {
  state.selected = seq;
  let d;
  try { d = await api(`/api/conn?seq=${seq}`); } catch (e) { showError(e); return; }
  state.detail = d.record;
  $("#detail-title").innerHTML = titleHTML(d);
  $("#detail-body").innerHTML = detailHTML(d);
  $("#detail").hidden = false;
  schedule();
  if (scroll && location.hash !== `#conn=${seq}`) history.replaceState(null, "", `#conn=${seq}`);
}

async function copyJSON() {
  const text = JSON.stringify(state.detail, null, 2);
  try { await navigator.clipboard.writeText(text); }
  catch {
    const ta = document.createElement("textarea");
    ta.value = text; document.body.append(ta); ta.select(); document.execCommand("copy"); ta.remove();
  }
  $("#copy-json").textContent = "Copied";
  setTimeout(() => ($("#copy-json").textContent = "Copy as JSON"), 1200);
}

// ---- clients × hosts ----------------------------------------------------------

let summaryRows = [];
async function drawSummary() {
  try { summaryRows = await api("/api/summary"); } catch (e) { showError(e); return; }
  $("#summary tbody").innerHTML = summaryHTML(summaryRows);
  fillSelectors();
}

function fillSelectors() {
  const opts = new Set();
  for (const s of summaryRows) { opts.add(`program=${s.program}`); opts.add(`program=${s.program},host=${s.host}`); }
  $("#selectors").innerHTML = [...opts].map((o) => `<option value="${esc(o)}">`).join("");
}

// ---- timeline -----------------------------------------------------------------

function fillPairs(want) {
  const sel = $("#timeline-pick select[name=pair]");
  const cur = want || sel.value;
  sel.innerHTML = pairOptions(state.rows).map((p) => `<option value="${esc(p.key)}">${esc(p.label)} (${p.n})</option>`).join("");
  if (cur) sel.value = cur;
}

function drawTimeline() {
  timelineInto($("#timeline"), $("#timeline-pick"), $("#timeline-pick select[name=pair]").value, state.rows);
}

// ---- diff -------------------------------------------------------------------------

async function drawDiff(a, b) {
  const box = $("#diff");
  if (!a || !b) { box.innerHTML = `<p class="hint">Pick two programs (or two connections: conn=c1) to compare, or tick A and B in Clients × hosts.</p>`; return; }
  let d;
  try { d = await api(`/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`); }
  catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; return; }
  box.innerHTML = diffHTML(d);
}

// ---- CA & cache ---------------------------------------------------------------------

async function drawUpstream() {
  const box = $("#upstream");
  if (!state.status?.upstream) { box.innerHTML = `<p class="hint">No proxy behind this view.</p>`; return; }
  let st;
  try { st = await api("/api/upstream/stats"); } catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; return; }
  box.innerHTML = `<table class="narrow"><tbody>${Object.entries(st).map(([k, v]) => `<tr><th>${esc(k)}</th><td class="num">${esc(v)}</td></tr>`).join("")}</tbody></table>
    <p><button type="button" id="flush">Flush the upstream cache</button> <span class="hint">The next connection to each origin then does a full handshake upstream.</span></p>`;
  $("#flush").onclick = async () => {
    try { await api("/api/upstream/flush", { method: "POST" }); drawUpstream(); } catch (e) { showError(e); }
  };
}

async function drawAutoPassthrough() {
  const box = $("#auto-passthrough");
  if (!state.status?.passthrough) { box.innerHTML = `<p class="hint">No proxy behind this view.</p>`; return; }
  let list;
  try { list = await api("/api/passthrough"); } catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; return; }
  if (!list?.length) { box.innerHTML = `<p class="hint">No client is passed through (a client is, for one host, once it rejects tlsresume's certificate with an alert, or hangs up at it twice, with --auto-passthrough).</p>`; return; }
  const now = Date.now();
  box.innerHTML = `<table class="narrow"><thead><tr><th>client</th><th>host</th><th>since</th><th>why</th></tr></thead><tbody>${list.map((p) =>
    `<tr><td><code>${esc(p.client)}</code></td><td>${esc(p.host)}</td><td>${esc(ageText(now - Date.parse(p.since)))} ago</td><td>${esc(p.reason)}</td></tr>`).join("")}</tbody></table>
    <p><button type="button" id="pass-reset">Intercept them again</button> <span class="hint">Their next connections meet tlsresume's certificate again.</span></p>`;
  $("#pass-reset").onclick = async () => {
    try { await api("/api/passthrough/reset", { method: "POST" }); drawAutoPassthrough(); } catch (e) { showError(e); }
  };
}

async function drawTicketKeys() {
  const box = $("#ticket-keys");
  if (!state.status?.ticket_keys) { box.innerHTML = `<p class="hint">No proxy behind this view.</p>`; return; }
  let keys;
  try { keys = await api("/api/client/ticket-keys"); } catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; return; }
  const now = Date.now();
  box.innerHTML = `<table class="narrow"><thead><tr><th>key</th><th>created</th><th></th></tr></thead><tbody>${keys.map((k) =>
    `<tr><td><code>${esc(k.id)}</code></td><td>${esc(ageText(now - Date.parse(k.created)))} ago</td><td>${k.current ? "encrypts new tickets" : "still decrypts"}</td></tr>`).join("")}</tbody></table>
    <p><button type="button" id="rotate">Rotate</button> <span class="hint">New tickets under a new key; earlier tickets still resume.</span>
    <button type="button" id="forget">Rotate and forget the old keys</button> <span class="hint">Every ticket issued before stops working (client_ticket_not_ours), as after a server lost its keys.</span></p>`;
  const rotate = (forget) => async () => {
    try { await api(`/api/client/ticket-keys/rotate${forget ? "?forget=1" : ""}`, { method: "POST" }); drawTicketKeys(); } catch (e) { showError(e); }
  };
  $("#rotate").onclick = rotate(false);
  $("#forget").onclick = rotate(true);
}

// ---- tabs and routing -------------------------------------------------------------------

function route() {
  const h = location.hash.slice(1);
  const m = h.match(/^conn=(\d+)$/);
  const [tab, query] = m ? ["conns", ""] : h.split("?");
  const name = ["conns", "summary", "timeline", "diff", "ca"].includes(tab) ? tab : "conns";
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.tab === name);
  document.body.dataset.tab = name;
  const q = new URLSearchParams(query || "");
  if (m) showDetail(Number(m[1]));
  else if (name !== "conns") { $("#detail").hidden = true; state.selected = 0; }
  if (name === "summary") drawSummary();
  if (name === "timeline") {
    const want = q.get("program") ? q.get("program") + SEP + (q.get("host") || ALL_HOSTS) : "";
    fillPairs(want);
    if (want && q.has("burst")) zoomTo(want, Number(q.get("burst")));
    drawTimeline();
  }
  if (name === "diff") {
    const f = $("#diff-pick");
    if (q.get("a")) f.a.value = q.get("a");
    if (q.get("b")) f.b.value = q.get("b");
    if (!summaryRows.length) api("/api/summary").then((s) => { summaryRows = s; fillSelectors(); }).catch(() => {});
    drawDiff(f.a.value, f.b.value);
  }
  if (name === "ca") { drawUpstream(); drawTicketKeys(); drawAutoPassthrough(); }
  if (name === "conns") schedule();
}

function wire() {
  $("#filters").addEventListener("input", () => { readFilters(); state.refilter = true; schedule(); });
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#pause").onclick = () => {
    state.paused = !state.paused;
    $("#pause").textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) { const q = state.queued; state.queued = []; q.forEach(upsert); }
    schedule();
  };
  $("#list").addEventListener("scroll", () => { state.dirty = true; requestAnimationFrame(draw); });
  window.addEventListener("resize", () => {
    state.dirty = true;
    requestAnimationFrame(() => { draw(); if (document.body.dataset.tab === "timeline") drawTimeline(); });
  });
  document.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-seq]");
    if (link) { e.preventDefault(); e.stopPropagation(); location.hash = `conn=${link.dataset.seq}`; return; }
    const row = e.target.closest(".row");
    if (row) { location.hash = `conn=${row.dataset.seq}`; return; }
    const prog = e.target.closest("a[data-program]");
    if (prog) {
      const f = $("#filters");
      f.program.value = prog.dataset.program; f.host.value = prog.dataset.host;
      readFilters();
      state.refilter = true;
    }
    const pair = e.target.closest("a[data-pair]");
    if (pair) { e.preventDefault(); const [p, h] = splitPair(pair.dataset.pair); location.hash = `timeline?program=${encodeURIComponent(p)}&host=${encodeURIComponent(h)}`; }
  });
  $("#summary").addEventListener("change", () => {
    const a = document.querySelector("input[name=pick-a]:checked")?.value, b = document.querySelector("input[name=pick-b]:checked")?.value;
    if (a && b) location.hash = `diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  });
  $("#diff-pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target;
    location.hash = `diff?a=${encodeURIComponent(f.a.value)}&b=${encodeURIComponent(f.b.value)}`;
  });
  $("#timeline-pick").addEventListener("change", (e) => {
    if (e.target.name === "burst") zoomTo($("#timeline-pick").pair.value, Number(e.target.value));
    drawTimeline();
  });
  $("#close-detail").onclick = () => { $("#detail").hidden = true; state.selected = 0; schedule(); if (location.hash.startsWith("#conn=")) history.replaceState(null, "", "#conns"); };
  $("#copy-json").onclick = copyJSON;
  window.addEventListener("hashchange", route);
  $("#verdict-codes").innerHTML = ["both_resumed", "first_contact", "client_", "upstream_", "passthrough_"].map((c) => `<option value="${c}">`).join("");
  // Views other than the list refresh while they are shown.
  setInterval(() => {
    if (document.hidden) return;
    const tab = document.body.dataset.tab;
    if (tab === "summary") drawSummary();
    if (tab === "timeline") { fillPairs(); drawTimeline(); }
    refreshStatus();
  }, 3000);
}

async function main() {
  wire();
  readFilters();
  await refreshStatus();
  try { await loadAll(); } catch (e) { showError(e); }
  if (state.status?.source === "live") follow();
  route();
}

main();
