// One connection in detail: detailHTML renders the answer of /api/conn
// (connDetail in detail.go). Names of groups and versions come from the
// server, which names them as the reports and the diff do.

import { esc, timeText, dateText, msText, ageText, bytesText, connLink, captureWords } from "./util.js";

const KEY_EXTS = new Set([35, 41, 42, 45]); // session_ticket, pre_shared_key, early_data, psk_key_exchange_modes
const isGrease = (v) => (v & 0x0f0f) === 0x0a0a && (v >> 8) === (v & 0xff);
const modesName = (m) => (m == null ? "absent" : m.length === 0 ? "empty" : m.map((x) => ({ 0: "psk_ke", 1: "psk_dhe_ke" }[x] ?? x)).join(", "));
const f = (k, v) => `<div>${k}</div><div>${v}</div>`;

// titleHTML is the panel's title line.
export function titleHTML(d) {
  const rec = d.record;
  const who = rec.device ? `${rec.device} (${rec.client_addr})` : rec.client_addr;
  return `${esc(rec.id)} · ${esc(d.program)} (${esc(who)}) → ${esc(d.host)} · ${esc(timeText(rec.time, true))} · ${esc(rec.source)}${d.open ? " · open" : ""}`;
}

export function detailHTML(d) {
  const rec = d.record;
  const back = d.returned?.length ? `<p>Its tickets came back on ${d.returned.map((x) => connLink(x.id, x.seq) + (x.leg === "upstream" ? " (upstream)" : "")).join(", ")}.</p>` : "";
  return verdictHTML(d) +
    (rec.passthrough ? `<p>Passed through: ${esc(rec.passthrough)}</p>` : "") +
    (rec.error ? `<p class="err">${esc(rec.error)}</p>` : "") +
    back + whereHTML(d) +
    (rec.client_leg || rec.upstream_leg ? legsHTML(rec, d) : "") +
    requestsHTML(rec) + certificateHTML(rec.upstream_leg?.certificate) +
    quicHTML(rec, d.transport_parameters) + helloHTML(rec.client_hello, d.extensions || [], d.names) +
    serverHelloHTML(rec.passthrough || rec.source === "pcap" ? rec.server_hello : null, rec.source, d.names) + mirroredHTML(rec.mirrored, d.mirror_seq) +
    `<p class="hint">${rec.user_agent ? `User-Agent: ${esc(rec.user_agent)}. ` : ""}${bytesText(rec.bytes_up)} bytes up, ${bytesText(rec.bytes_down)} down, ${esc(msText(rec.duration_ms))}.</p>`;
}

// verdictHTML: the verdict and its sentence; on a failed connection what
// fixes it, set apart so that it is the first thing read.
function verdictHTML(d) {
  const rec = d.record, v = rec.verdict;
  if (!v?.code) {
    const shown = rec.source === "pcap" && d.capture ? `<span class="v fam-${esc(d.family)}" id="detail-verdict">${esc(captureWords(d.capture))}</span> ` : "";
    return `<div class="verdict-text">${d.open ? "still open" : shown + esc(d.explain || "")}</div>`;
  }
  const fix = v.fix ? `<div class="fix" id="detail-fix"><strong>How to fix it</strong> ${esc(v.fix)}</div>` : "";
  return `<div class="verdict-text"><span class="v fam-${esc(d.family)}" id="detail-verdict">${esc(v.code)}</span> ${esc(v.text)}</div>${fix}`;
}

// whereHTML: who the client was and where it went, where the record says
// more than the title (a WireGuard device, the name it looked up, an
// alert, the program its JA4 likely is).
function whereHTML(d) {
  const rec = d.record, rows = [];
  if (rec.device) rows.push(f("device", `${esc(rec.device)} <span class="hint">(WireGuard)</span>`));
  if (rec.dns_name) rows.push(f("looked up", `<code>${esc(rec.dns_name)}</code> <span class="hint">(the device's DNS answer held this address)</span>`));
  if (rec.target && rec.target !== d.host) rows.push(f("target", `<code>${esc(rec.target)}</code>`));
  if (d.likely) rows.push(f("program", `${esc(d.program)} — <span class="likely">${esc(d.likely)}</span>`));
  if (rec.client_alert) {
    const cert = /^(unknown_ca|bad_certificate|unsupported_certificate|certificate_\w+)$/.test(rec.client_alert);
    rows.push(f("client's alert", `<span class="err">${esc(rec.client_alert)}</span> <span class="hint">(it ended the handshake with it${cert ? ": it rejected the certificate" : ""})</span>`));
  }
  return rows.length ? `<div class="facts where">${rows.join("")}</div>` : "";
}

