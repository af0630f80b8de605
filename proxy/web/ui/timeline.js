// The timeline: one program's connections to one host (or to all its
// hosts), one lane each, in the order they opened. A lane has the
// connection's label, its two legs (client, upstream) and a bar from
// open to close on a time axis; arcs join a connection to the one whose
// ticket (client leg) or session (upstream) it brought back. Labels sit
// in lanes of their own, so connections milliseconds apart never overlap;
// connections that open within BURST_GAP of each other make a burst,
// which the chart can zoom to.

import { esc, timeText, dayText, ageText, msText, captureWords } from "./util.js";

// A program × host pair as one string (an option's value): hosts hold no "×".
export const SEP = " × ";
export const ALL_HOSTS = "*";
export const splitPair = (k) => { const i = k.lastIndexOf(SEP); return [k.slice(0, i), k.slice(i + SEP.length)]; };

const BURST_GAP = 2000; // ms: a page load opens its connections within a second or two
const MAX_ROWS = 300;   // lanes drawn at most: the newest, unless zoomed to a burst
const LANE = 22;        // px per lane
const HEAD = 44;        // px above the first lane: the time axis and the column heads
const FONT = `11px system-ui, -apple-system, "Segoe UI", sans-serif`; // as #timeline svg text
// Apple's TLS session cache keeps a session some 10 minutes (Technical Q&A
// QA1727): a longer gap between bursts is marked.
const APPLE_CACHE_MS = 10 * 60 * 1000;

// zoom holds, per pair, the first seq of the burst shown (0: all).
const zoom = new Map();
export const zoomTo = (key, seq) => zoom.set(key, seq || 0);

// pairOptions lists the pairs of rows, commonest program first; a program
// seen with more than one host gets an "all hosts" pair first.
export function pairOptions(rows) {
  const byProgram = new Map();
  for (const r of rows) {
    let p = byProgram.get(r.program);
    if (!p) byProgram.set(r.program, (p = { n: 0, hosts: new Map() }));
    p.n++;
    p.hosts.set(r.host, (p.hosts.get(r.host) || 0) + 1);
  }
  const out = [];
  for (const [program, p] of [...byProgram.entries()].sort((a, b) => b[1].n - a[1].n)) {
    if (p.hosts.size > 1) out.push({ key: program + SEP + ALL_HOSTS, label: `${program} × all hosts`, n: p.n });
    for (const [host, n] of [...p.hosts.entries()].sort((a, b) => b[1] - a[1])) out.push({ key: program + SEP + host, label: program + SEP + host, n });
  }
  return out;
}

export function pairRows(rows, key) {
  const [program, host] = splitPair(key);
  return rows.filter((r) => r.program === program && (host === ALL_HOSTS || r.host === host));
}

// bursts splits rows, in time order, where a connection opened more than
// BURST_GAP after the one before.
function bursts(rows) {
  const out = [];
  let cur = null;
  for (const r of rows) {
    if (!cur || r.t - cur.last > BURST_GAP) out.push((cur = { first: r.seq, start: r.t, last: r.t, end: r.t, rows: [] }));
    cur.rows.push(r);
    cur.last = r.t;
    cur.end = Math.max(cur.end, r.t + r.dur);
  }
  return out;
}

const burstText = (b) => `${timeText(b.start)} · ${b.rows.length} connection${b.rows.length === 1 ? "" : "s"}${b.rows.length > 1 ? ` in ${ageText(b.last - b.start)}` : ""}`;

let canvas;
function textWidth(s) {
  canvas ||= document.createElement("canvas").getContext("2d");
  canvas.font = FONT;
  return canvas.measureText(s).width;
}

// fit cuts s to at most w pixels, ending it with "…".
function fit(s, w) {
  if (textWidth(s) <= w) return s;
  while (s.length > 1 && textWidth(s + "…") > w) s = s.slice(0, -1);
  return s + "…";
}

// ticks: times on the axis from t0 to t1, at most one per 120 px, each on
// a round step of local time.
const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3,
  3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3, 7 * 86400e3];
function ticks(t0, t1, px) {
  const most = Math.max(2, Math.floor(px / 120));
  const step = STEPS.find((s) => (t1 - t0) / s <= most) || STEPS[STEPS.length - 1];
  const off = -new Date(t0).getTimezoneOffset() * 60e3; // local midnight, for steps of hours
  const out = [];
  for (let t = Math.ceil((t0 + off) / step) * step - off; t <= t1; t += step) out.push(t);
  return { step, ticks: out };
}

