// The report's views: clients × hosts (summaryHTML, the rows of
// /api/summary) and the diff of two sets (diffHTML, /api/diff's answer).

import { esc } from "./util.js";
import { SEP } from "./timeline.js";

const countWords = (m) => Object.entries(m || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");

// reasonClass colours a reason: resumed, nothing to resume yet, or what
// stood in the way.
function reasonClass(r) {
  if (r.leg === "upstream") return "why-upstream";
  if (r.key === "resumed" || r.key.startsWith("resumed_")) return "why-resumed";
  if (r.key === "nothing_to_resume" || r.key === "first_connection") return "why-none";
  return "why-problem";
}

// reasonsHTML: one line per reason, its count first ("10 of 27 offered
// nothing although …"), the verdict code it comes from after it; the
// upstream leg's reasons after the client's.
function reasonsHTML(s) {
  const rs = s.why_not_reasons || [];
  if (!rs.length) return esc(s.why_not || "");
  const count = (n) => (n === s.conns ? (n === 1 ? "the one connection" : `all ${n}`) : `${n} of ${s.conns}`);
  return `<ul class="reasons">${rs.map((r) =>
    `<li class="${reasonClass(r)}" data-key="${esc(r.key)}" data-leg="${esc(r.leg)}">${r.leg === "upstream" ? `<span class="leg">upstream</span> ` : ""}` +
    `<b class="count">${esc(count(r.conns))}</b> ${esc(r.words)}${r.code ? ` <code class="code">${esc(r.code)}</code>` : ""}</li>`).join("")}</ul>`;
}

// programHTML: the program, and where no User-Agent named it, the program
// its JA4 likely comes from, marked as the JA4 table's guess.
function programHTML(s) {
  const likely = !s.by_user_agent && s.likely_program ? `<div class="likely" title="a likely match by the hello's JA4, not a fact">${esc(s.likely_program)}</div>` : "";
  return `${esc(s.program)}${likely}`;
}

export function summaryHTML(rows) {
  return rows.map((s, i) => {
    const sel = `program=${s.program},host=${s.host},transport=${s.transport}`;
    return `<tr data-i="${i}" data-host="${esc(s.host)}"><td><input type="radio" name="pick-a" value="${esc(sel)}"></td><td><input type="radio" name="pick-b" value="${esc(sel)}"></td>
      <td>${s.device ? `${esc(s.device)} <span class="hint">(${esc(s.client)})</span>` : esc(s.client)}</td><td class="program">${programHTML(s)}</td><td class="host">${esc(s.host)}</td><td>${esc(s.transport)}</td><td class="num">${s.conns}</td><td>${esc(countWords(s.offered))}</td>
      <td class="num">${s.resumed}/${s.conns}</td><td class="num">${s.upstream_resumed == null ? "–" : `${s.upstream_resumed}/${s.conns}`}</td>
      <td class="why" title="${esc(s.why_not || "")}">${reasonsHTML(s)}</td>
      <td class="links"><a href="#conns" data-program="${esc(s.program)}" data-host="${esc(s.host)}">connections</a> · <a href="#timeline" data-pair="${esc(s.program + SEP + s.host)}">timeline</a></td></tr>`;
  }).join("");
}

const SECTIONS = { resumption: "What happened: resumption", hello: "What the ClientHellos offered" };

// diffHTML: resumption rows first, then the hellos', each difference
// marked ≠ with what it means; the fingerprint rows (groups, extensions,
// cipher suites, JA4, JA3), which shape the fingerprint and not
// resumption, folded below, one line a side, each value a click away.
export function diffHTML(d) {
  const side = (s) => `${esc(s.selector || s.name)} — ${s.conns} connection${s.conns === 1 ? "" : "s"}${s.programs?.length ? ` of ${esc(s.programs.join(", "))}` : ""}` +
    (s.likely_programs?.length ? ` <span class="likely">${esc(s.likely_programs.join(", "))}</span>` : "");
  const mark = (row) => `<td class="mark" title="${row.differs ? "A and B differ here" : ""}">${row.differs ? "≠" : ""}</td>`;
  const tr = (row, a, b) => `<tr class="${row.differs ? "differs" : "same"}" data-field="${esc(row.field)}">${mark(row)}<td>${esc(row.field)}</td><td>${a}</td><td>${b}</td><td class="meaning">${esc(row.meaning || "")}</td></tr>`;
  const head = `<thead><tr><th></th><th></th><th>A: ${side(d.a)}</th><th>B: ${side(d.b)}</th><th>what it means for resumption</th></tr></thead>`;
  const main = d.rows.filter((r) => !r.fingerprint), prints = d.rows.filter((r) => r.fingerprint);
  let html = `<table id="diff-table">${head}<tbody>`;
  let section = "";
  for (const row of main) {
    if (row.section !== section) { section = row.section; html += `<tr class="section" data-section="${esc(section)}"><td colspan="5">${esc(SECTIONS[section] || section)}</td></tr>`; }
    html += tr(row, esc(row.a), esc(row.b));
  }
  html += `</tbody></table>`;
  if (!prints.length) return html;
  const folded = (brief, full) => (brief && brief !== full ? `<details><summary>${esc(brief)}</summary><code>${esc(full)}</code></details>` : `<code>${esc(full)}</code>`);
  const differ = prints.filter((r) => r.differs).length;
  return html + `<details id="diff-fingerprints"><summary>Fingerprints: ${prints.length} rows${differ ? `, ${differ} differ` : ""} — they shape the fingerprint, not whether a session resumes</summary>
    <table id="diff-fp">${head}<tbody>${prints.map((row) => tr(row, folded(row.a_brief, row.a), folded(row.b_brief, row.b))).join("")}</tbody></table></details>`;
}