function legsHTML(rec, d) {
  const c = rec.client_leg, u = rec.upstream_leg;
  const line = (name, a, b) => `<div class="lh">${name}</div><div>${a ?? ""}</div><div>${b ?? ""}</div>`;
  const yn = (v) => (v === undefined || v === null ? "" : v ? `<span class="yes">yes</span>` : `<span class="no">no</span>`);
  const lin = (id, seq, age) => (id ? `${connLink(id, seq)}, ${esc(ageText(age))} old` : "");
  return `<div class="legs" id="legs">
    <div class="lh"></div><div class="lh">client ↔ tlsresume</div><div class="lh">tlsresume ↔ origin</div>
    ${line("version", esc(c?.version), esc(u?.version))}
    ${line("cipher suite", esc(c?.cipher_suite), esc(u?.cipher_suite))}
    ${line("ALPN", c ? esc(c.alpn || "none") : "", u ? esc(u.alpn || "none") : "")}
    ${line("resumed", `<span data-leg="client">${yn(c?.resumed)}</span>`, `<span data-leg="upstream">${yn(u?.resumed)}</span>`)}
    ${line("tickets", c ? `${c.tickets_sent} sent` : "", u ? `${u.tickets_received} received` : "")}
    ${line("resumption", c ? `ticket: ${esc(c.ticket)}` : "", u ? `cache: ${esc(u.cache || "not asked")}, offered ${esc(u.offered)}` : "")}
    ${line("lineage", c ? `ticket from ${lin(c.ticket_from, d.ticket_seq, c.ticket_age_ms) || "–"}` : "", u ? `session from ${lin(u.session_from, d.session_seq, u.session_age_ms) || "–"}` : "")}
    ${line("handshake", c ? `<span data-ms="client">${esc(msText(c.handshake_ms))}</span>` : "", u ? `<span data-ms="upstream">${esc(msText(u.handshake_ms))}</span>${u.extra_handshakes ? ` (+${u.extra_handshakes} more connections)` : ""}` : "")}
    ${line("address", esc(rec.client_addr), u ? `${esc(u.addr)}${u.remote_addr && u.remote_addr !== u.addr ? ` → ${esc(u.remote_addr)}` : ""}` : "")}
    ${line("verified", "", u ? (u.verified ? "yes" : `<span class="err">no</span>`) + (u.insecure ? " (--insecure-upstream)" : "") : "")}
    ${u?.probe ? line("probe", "", "made for interception before tlsresume learned this client must be passed through: the origin and the upstream cache saw it; the client's own bytes then went to the origin on a new connection") : ""}
    ${u?.pooled ? line("pooled", "", `no handshake of its own at first (--upstream-reuse pool)${u.reused_conn ? `; its first request went on ${esc(u.reused_conn)}'s connection` : ""}`) : ""}
    ${c?.error || u?.error ? line("error", `<span class="err">${esc(c?.error)}</span>`, `<span class="err">${esc(u?.error)}</span>`) : ""}
    ${c?.stream_error || u?.stream_error ? line("after the handshake", `<span class="err">${esc(c?.stream_error)}</span>`, `<span class="err">${esc(u?.stream_error)}</span>`) : ""}
    ${c?.alert || c?.closed_after_certificate ? line("alert", esc(c.alert) + (c.closed_after_certificate ? "closed right after our certificate" : ""), "") : ""}
  </div>`;
}

// requestsHTML: the connection's first requests (the record keeps 20) as
// a small table.
function requestsHTML(rec) {
  const rs = rec.requests || [];
  if (!rs.length) return "";
  const n = rec.request_count || rs.length;
  const head = n > rs.length ? `the first ${rs.length} of ${n}` : `${n}`;
  return `<h3>Requests (${head})</h3><table class="narrow" id="requests"><thead><tr><th>method</th><th>authority</th><th>path</th><th class="num">status</th><th class="num">bytes</th><th class="num">ms</th></tr></thead><tbody>${rs.map((r) =>
    `<tr><td>${esc(r.method)}</td><td>${esc(r.authority)}</td><td class="path">${esc(r.path)}</td><td class="num${r.status >= 400 || !r.status ? " err" : ""}">${r.status || "none"}</td><td class="num">${bytesText(r.bytes)}</td><td class="num">${esc(msText(r.ms).replace(" ms", ""))}</td></tr>`).join("")}</tbody></table>`;
}