// drawTimeline draws rows (the pair key's) into box and fills the form's
// burst picker.
export function drawTimeline(box, form, key, allRows) {
  if (!key) { box.innerHTML = `<p class="hint">No connections yet.</p>`; form.burst.innerHTML = ""; return; }
  const rows = pairRows(allRows, key).map((r) => ({ r, seq: r.seq, t: Date.parse(r.time), dur: r.open ? Math.max(0, Date.now() - Date.parse(r.time)) : r.duration_ms || 0 }));
  rows.sort((a, b) => a.t - b.t || a.seq - b.seq);
  const bs = bursts(rows);
  let z = zoom.get(key) || 0;
  const zoomed = bs.find((b) => b.first === z);
  if (!zoomed) z = 0;
  form.burst.innerHTML = `<option value="0">all ${rows.length} connection${rows.length === 1 ? "" : "s"}${bs.length > 1 ? `, ${bs.length} bursts` : ""}</option>` +
    bs.slice(-200).map((b) => `<option value="${b.first}">${esc(burstText(b))}</option>`).join("");
  form.burst.value = String(z);
  form.burst.disabled = bs.length < 2 && !zoomed;
  let shown = zoomed ? [zoomed] : bs, cut = 0;
  if (!zoomed) {
    // The newest MAX_ROWS connections, by whole bursts where they fit.
    let n = 0, i = bs.length;
    while (i > 0 && n + bs[i - 1].rows.length <= MAX_ROWS) n += bs[--i].rows.length;
    if (i === bs.length) { i--; n = bs[i].rows.length; }
    shown = bs.slice(i);
    cut = rows.length - n;
  }
  box.innerHTML = svgOf(shown, key, Math.max(box.clientWidth - 2, 640), !zoomed && shown.length > 1) +
    (cut ? `<p class="hint">The ${cut} earlier connections are left out: pick a burst above to see them.</p>` : "");
  box.onclick = (e) => {
    const a = e.target.closest("[data-burst]");
    if (!a) return;
    e.preventDefault();
    zoom.set(key, Number(a.dataset.burst));
    drawTimeline(box, form, key, allRows);
  };
}

// lanes lays out the bursts: a header lane before each burst when there
// are several, then one lane per connection.
function lanes(bs, headers) {
  const out = [];
  bs.forEach((b, i) => {
    if (headers) out.push({ burst: b, gap: i > 0 ? b.start - bs[i - 1].last : 0 });
    for (const c of b.rows) out.push({ c });
  });
  return out;
}

