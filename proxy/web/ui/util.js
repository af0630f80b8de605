// What every part of the page shares: escaping, the API, and the one way
// each kind of value is written (times, ages, milliseconds, bytes).

export const $ = (sel) => document.querySelector(sel);

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

export async function api(path, opts) {
  const res = await fetch(path, { credentials: "same-origin", ...opts });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// timeText is the page's clock: local time, 24-hour, "01:09:27", and with
// withMS "01:09:27.412". Every time on the page is written by it (or by
// dateText), whatever the browser's locale.
export function timeText(t, withMS = false) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return "";
  const s = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMS ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
}

// dateText is a day and timeText: "2026-07-12 01:09:27".
export function dateText(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return "";
  return `${dayText(d)} ${timeText(d)}`;
}

export const dayText = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

// msText writes milliseconds as records keep them, to the microsecond at
// most: 2.103 ms, never 2.1029999999999998.
export const msText = (v) => (v == null ? "" : `${+Number(v).toFixed(3)} ms`);

// ageText writes a duration in the unit that reads best: 850ms, 4.2s,
// 12m30s, 3h05m, 2d4h.
export function ageText(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${pad(Math.floor(s % 60))}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export const bytesText = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)}M` : n >= 1024 ? `${(n / 1024).toFixed(1)}k` : String(n ?? 0));

export const connLink = (id, seq) => (seq ? `<a href="#conn=${seq}" data-seq="${seq}">${esc(id)}</a>` : esc(id));

// captureWords says what a capture shows of a connection (row.capture,
// from captureOutcome in rows.go).
const CAPTURE = {
  resumed_psk: "resumed by PSK", resumed_ticket: "resumed by ticket", resumed_session_id: "resumed by session ID", resumed: "resumed",
  refused_psk: "PSK refused", refused_ticket: "ticket refused", refused_session_id: "session ID refused",
  full: "full handshake", hello_retry: "HelloRetryRequest", not_seen: "answer not seen", no_hello: "no hello",
};
export const captureWords = (key) => CAPTURE[key] || key;
