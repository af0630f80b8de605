// tlsresume's live view: one module, no framework, no build step. The
// server does the thinking (program names, verdicts, lineage, diffs); this
// page keeps compact rows, draws the visible ones, and follows the event
// stream.

const ROW = 26;            // px, as --row in style.css
const PAGE = 10000;        // rows per /api/rows request
const REDRAW_MS = 200;     // at most five redraws a second under load

const $ = (sel) => document.querySelector(sel);
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

// ---- helpers --------------------------------------------------------------

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

async function api(path, opts) {
  const res = await fetch(path, { credentials: "same-origin", ...opts });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function ageText(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

const timeText = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
const bytesText = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)}M` : n >= 1024 ? `${(n / 1024).toFixed(1)}k` : String(n ?? 0));
const connLink = (id, seq) => (seq ? `<a href="#conn=${seq}" data-seq="${seq}">${esc(id)}</a>` : esc(id));

// ---- rows: cells ----------------------------------------------------------

function offeredCell(r) {
  if (!r.attempt) return `<span class="err">no hello</span>`;
  // session_ticket: – absent, ask (empty: asks for one), or the ticket's length; pre_shared_key: identities.
  const tkt = r.tkt === undefined ? "–" : r.tkt === "ask" ? "ask" : `${r.tkt}B`;
  const psk = r.psk >= 0 ? String(r.psk) : "–";
  const quic = r.transport === "quic" ? `<span class="quic" title="the hello came in QUIC Initial packets (HTTP/3)">QUIC</span> ` : "";
  return `${quic}<b>${esc(r.attempt)}</b> <span class="small" title="session_ticket: ${r.tkt === undefined ? "absent" : r.tkt === "ask" ? "empty (asks for a ticket)" : `a ${esc(r.tkt)}-byte ticket`}; pre_shared_key: ${r.psk >= 0 ? `${r.psk} identities` : "absent"}">tkt ${esc(tkt)} · psk ${esc(psk)}</span>`;
}

function clientCell(r) {
  if (r.open) return "…";
  if (r.client_error) return `<span class="err" title="${esc(r.client_error)}">failed</span>`;
  if (r.resumed === undefined) return `<span class="no">–</span>`;
  if (!r.resumed) return `<span class="no">full</span>${r.tickets_sent ? ` <span class="small">${r.tickets_sent} ticket${r.tickets_sent > 1 ? "s" : ""} sent</span>` : ""}`;
  const from = r.ticket_from ? ` <span class="small">ticket from ${connLink(r.ticket_from, r.ticket_seq)}, ${esc(ageText(r.ticket_age_ms))} old</span>` : "";
  return `<span class="yes">RESUMED</span>${from}`;
}

function upstreamCell(r) {
  if (r.open) return "…";
  if (r.up_error) return `<span class="err" title="${esc(r.up_error)}">failed</span>`;
  if (r.passthrough) return `<span class="small">passed through</span>`;
  if (r.up_resumed === undefined) return `<span class="no">–</span>`;
  if (!r.up_resumed) return `<span class="no">full</span>`;
  const from = r.session_from ? ` <span class="small">session from ${connLink(r.session_from, r.session_seq)}</span>` : "";
  return `<span class="yes">RESUMED</span>${from}`;
}

function verdictCell(r) {
  if (r.open) return `<span class="small">open</span>`;
  return `<span class="v fam-${esc(r.family)}" title="${esc(r.text)}">${esc(r.verdict)}</span>`;
}

function rowHTML(r) {
  const cls = ["grid", "row", r.open ? "open" : "", r.seq === state.selected ? "sel" : ""].join(" ");
  return `<div class="${cls}" data-seq="${r.seq}" data-id="${esc(r.id)}" data-verdict="${esc(r.verdict || "")}" role="row">` +
    `<span>${esc(timeText(r.time))}</span>` +
    `<span title="${esc(r.program)} (${esc(r.client)}) ${esc(r.id)}">${esc(r.program)} <span class="small">(${esc(r.client)})</span></span>` +
    `<span title="${esc(r.host)}">${esc(r.host)}</span>` +
    `<span>${offeredCell(r)}</span>` +
    `<span class="client-leg">${clientCell(r)}</span>` +
    `<span class="upstream-leg">${upstreamCell(r)}</span>` +
    `<span>${verdictCell(r)}</span>` +
    `<span class="num">${bytesText(r.bytes_up)}/${bytesText(r.bytes_down)}</span>` +
    `<span class="num">${r.open ? "" : Math.round(r.duration_ms)}</span></div>`;
}

// ---- filters --------------------------------------------------------------

function readFilters() {
  const f = Object.fromEntries(new FormData($("#filters")));
  for (const k of ["host", "program", "verdict"]) f[k] = (f[k] || "").trim().toLowerCase();
  state.filters = f;
  return f;
}

function passes(r, f) {
  if (f.host && !r.host.toLowerCase().startsWith(f.host)) return false;
  if (f.program && !r.program.toLowerCase().startsWith(f.program)) return false;
  if (f.verdict && !(r.verdict || "").startsWith(f.verdict)) return false;
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

const GROUPS = { 23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 29: "x25519", 30: "x448", 256: "ffdhe2048", 257: "ffdhe3072", 4587: "SecP256r1MLKEM768", 4588: "X25519MLKEM768", 25497: "X25519Kyber768Draft00" };
const KEY_EXTS = new Set([35, 41, 42, 45]); // session_ticket, pre_shared_key, early_data, psk_key_exchange_modes
const isGrease = (v) => (v & 0x0f0f) === 0x0a0a && (v >> 8) === (v & 0xff);
const groupName = (g) => (isGrease(g) ? "GREASE" : GROUPS[g] || `0x${g.toString(16).padStart(4, "0")}`);
const versionName = (v) => (isGrease(v) ? "GREASE" : { 0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0", 0x0300: "SSL 3" }[v] || `0x${v.toString(16)}`);
const modesName = (m) => (m == null ? "absent" : m.length === 0 ? "empty" : m.map((x) => ({ 0: "psk_ke", 1: "psk_dhe_ke" }[x] ?? x)).join(", "));

function legsHTML(rec) {
  const c = rec.client_leg, u = rec.upstream_leg;
  const line = (name, a, b) => `<div class="lh">${name}</div><div>${a ?? ""}</div><div>${b ?? ""}</div>`;
  const yn = (v) => (v === undefined || v === null ? "" : v ? `<span class="yes">yes</span>` : `<span class="no">no</span>`);
  const lin = (id, seq, age) => (id ? `${connLink(id, seq)}, ${esc(ageText(age))} old` : "");
  return `<div class="legs" id="legs">
    <div class="lh"></div><div class="lh">client ↔ tlsresume</div><div class="lh">tlsresume ↔ origin</div>
    ${line("version", esc(c?.version), esc(u?.version))}
    ${line("cipher suite", esc(c?.cipher_suite), esc(u?.cipher_suite))}
    ${line("ALPN", esc(c?.alpn), esc(u?.alpn))}
    ${line("resumed", `<span data-leg="client">${yn(c?.resumed)}</span>`, `<span data-leg="upstream">${yn(u?.resumed)}</span>`)}
    ${line("tickets", c ? `${c.tickets_sent} sent` : "", u ? `${u.tickets_received} received` : "")}
    ${line("resumption", c ? `ticket: ${esc(c.ticket)}` : "", u ? `cache: ${esc(u.cache || "not asked")}, offered ${esc(u.offered)}` : "")}
    ${line("lineage", c ? `ticket from ${lin(c.ticket_from, state.detailSeqs?.ticket_seq, c.ticket_age_ms) || "–"}` : "", u ? `session from ${lin(u.session_from, state.detailSeqs?.session_seq, u.session_age_ms) || "–"}` : "")}
    ${line("handshake", c ? `${c.handshake_ms} ms` : "", u ? `${u.handshake_ms} ms${u.extra_handshakes ? ` (+${u.extra_handshakes} more connections)` : ""}` : "")}
    ${line("address", esc(rec.client_addr), u ? `${esc(u.addr)}${u.remote_addr && u.remote_addr !== u.addr ? ` → ${esc(u.remote_addr)}` : ""}` : "")}
    ${line("verified", "", u ? (u.verified ? "yes" : `<span class="err">no</span>`) + (u.insecure ? " (--insecure-upstream)" : "") : "")}
    ${line("error", `<span class="err">${esc(c?.error)}</span>`, `<span class="err">${esc(u?.error)}</span>`)}
    ${line("alert", esc(c?.alert) + (c?.closed_after_certificate ? "closed right after our certificate" : ""), "")}
  </div>`;
}

// offers12: the hello offers TLS 1.2 (or lower), where session_ticket matters.
const offers12 = (ch) => !ch.supported_versions?.length || ch.supported_versions.some((v) => !isGrease(v) && v <= 0x0303);

function helloHTML(ch, exts) {
  if (!ch) return "";
  const st = ch.session_ticket;
  const psk = ch.pre_shared_key;
  const f = (k, v) => `<div>${k}</div><div>${v}</div>`;
  const chips = exts.map((e) => `<span class="ext${e.grease ? " grease" : ""}${KEY_EXTS.has(e.type) ? " key" : ""}" title="${e.type}">${esc(e.grease ? "GREASE" : e.name)}</span>`).join("");
  return `<h3>ClientHello</h3><div class="facts">
    ${f("attempt", `<b>${esc(ch.attempt)}</b>`)}
    ${f("session_ticket", !st.offered ? (offers12(ch) ? "absent (over TLS 1.2: can resume only by session ID)" : "absent (TLS 1.3 only: its tickets come in NewSessionTicket messages)") : st.len === 0 ? "present, empty: asks for a ticket" : `carries a ${st.len}-byte ticket`)}
    ${f("pre_shared_key", !psk.offered ? "absent" : psk.identities.map((i) => `${i.len}-byte identity, obfuscated age ${i.obfuscated_ticket_age}`).join("; ") + ` (${psk.binders} binder${psk.binders === 1 ? "" : "s"})`)}
    ${f("psk_key_exchange_modes", esc(modesName(ch.psk_key_exchange_modes)))}
    ${f("early_data", ch.early_data ? "offered (0-RTT)" : "no")}
    ${f("legacy session ID", ch.session_id_len ? `${ch.session_id_len} bytes <code>${esc(ch.session_id)}</code>` : "empty")}
    ${f("versions", (ch.supported_versions?.length ? ch.supported_versions : [ch.legacy_version]).map(versionName).join(", "))}
    ${f("ALPN", esc((ch.alpn || []).join(", ")) || "none")}
    ${f("groups", (ch.supported_groups || []).map(groupName).join(", "))}
    ${f("key shares", (ch.key_share_groups || []).map(groupName).join(", "))}
    ${f("cipher suites", `${ch.cipher_suites.length}`)}
    ${f("extended_master_secret", ch.extended_master_secret ? "yes" : "no")}
    ${f("extensions, in order", `<div class="exts" id="exts">${chips}</div>`)}
    ${f("JA4", `<code>${esc(ch.ja4)}</code>`)}
    ${f("JA3", `<code>${esc(ch.ja3_hash)}</code> <details><summary>string</summary><code>${esc(ch.ja3)}</code></details>`)}
  </div>`;
}

function quicHTML(rec, params) {
  const q = rec.quic;
  if (!q) return "";
  const f = (k, v) => `<div>${k}</div><div>${v}</div>`;
  return `<h3>QUIC</h3><div class="facts" id="quic">
    ${f("version", `${esc(q.version_name)} <code>${esc(q.version)}</code>`)}
    ${f("client's DCID", `<code>${esc(q.dcid) || "empty"}</code> (the Initial keys come from it)`)}
    ${f("client's SCID", q.scid ? `<code>${esc(q.scid)}</code>` : "empty")}
    ${f("server's SCID", q.server_scid ? `<code>${esc(q.server_scid)}</code>` : "not seen")}
    ${q.retry ? f("Retry", `the server answered with a Retry (token ${q.retry.token_len} bytes) to <code>${esc(q.retry.scid)}</code>`) : ""}
    ${q.version_negotiation ? f("version negotiation", `the server offered ${esc(q.version_negotiation.join(", "))}`) : ""}
    ${q.negotiated_version ? f("answered in", `<code>${esc(q.negotiated_version)}</code> (compatible version negotiation)`) : ""}
    ${f("0-RTT", rec.early_data_sent ? "the client sent 0-RTT packets after this hello" : "none seen")}
    ${params ? f("transport parameters", `<div class="exts">${params.map((name) => `<span class="ext${name === "grease" ? " grease" : ""}">${esc(name)}</span>`).join("")}</div>`) : ""}
  </div>`;
}

function serverHelloHTML(sh, source) {
  if (!sh) return "";
  return `<h3>ServerHello (the real server's, ${source === "pcap" ? "from the capture" : "passed through"})</h3><div class="facts">
    <div>version</div><div>${versionName(sh.version)}</div>
    <div>resumed</div><div>${sh.complete ? (sh.resumed ? `yes, by ${esc(sh.resumed_by)}` : "no") : "not seen"}</div>
    <div>HelloRetryRequest</div><div>${sh.hrr ? "yes" : "no"}</div>
    <div>selected PSK</div><div>${sh.selected_psk ?? "none"}</div>
    <div>session ID</div><div>${sh.session_id_len} bytes</div></div>`;
}

function mirroredHTML(m, fromSeq) {
  if (!m) return "";
  return `<h3>Mirrored from the origin</h3><div class="facts">
    <div>highest version</div><div>${esc(m.max_version)}</div>
    <div>ALPN offered</div><div>${esc((m.alpn || []).join(", ")) || "none"}</div>
    <div>tickets</div><div>${m.tickets ? "issued" : "none issued"}</div>
    <div>leaf names</div><div>${esc((m.names || []).join(", "))}</div>
    ${m.overrides?.length ? `<div>overridden by flags</div><div>${esc(m.overrides.join(", "))}</div>` : ""}
    ${m.from ? `<div>answered early</div><div>like ${connLink(m.from, fromSeq)}, while this connection's own upstream handshake ran${m.mismatch?.length ? `; it then answered differently: <span class="err">${esc(m.mismatch.join(", "))}</span>` : ""}</div>` : ""}</div>`;
}

async function showDetail(seq, scroll = true) {
  state.selected = seq;
  let d;
  try { d = await api(`/api/conn?seq=${seq}`); } catch (e) { showError(e); return; }
  const rec = d.record;
  state.detail = rec;
  state.detailSeqs = d;
  const who = rec.user_agent ? `${d.program}` : d.program;
  $("#detail-title").innerHTML = `${esc(rec.id)} · ${esc(who)} (${esc(rec.client_addr)}) → ${esc(d.host)} · ${esc(timeText(rec.time))} · ${esc(rec.source)}${d.open ? " · open" : ""}`;
  const back = d.returned?.length ? `<p>Its tickets came back on ${d.returned.map((x) => connLink(x.id, x.seq) + (x.leg === "upstream" ? " (upstream)" : "")).join(", ")}.</p>` : "";
  $("#detail-body").innerHTML =
    (rec.verdict?.code ? `<div class="verdict-text"><span class="v fam-${esc(d.family)}" id="detail-verdict">${esc(rec.verdict.code)}</span> ${esc(rec.verdict.text)}</div>` : `<div class="verdict-text">${d.open ? "still open" : esc(d.explain || "")}</div>`) +
    (rec.passthrough ? `<p>Passed through: ${esc(rec.passthrough)}</p>` : "") +
    (rec.error ? `<p class="err">${esc(rec.error)}</p>` : "") +
    back +
    (rec.client_leg || rec.upstream_leg ? legsHTML(rec) : "") +
    quicHTML(rec, d.transport_parameters) + helloHTML(rec.client_hello, d.extensions || []) +
    serverHelloHTML(rec.passthrough || rec.source === "pcap" ? rec.server_hello : null, rec.source) + mirroredHTML(rec.mirrored, d.mirror_seq) +
    `<p class="hint">${rec.user_agent ? `User-Agent: ${esc(rec.user_agent)}. ` : ""}${rec.bytes_up} bytes up, ${rec.bytes_down} down, ${rec.duration_ms} ms.</p>`;
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
  const countWords = (m) => Object.entries(m || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  $("#summary tbody").innerHTML = summaryRows.map((s, i) => {
    const sel = `program=${s.program},host=${s.host},transport=${s.transport}`;
    return `<tr data-i="${i}"><td><input type="radio" name="pick-a" value="${esc(sel)}"></td><td><input type="radio" name="pick-b" value="${esc(sel)}"></td>
      <td>${esc(s.client)}</td><td>${esc(s.program)}</td><td>${esc(s.host)}</td><td>${esc(s.transport)}</td><td class="num">${s.conns}</td><td>${esc(countWords(s.offered))}</td>
      <td class="num">${s.resumed}/${s.conns}</td><td class="num">${s.upstream_resumed == null ? "–" : `${s.upstream_resumed}/${s.conns}`}</td>
      <td>${esc(s.why_not || "")}</td>
      <td><a href="#conns" data-program="${esc(s.program)}" data-host="${esc(s.host)}">connections</a> · <a href="#timeline" data-pair="${esc(s.program + SEP + s.host)}">timeline</a></td></tr>`;
  }).join("");
  fillSelectors();
}

function fillSelectors() {
  const opts = new Set();
  for (const s of summaryRows) { opts.add(`program=${s.program}`); opts.add(`program=${s.program},host=${s.host}`); }
  $("#selectors").innerHTML = [...opts].map((o) => `<option value="${esc(o)}">`).join("");
}

// ---- timeline -----------------------------------------------------------------

// A program × host pair as one string (an option's value): hosts hold no "×".
const SEP = " × ";
const splitPair = (k) => { const i = k.lastIndexOf(SEP); return [k.slice(0, i), k.slice(i + SEP.length)]; };

function pairs() {
  const seen = new Map();
  for (const r of state.rows) {
    const k = r.program + SEP + r.host;
    seen.set(k, (seen.get(k) || 0) + 1);
  }
  return [...seen.entries()].sort((a, b) => b[1] - a[1]);
}

function fillPairs(want) {
  const sel = $("#timeline-pick select");
  const cur = want || sel.value;
  sel.innerHTML = pairs().map(([k, n]) => `<option value="${esc(k)}">${esc(k)} (${n})</option>`).join("");
  if (cur) sel.value = cur;
}

function drawTimeline() {
  const key = $("#timeline-pick select").value;
  const box = $("#timeline");
  if (!key) { box.innerHTML = `<p class="hint">No connections yet.</p>`; return; }
  const [program, host] = splitPair(key);
  const rows = state.rows.filter((r) => r.program === program && r.host === host);
  const t0 = Date.parse(rows[0].time), t1 = Date.parse(rows[rows.length - 1].time);
  const span = Math.max(t1 - t0, 1);
  const W = Math.max(900, rows.length * 34 + 120), L = 60, R = 40, yC = 70, yU = 170, H = 250;
  const x = (r) => L + ((Date.parse(r.time) - t0) / span) * (W - L - R);
  const pos = new Map(rows.map((r) => [r.seq, x(r)]));
  const cls = (resumed, err, open) => (open ? "open" : err ? "failed" : resumed ? "resumed" : "full");
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="timeline of ${esc(program)} × ${esc(host)}">
    <defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>
    <text x="4" y="${yC + 4}">client</text><text x="4" y="${yU + 4}">upstream</text>
    <line class="lane" x1="${L}" y1="${yC}" x2="${W - R}" y2="${yC}"/><line class="lane" x1="${L}" y1="${yU}" x2="${W - R}" y2="${yU}"/>`;
  // Gaps longer than Apple's ~10-minute session cache (QA1727) are marked.
  for (let i = 1; i < rows.length; i++) {
    const gap = Date.parse(rows[i].time) - Date.parse(rows[i - 1].time);
    if (gap >= 10 * 60 * 1000) svg += `<text class="gap" x="${(x(rows[i]) + x(rows[i - 1])) / 2 - 20}" y="${(yC + yU) / 2 + 4}">gap ${esc(ageText(gap))}</text>`;
  }
  for (const r of rows) {
    const cx = x(r);
    if (r.ticket_seq && pos.has(r.ticket_seq)) {
      const fx = pos.get(r.ticket_seq), h = Math.min(50, 12 + Math.abs(cx - fx) / 6);
      svg += `<path class="lineage" data-from="${r.ticket_seq}" data-to="${r.seq}" data-leg="client" d="M${fx},${yC - 7} C${fx},${yC - h} ${cx},${yC - h} ${cx},${yC - 7}" marker-end="url(#head)"><title>${esc(r.id)} brought back the ticket ${esc(r.ticket_from)} issued (${esc(ageText(r.ticket_age_ms))} old)</title></path>`;
    }
    if (r.session_seq && pos.has(r.session_seq)) {
      const fx = pos.get(r.session_seq), h = Math.min(50, 12 + Math.abs(cx - fx) / 6);
      svg += `<path class="lineage up" data-from="${r.session_seq}" data-to="${r.seq}" data-leg="upstream" d="M${fx},${yU + 7} C${fx},${yU + h} ${cx},${yU + h} ${cx},${yU + 7}" marker-end="url(#head)"><title>tlsresume reused the session of ${esc(r.session_from)}</title></path>`;
    }
    svg += `<a href="#conn=${r.seq}"><circle class="conn ${cls(r.resumed, r.client_error, r.open)}" data-seq="${r.seq}" data-leg="client" cx="${cx}" cy="${yC}" r="6"><title>${esc(r.id)} ${esc(timeText(r.time))}: client ${r.resumed ? "resumed" : "full handshake"} — ${esc(r.verdict || "open")}</title></circle></a>`;
    svg += `<a href="#conn=${r.seq}"><circle class="conn ${cls(r.up_resumed, r.up_error, r.open)}" data-seq="${r.seq}" data-leg="upstream" cx="${cx}" cy="${yU}" r="6"><title>${esc(r.id)}: upstream ${r.up_resumed ? "resumed" : "full handshake"}</title></circle></a>`;
    svg += `<text x="${cx - 8}" y="${(yC + yU) / 2 - 12}">${esc(r.id)}</text>`;
  }
  svg += `<text x="${L}" y="${H - 8}">${esc(new Date(t0).toLocaleString())}</text><text x="${W - R - 140}" y="${H - 8}">${esc(new Date(t1).toLocaleString())}</text></svg>`;
  box.innerHTML = svg;
}

