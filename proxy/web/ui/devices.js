// The WireGuard device page: one card per device with its QR code, its
// .conf and its counters, refreshed every few seconds. The page never holds
// a private key: the QR code is an image and the .conf a download, both
// fetched from the API by the browser.

const REFRESH_MS = 2000;
const ACTIVE_MS = 180000; // a device in use hands shake at least every two minutes

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

// ageText: "never", "12 s ago", "4 min ago", "3 h ago", "2 d ago".
function ageText(ms) {
  if (ms == null) return "never";
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function bytesText(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${n ?? 0} B`;
}

const peerQuery = (name) => `peer=${encodeURIComponent(name)}`;

// card makes a device's card once; update fills its counters at each refresh
// (the QR code is not fetched again).
function card(d) {
  const el = document.createElement("article");
  el.className = "device";
  el.dataset.device = d.name;
  const conf = `${d.name}.conf`;
  el.innerHTML = `
    <figure class="qr">
      <img alt="QR code of ${esc(d.name)}'s WireGuard configuration" src="/api/wireguard/qr?${esc(peerQuery(d.name))}">
      <figcaption class="err" hidden></figcaption>
    </figure>
    <div class="about">
      <h3>${esc(d.name)} <span class="state" data-f="state"></span></h3>
      <dl>
        <dt>tunnel addresses</dt><dd>${esc(d.ipv4)}, ${esc(d.ipv6)}</dd>
        <dt>public key</dt><dd><code>${esc(d.public_key)}</code></dd>
        <dt>last handshake</dt><dd data-f="handshake"></dd>
        <dt>reached from</dt><dd data-f="seen"></dd>
        <dt>received / sent</dt><dd data-f="bytes"></dd>
        <dt>TCP connections</dt><dd data-f="tcp"></dd>
        <dt>UDP flows</dt><dd data-f="udp"></dd>
        <dt>DNS queries</dt><dd data-f="dns"></dd>
        <dt>refused</dt><dd data-f="refused"></dd>
      </dl>
      <a class="button conf" href="/api/wireguard/config?${esc(peerQuery(d.name))}" download="${esc(conf)}">Download ${esc(conf)}</a>
    </div>`;
  const img = el.querySelector("img");
  img.addEventListener("error", async () => {
    // The image's answer is JSON when it fails; ask again for its words.
    const cap = el.querySelector("figcaption");
    cap.textContent = await fetch(img.src, { credentials: "same-origin" }).then((r) => r.json()).then((b) => b.error).catch(() => "") || "no QR code";
    cap.hidden = false;
    img.hidden = true;
  });
  img.addEventListener("load", () => {
    // 8 pixels a module in the PNG: half of it keeps every module whole
    // (and a device pixel each on a 2x screen).
    img.width = img.naturalWidth / 2;
    el.dataset.qr = "loaded";
  });
  return el;
}

function update(el, d) {
  const set = (f, text) => { el.querySelector(`[data-f=${f}]`).textContent = text; };
  const age = d.handshake_age_ms;
  const active = age != null && age < ACTIVE_MS;
  const state = el.querySelector("[data-f=state]");
  state.textContent = age == null ? "never connected" : active ? "connected" : "idle";
  state.className = `state ${age == null ? "never" : active ? "on" : "idle"}`;
  set("handshake", ageText(age));
  el.querySelector("[data-f=handshake]").title = d.last_handshake ? new Date(d.last_handshake).toLocaleString() : "no handshake since tlsresume started";
  set("seen", d.seen || "–");
  set("bytes", `${bytesText(d.rx_bytes)} / ${bytesText(d.tx_bytes)}`);
  set("tcp", `${d.tcp_connections}${d.active_tcp ? ` (${d.active_tcp} open)` : ""}`);
  set("udp", `QUIC ${d.quic_flows} · other ${d.other_udp_flows}${d.active_udp ? ` (${d.active_udp} open)` : ""}`);
  set("dns", String(d.dns_queries));
  set("refused", `TCP ${d.refused_tcp} · UDP ${d.refused_udp}`);
  el.dataset.handshake = age == null ? "never" : "yes";
}

function drawEndpoint(w) {
  const p = $("#wg-endpoint");
  if (w.endpoint_error) {
    p.className = "err";
    p.textContent = `No endpoint for the configurations: ${w.endpoint_error}`;
    return;
  }
  p.className = "hint";
  p.innerHTML = `Devices reach this laptop at <code>${esc(w.endpoint)}</code> (UDP; <code>--wireguard-endpoint</code> changes it).`;
}

async function refresh() {
  try {
    const w = await api("/api/wireguard/devices");
    drawEndpoint(w);
    const list = $("#wg-list");
    for (const d of w.devices) {
      let el = list.querySelector(`.device[data-device="${CSS.escape(d.name)}"]`);
      if (!el) list.append(el = card(d));
      update(el, d);
    }
    $("#status").textContent = "";
    $("#status").classList.remove("bad");
  } catch (e) {
    $("#status").textContent = e.message;
    $("#status").classList.add("bad");
  }
  document.body.dataset.loaded = "1";
}

// addDevice asks the proxy to serve one more device (POST
// /api/wireguard/devices) and shows its card, QR code and all, at once.
async function addDevice(ev) {
  ev.preventDefault();
  const input = $("#wg-add-name");
  const msg = $("#wg-add-msg");
  const name = input.value.trim();
  try {
    const res = await fetch("/api/wireguard/devices", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
    input.value = "";
    msg.className = "hint";
    msg.textContent = `Added ${name}: scan its code below on that device.`;
    await refresh();
    document.querySelector(`.device[data-device="${CSS.escape(name)}"]`)?.scrollIntoView({ block: "nearest" });
  } catch (e) {
    msg.className = "err";
    msg.textContent = e.message;
  }
}

$("#wg-add").addEventListener("submit", addDevice);
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