function svgOf(bs, key, W, headers) {
  const allHosts = splitPair(key)[1] === ALL_HOSTS;
  const items = lanes(bs, headers);
  const conns = items.filter((it) => it.c).map((it) => it.c);
  const label = (c) => `${c.r.id}  ${timeText(c.t, true)}${allHosts ? `  ${c.r.host}` : ""}`;
  const gutter = Math.min(Math.max(...conns.map((c) => textWidth(label(c))), textWidth("0000-00-00")) + 16, W * 0.4);
  const cxC = gutter + 26, cxU = gutter + 80, x0 = gutter + 124, x1 = W - 16;
  let t0 = Math.min(...bs.map((b) => b.start)), t1 = Math.max(...bs.map((b) => b.end));
  const pad = Math.max((t1 - t0) * 0.03, 1);
  t0 -= pad; t1 += pad;
  const x = (t) => x0 + ((t - t0) / (t1 - t0)) * (x1 - x0);
  const H = HEAD + items.length * LANE + 8;
  const y = new Map();
  items.forEach((it, i) => { if (it.c) y.set(it.c.seq, HEAD + i * LANE + LANE / 2); });

  const { step, ticks: ts } = ticks(t0, t1, x1 - x0);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="timeline of ${esc(key)}">
    <defs>${["client", "upstream"].map((leg) => `<marker id="head-${leg}" class="${leg}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>`).join("")}</defs>
    <text class="head" x="8" y="16">${esc(dayText(new Date(t0 + pad)))}</text>
    <text class="head" x="${cxC}" y="36" text-anchor="middle">client</text><text class="head" x="${cxU}" y="36" text-anchor="middle">upstream</text>`;
  for (const t of ts) {
    const tx = x(t), text = timeText(t, step < 1000);
    svg += `<line class="grid" x1="${tx}" y1="22" x2="${tx}" y2="${H - 4}"/>`;
    if (tx + 3 + textWidth(text) <= W) svg += `<text class="tick" x="${tx + 3}" y="16">${esc(text)}</text>`;
  }
  // Arcs first: the lanes' texts are drawn over them.
  for (const c of conns) svg += arcs(c.r, y, cxC, cxU);
  items.forEach((it, i) => {
    const ly = HEAD + i * LANE + LANE / 2;
    if (it.burst) svg += burstLane(it, ly, x);
    else svg += connLane(it.c, ly, label(it.c), gutter, cxC, cxU, x);
  });
  return svg + `</svg>`;
}

function burstLane({ burst: b, gap }, ly, x) {
  const long = gap >= APPLE_CACHE_MS;
  const after = gap ? ` · ${ageText(gap)} after the one before${long ? " (past Apple's ~10-minute session cache)" : ""}` : "";
  return `<rect class="band" x="${x(b.start)}" y="${ly - LANE / 2 + 2}" width="${Math.max(2, x(b.end) - x(b.start))}" height="${LANE - 4}"/>` +
    `<a href="#" data-burst="${b.first}"><text class="burst${long ? " gap" : ""}" x="8" y="${ly + 4}">${esc(burstText(b) + after)} <tspan class="zoom">zoom in</tspan></text></a>`;
}

const legClass = (resumed, err, open) => (open ? "open" : err ? "failed" : resumed === undefined ? "none" : resumed ? "resumed" : "full");

function connLane(c, ly, text, gutter, cxC, cxU, x) {
  const r = c.r;
  const outcome = r.verdict || (r.capture ? captureWords(r.capture) : r.open ? "open" : "");
  const tip = `${r.id} ${timeText(c.t, true)} → ${r.host}: ${outcome}${r.open ? "" : `, ${msText(r.duration_ms)}`}`;
  const up = r.capture ? "none" : r.passthrough ? "none" : legClass(r.up_resumed, r.up_error, r.open);
  const bx = x(c.t), bw = Math.max(3, x(c.t + c.dur) - bx);
  return `<a href="#conn=${r.seq}"><text class="label" data-seq="${r.seq}" x="8" y="${ly + 4}">${esc(fit(text, gutter - 12))}<title>${esc(tip)}</title></text></a>` +
    `<a href="#conn=${r.seq}"><circle class="conn ${legClass(r.resumed, r.client_error, r.open)}" data-seq="${r.seq}" data-leg="client" cx="${cxC}" cy="${ly}" r="5"><title>${esc(legTip(r, "client"))}</title></circle></a>` +
    `<a href="#conn=${r.seq}"><circle class="conn ${up}" data-seq="${r.seq}" data-leg="upstream" cx="${cxU}" cy="${ly}" r="5"><title>${esc(legTip(r, "upstream"))}</title></circle></a>` +
    `<a href="#conn=${r.seq}"><rect class="bar fam-${esc(r.family || (r.open ? "open" : "first"))}${r.open ? " open" : ""}" data-seq="${r.seq}" x="${bx}" y="${ly - 4}" width="${bw}" height="8"><title>${esc(tip)}</title></rect></a>`;
}

function legTip(r, leg) {
  if (r.open) return `${r.id}: still open`;
  if (leg === "client") {
    if (r.client_error) return `${r.id}: client leg failed: ${r.client_error}`;
    if (r.capture) return `${r.id}: ${captureWords(r.capture)} (from the capture)`;
    return `${r.id}: client ${r.resumed ? `resumed${r.ticket_from ? ` with the ticket ${r.ticket_from} issued (${ageText(r.ticket_age_ms)} old)` : ""}` : "full handshake"}`;
  }
  if (r.capture) return `${r.id}: no upstream leg (read from a capture)`;
  if (r.passthrough) return `${r.id}: passed through, no upstream handshake of tlsresume's`;
  if (r.up_error) return `${r.id}: upstream failed: ${r.up_error}`;
  return `${r.id}: upstream ${r.up_resumed ? `resumed${r.session_from ? ` the session of ${r.session_from}` : ""}` : "full handshake"}`;
}

// arcs joins r to the connections whose ticket (client) and session
// (upstream) it brought back, when they are drawn: client arcs bend left
// of the client column, upstream arcs right of the upstream column.
function arcs(r, y, cxC, cxU) {
  let s = "";
  const arc = (from, leg, cx, dir, title) => {
    const yf = y.get(from), yt = y.get(r.seq);
    if (yf === undefined || yt === undefined) return;
    const b = Math.min(20, 6 + Math.abs(yt - yf) / 6), sx = cx + dir * 7;
    s += `<path class="lineage${leg === "upstream" ? " up" : ""}" data-from="${from}" data-to="${r.seq}" data-leg="${leg}" d="M${sx},${yf} C${sx + dir * b},${yf} ${sx + dir * b},${yt} ${sx},${yt}" marker-end="url(#head-${leg})"><title>${esc(title)}</title></path>`;
  };
  if (r.ticket_seq) arc(r.ticket_seq, "client", cxC, -1, `${r.id} brought back the ticket ${r.ticket_from} issued (${ageText(r.ticket_age_ms)} old)`);
  if (r.session_seq) arc(r.session_seq, "upstream", cxU, 1, `tlsresume reused the session of ${r.session_from} for ${r.id}`);
  return s;
}