// ---- diff -------------------------------------------------------------------------

async function drawDiff(a, b) {
  const box = $("#diff");
  if (!a || !b) { box.innerHTML = `<p class="hint">Pick two programs (or two connections: conn=c1) to compare, or tick A and B in Clients × hosts.</p>`; return; }
  let d;
  try { d = await api(`/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`); }
  catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; return; }
  const side = (s) => `${esc(s.selector || s.name)} — ${s.conns} connection${s.conns === 1 ? "" : "s"}${s.programs?.length ? ` of ${esc(s.programs.join(", "))}` : ""}`;
  let html = `<table id="diff-table"><thead><tr><th></th><th>A: ${side(d.a)}</th><th>B: ${side(d.b)}</th><th>what it means for resumption</th></tr></thead><tbody>`;
  let section = "";
  for (const row of d.rows) {
    if (row.section !== section) { section = row.section; html += `<tr class="section"><td colspan="4">${esc(section)}</td></tr>`; }
    html += `<tr class="${row.differs ? "differs" : "same"}" data-field="${esc(row.field)}"><td>${esc(row.field)}</td><td>${esc(row.a)}</td><td>${esc(row.b)}</td><td class="meaning">${esc(row.meaning || "")}</td></tr>`;
  }
  box.innerHTML = html + `</tbody></table>`;
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
  if (name === "timeline") { fillPairs(q.get("program") ? q.get("program") + SEP + q.get("host") : ""); drawTimeline(); }
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
  window.addEventListener("resize", () => { state.dirty = true; requestAnimationFrame(draw); });
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
  $("#timeline-pick").addEventListener("change", drawTimeline);
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