// certificateHTML: the origin's certificate, as the upstream leg saw it.
function certificateHTML(c) {
  if (!c) return "";
  const now = Date.now(), after = Date.parse(c.not_after), before = Date.parse(c.not_before);
  const left = now > after ? `<span class="err">expired ${esc(ageText(now - after))} ago</span>` : now < before ? `<span class="err">not valid yet</span>` : `${esc(ageText(after - now))} left`;
  return `<h3>The origin's certificate</h3><div class="facts" id="cert">
    ${f("subject", `<code>${esc(c.subject)}</code>`)}
    ${f("issuer", `<code>${esc(c.issuer)}</code>`)}
    ${f("names", esc((c.names || []).join(", ")) || "none")}
    ${f("valid", `${esc(dateText(c.not_before))} to ${esc(dateText(c.not_after))} (${left})`)}
    ${f("chain", `${c.chain_len} certificate${c.chain_len === 1 ? "" : "s"} sent`)}
    ${f("verified", c.verified ? `<span class="yes">yes</span>` : `<span class="err">no</span>${c.verify_error ? `: ${esc(c.verify_error)}` : ""}`)}
  </div>`;
}

// offers12: the hello offers TLS 1.2 (or lower), where session_ticket matters.
const offers12 = (ch) => !ch.supported_versions?.length || ch.supported_versions.some((v) => !isGrease(v) && v <= 0x0303);

function helloHTML(ch, exts, names) {
  if (!ch) return "";
  const st = ch.session_ticket;
  const psk = ch.pre_shared_key;
  const chips = exts.map((e) => `<span class="ext${e.grease ? " grease" : ""}${KEY_EXTS.has(e.type) ? " key" : ""}" title="${e.type}">${esc(e.grease ? "GREASE" : e.name)}</span>`).join("");
  const list = (vs) => `<span class="names">${(vs || []).map((n) => `<span>${esc(n)}</span>`).join(", ")}</span>`;
  return `<h3>ClientHello</h3><div class="facts" id="hello">
    ${f("attempt", `<b>${esc(ch.attempt)}</b>`)}
    ${f("session_ticket", !st.offered ? (offers12(ch) ? "absent (over TLS 1.2: can resume only by session ID)" : "absent (TLS 1.3 only: its tickets come in NewSessionTicket messages)") : st.len === 0 ? "present, empty: asks for a ticket" : `carries a ${st.len}-byte ticket`)}
    ${f("pre_shared_key", !psk.offered ? "absent" : psk.identities.map((i) => `${i.len}-byte identity, obfuscated age ${i.obfuscated_ticket_age}`).join("; ") + ` (${psk.binders} binder${psk.binders === 1 ? "" : "s"})`)}
    ${f("psk_key_exchange_modes", esc(modesName(ch.psk_key_exchange_modes)))}
    ${f("early_data", ch.early_data ? "offered (0-RTT)" : "no")}
    ${f("legacy session ID", ch.session_id_len ? `${ch.session_id_len} bytes <code>${esc(ch.session_id)}</code>` : "empty")}
    ${f("versions", list(names?.versions))}
    ${f("ALPN", esc((ch.alpn || []).join(", ")) || "none")}
    ${f("groups", `<span id="groups">${list(names?.groups)}</span>`)}
    ${f("key shares", list(names?.key_shares))}
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

function serverHelloHTML(sh, source, names) {
  if (!sh) return "";
  return `<h3>ServerHello (the real server's, ${source === "pcap" ? "from the capture" : "passed through"})</h3><div class="facts">
    ${f("version", esc(names?.server_version || sh.version))}
    ${f("resumed", sh.complete ? (sh.resumed ? `yes, by ${esc(sh.resumed_by)}` : "no") : "not seen")}
    ${f("HelloRetryRequest", sh.hrr ? "yes" : "no")}
    ${f("selected PSK", sh.selected_psk ?? "none")}
    ${f("session ID", `${sh.session_id_len} bytes`)}</div>`;
}

function mirroredHTML(m, fromSeq) {
  if (!m) return "";
  return `<h3>Mirrored from the origin</h3><div class="facts">
    ${f("highest version", esc(m.max_version))}
    ${f("ALPN offered", esc((m.alpn || []).join(", ")) || "none")}
    ${f("tickets", m.tickets ? "issued" : "none issued")}
    ${f("leaf names", esc((m.names || []).join(", ")))}
    ${m.overrides?.length ? f("overridden by flags", esc(m.overrides.join(", "))) : ""}
    ${m.from ? f("answered early", `like ${connLink(m.from, fromSeq)}, while this connection's own upstream handshake ran${m.mismatch?.length ? `; it then answered differently: <span class="err">${esc(m.mismatch.join(", "))}</span>` : ""}`) : ""}</div>`;
}
