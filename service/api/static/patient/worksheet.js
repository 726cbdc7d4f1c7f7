// The patient view: finish the SMART launch, read the worksheet, draw it.
// Numbers are shown as the engine computed them (exact decimal strings), never recomputed here.
import { finishLaunch } from "/static/patient/smart.js";
import { el, frame, niceTicks, path, text } from "/static/patient/charts.js";

const ROLE_WORDS = {
  target: "target", "non-target": "non-target", "new-target": "new, measured", "new-non-target": "new, not measured",
};
const NT_WORDS = {
  absent: "absent", present: "present", increased: "increased", "unequivocal-progression": "unequivocal progression",
};
const KIND_WORDS = { DR: "Dissociated response", PsPD: "Pseudoprogression", HPD: "Hyperprogression", DeR: "Delayed response" };
const DAY_MS = 86400000;

const byId = (id) => document.getElementById(id);
const days = (from, to) => Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS);

function cell(tag, content, attrs = {}) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(key, value);
  if (content instanceof Node) node.append(content); else node.textContent = content ?? "";
  return node;
}

const pct = (value) => (value === null || value === undefined ? "" : `${Number(value) > 0 ? "+" : ""}${value} %`);
const lesionName = (lesion) => `${lesion.site.display} (${lesion.lesion_id})`;

function renderSummary(sheet) {
  byId("patient-label").textContent = `– Patient/${sheet.patient_id}`;
  byId("summary").textContent =
    `Response group ${sheet.response_group}; best RECIST 1.1 ${sheet.best_recist ?? "not reached"}, ` +
    `best iRECIST ${sheet.best_irecist ?? "not reached"}; ${sheet.ici_drug ?? "ICI"} since ${sheet.treatment_start}.`;
}

function renderFindings(sheet, lesionsById) {
  const box = byId("findings");
  if (!sheet.findings.length) {
    box.append(cell("p", "No dissociated response, pseudoprogression or hyperprogression in these scans."));
  }
  for (const finding of sheet.findings) {
    const article = cell("article", "", { class: `finding kind-${finding.kind}`, "data-kind": finding.kind });
    article.textContent = "";
    article.append(cell("h3", `${KIND_WORDS[finding.kind] || finding.kind} at scan ${finding.timepoint_index} (${finding.timepoint_date})`));
    let words = finding.in_words;
    for (const [id, lesion] of lesionsById) words = words.split(id).join(lesionName(lesion));
    article.append(cell("p", words));
    const facts = document.createElement("dl");
    const add = (term, value) => facts.append(cell("dt", term), cell("dd", value));
    add("Definition", `${finding.definition} (version ${finding.definition_version})`);
    add("Rule", finding.trace.rule);
    for (const [name, value] of finding.trace.facts) add(name.replace(/_/g, " "), value || "–");
    for (const [name, value] of finding.metrics) add(name.replace(/_/g, " "), value);
    const details = cell("details", "");
    details.append(cell("summary", "Rule trace"), facts);
    article.append(details);
    box.append(article);
  }
}

function lesionHeader(lesion) {
  const th = cell("th", "", {
    scope: "col", class: `lesion-head${lesion.dr_role ? ` dr-${lesion.dr_role}` : ""}`,
    "data-lesion": lesion.lesion_id, "data-dr": lesion.dr_role,
  });
  th.textContent = lesion.site.display;
  const role = ROLE_WORDS[lesion.role] || "role not stated";
  const axis = lesion.role && lesion.role.endsWith("non-target") ? "" : `, ${lesion.axis} axis`;
  const dr = lesion.dr_role ? `; DR: ${lesion.dr_role}` : "";
  th.append(cell("small", `${lesion.lesion_id}`), cell("small", `${role}${axis}${dr}`));
  return th;
}

function lesionCell(value, lesion, isNew) {
  let content = "";
  if (value.diameter_mm !== null) content = value.diameter_mm;
  else if (value.non_target_state) content = NT_WORDS[value.non_target_state] || value.non_target_state;
  const td = cell("td", content, {
    "data-lesion": lesion.lesion_id, "data-value": value.diameter_mm, "data-status": value.status,
    title: value.status ? `lesion ${value.status}` : undefined,
  });
  if (isNew) td.append(" ", cell("span", "new", { class: "new-mark", "aria-label": "new lesion" }));
  return td;
}

function renderWorksheet(sheet) {
  const table = byId("worksheet");
  table.append(cell("caption", `RECIST 1.1 and iRECIST worksheet, Patient/${sheet.patient_id}`));
  const head = document.createElement("tr");
  head.append(cell("th", "Scan", { scope: "col" }), cell("th", "Date", { scope: "col" }));
  for (const lesion of sheet.lesions) head.append(lesionHeader(lesion));
  for (const title of ["Sum (mm)", "% from baseline", "% from nadir", "RECIST 1.1", "iRECIST", "New lesions", "Notes"]) {
    head.append(cell("th", title, { scope: "col" }));
  }
  table.append(cell("thead", head));
  const body = document.createElement("tbody");
  const lesions = new Map(sheet.lesions.map((lesion) => [lesion.lesion_id, lesion]));
  for (const row of sheet.rows) {
    const tr = cell("tr", "", { "data-index": row.index, class: row.index === 0 ? "baseline" : undefined });
    tr.textContent = "";
    tr.append(cell("th", row.index === 0 ? "Baseline" : `${row.index}`, { scope: "row" }), cell("td", row.scan_date, { class: "text" }));
    row.cells.forEach((value, i) => tr.append(lesionCell(value, sheet.lesions[i], row.new_lesions.includes(value.lesion_id))));
    tr.append(
      cell("td", row.sum_mm ?? "", { "data-field": "sum_mm" }),
      cell("td", pct(row.change_from_baseline_pct), { "data-field": "change_from_baseline_pct", "data-value": row.change_from_baseline_pct }),
      cell("td", pct(row.change_from_nadir_pct), { "data-field": "change_from_nadir_pct", "data-value": row.change_from_nadir_pct }),
      cell("td", row.recist ?? "", { "data-field": "recist", class: `text resp resp-${row.recist}` }),
      cell("td", row.irecist ?? "", { "data-field": "irecist", class: `text resp resp-${row.irecist}` }),
      cell("td", row.new_lesions.map((id) => lesionName(lesions.get(id))).join(", "), { "data-field": "new_lesions", class: "text" }),
      cell("td", notes(row), { "data-field": "notes", class: "text" }),
    );
    body.append(tr);
  }
  table.append(body);
}

function notes(row) {
  const parts = [];
  if (row.recist_strict && row.recist && row.recist_strict !== row.recist) {
    parts.push(`per-scan value ${row.recist_strict}; reported ${row.recist} (PR continues until PD)`);
  }
  for (const trace of row.not_evaluable_because) {
    const facts = trace.facts.map(([name, value]) => `${name.replace(/_/g, " ")} ${value}`).join(", ");
    parts.push(`Not evaluable (${trace.rule})${facts ? `: ${facts}` : ""}`);
  }
  if ((row.recist === "NE" || row.irecist === "NE") && !row.not_evaluable_because.length) {
    parts.push("Not evaluable: a lesion was not measured or not assessed at this scan");
  }
  return parts.join("; ");
}

// --- charts: one time axis (days since ICI start) shared by the three figures -------------------
const WIDTH = 900;
const MARGIN = { top: 16, right: 170, bottom: 40, left: 64 };

function timeAxis(sheet) {
  const all = [...sheet.rows.map((r) => r.scan_date), ...sheet.treatments.map((t) => t.on)];
  const offsets = all.map((d) => days(sheet.treatment_start, d));
  const domain = [Math.min(0, ...offsets) - 7, Math.max(...offsets) + 7];
  return { domain, ticks: niceTicks(domain[0], domain[1], 8), format: (v) => `${v}` };
}

// End-of-line labels pushed apart vertically so that none overlaps another (12 px apart).
function spread(labels, gap = 12) {
  const sorted = [...labels].sort((a, b) => a.y - b.y);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].y - sorted[i - 1].y < gap) sorted[i].y = sorted[i - 1].y + gap;
  }
  return sorted;
}

function renderSpider(sheet) {
  const x = timeAxis(sheet);
  const series = sheet.lesions.map((lesion, i) => ({
    lesion,
    points: sheet.rows
      .map((row) => [days(sheet.treatment_start, row.scan_date), row.index === 0 ? (row.cells[i].diameter_mm !== null ? 0 : null) : row.cells[i].change_from_baseline_pct])
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([d, v]) => [d, Number(v)]),
  })).filter((s) => s.points.length > 1);
  const values = series.flatMap((s) => s.points.map(([, v]) => v));
  const y = { domain: [Math.min(-100, ...values), Math.max(40, ...values) + 5], format: (v) => `${v > 0 ? "+" : ""}${v} %` };
  y.ticks = niceTicks(y.domain[0], y.domain[1], 6);
  const { svg, xs, ys } = frame({
    width: WIDTH, height: 320, margin: MARGIN, x, y, xLabel: "Days since ICI start", yLabel: "Change from baseline",
    title: { id: "spider-title", text: "Spider plot of lesion size" },
    desc: { id: "spider-desc", text: `${series.length} lesions; highlighted: ${series.filter((s) => s.lesion.dr_role).map((s) => lesionName(s.lesion)).join(", ") || "none"}` },
  });
  svg.append(el("line", { class: "grid", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: ys(0), y2: ys(0), stroke: "#777" }));
  const ordered = [...series].sort((a, b) => Boolean(a.lesion.dr_role) - Boolean(b.lesion.dr_role));
  const labels = [];
  for (const { lesion, points } of ordered) {
    const line = el("path", {
      class: `lesion${lesion.dr_role ? ` dr-${lesion.dr_role}` : ""}`, d: path(points.map(([d, v]) => [xs(d), ys(v)])),
      "data-lesion": lesion.lesion_id, "data-dr": lesion.dr_role,
    });
    line.append(el("title", {}, [document.createTextNode(`${lesionName(lesion)}${lesion.dr_role ? `, DR ${lesion.dr_role}` : ""}`)]));
    svg.append(line);
    const [lastD, lastV] = points[points.length - 1];
    labels.push({ x: xs(lastD) + 6, y: ys(lastV) + 4, label: `${lesion.site.display.replace(/ structure$/, "")} ${lesion.lesion_id.split("-").pop()}` });
  }
  for (const { x: lx, y: ly, label } of spread(labels)) svg.append(text(lx, ly, label));
  byId("spider").append(svg);
}

function renderSum(sheet) {
  const x = timeAxis(sheet);
  const rows = sheet.rows.filter((r) => r.sum_mm !== null);
  const points = rows.map((r) => [days(sheet.treatment_start, r.scan_date), Number(r.sum_mm)]);
  const follow = sheet.rows.filter((r) => r.index > 0 && r.pd_threshold_mm !== null);
  const limits = follow.flatMap((r) => [Number(r.pd_threshold_mm), Number(r.pr_threshold_mm)]);
  const all = [...points.map(([, v]) => v), ...limits];
  const y = { domain: [0, Math.max(...all, 10) * 1.1], format: (v) => `${v}` };
  y.ticks = niceTicks(0, y.domain[1], 6);
  const { svg, xs, ys } = frame({
    width: WIDTH, height: 280, margin: MARGIN, x, y, xLabel: "Days since ICI start", yLabel: "Sum of diameters (mm)",
    title: { id: "sum-title", text: "Sum of diameters with response thresholds" },
    desc: { id: "sum-desc", text: rows.map((r) => `${r.scan_date}: ${r.sum_mm} mm`).join("; ") },
  });
  if (follow.length) {
    const prY = ys(Number(follow[0].pr_threshold_mm));
    svg.append(el("line", { class: "threshold pr", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: prY, y2: prY, "data-threshold": "pr" }));
    const thresholdLabels = [{ x: WIDTH - MARGIN.right + 6, y: prY + 4, label: `PR: −30 % (${Number(follow[0].pr_threshold_mm).toFixed(1)} mm)` }];
    // PD threshold as a step: from the previous scan to this one, relative to the nadir before it.
    const steps = [];
    follow.forEach((r, i) => {
      const prev = sheet.rows[sheet.rows.indexOf(r) - 1];
      const from = xs(days(sheet.treatment_start, prev.scan_date));
      const to = xs(days(sheet.treatment_start, r.scan_date));
      const level = ys(Number(r.pd_threshold_mm));
      steps.push([from, level], [to, level]);
      if (i === follow.length - 1) thresholdLabels.push({ x: WIDTH - MARGIN.right + 6, y: level + 4, label: "PD: +20 %, ≥ +5 mm" });
    });
    for (const { x: lx, y: ly, label } of spread(thresholdLabels)) svg.append(text(lx, ly, label));
    svg.append(el("path", { class: "threshold pd", d: path(steps), "data-threshold": "pd" }));
  }
  svg.append(el("path", { class: "sum", d: path(points.map(([d, v]) => [xs(d), ys(v)])) }));
  for (const r of rows) {
    const dot = el("circle", { cx: xs(days(sheet.treatment_start, r.scan_date)), cy: ys(Number(r.sum_mm)), r: 4, fill: "#1b1b1b", "data-index": r.index });
    dot.append(el("title", {}, [document.createTextNode(`${r.scan_date}: ${r.sum_mm} mm, ${r.recist ?? "baseline"}`)]));
    svg.append(dot);
  }
  byId("sum-plot").append(svg);
}

function renderTreatment(sheet) {
  const x = timeAxis(sheet);
  const y = { domain: [0, 3], ticks: [], format: () => "" };
  const { svg, xs } = frame({
    width: WIDTH, height: 130, margin: { ...MARGIN, top: 10 }, x, y, xLabel: "Days since ICI start",
    title: { id: "treatment-title", text: "Treatment timeline" },
    desc: { id: "treatment-desc", text: sheet.treatments.map((t) => `${t.on}: ${t.label}`).join("; ") },
  });
  const lanes = { scan: 30, ici: 55, local: 80 };
  svg.append(text(MARGIN.left - 6, lanes.scan + 4, "scans", { "text-anchor": "end" }));
  svg.append(text(MARGIN.left - 6, lanes.ici + 4, "ICI", { "text-anchor": "end" }));
  svg.append(text(MARGIN.left - 6, lanes.local + 4, "local", { "text-anchor": "end" }));
  for (const row of sheet.rows) {
    const cx = xs(days(sheet.treatment_start, row.scan_date));
    svg.append(el("rect", { x: cx - 4, y: lanes.scan - 6, width: 8, height: 12, fill: "#0072B2" }, [el("title", {}, [document.createTextNode(`scan ${row.scan_date}`)])]));
  }
  for (const event of sheet.treatments) {
    const cx = xs(days(sheet.treatment_start, event.on));
    const label = el("title", {}, [document.createTextNode(`${event.on}: ${event.label}`)]);
    if (event.kind === "ici-start" || event.kind === "ici-dose") {
      const size = event.kind === "ici-start" ? 7 : 4;
      svg.append(el("circle", { cx, cy: lanes.ici, r: size, fill: "#009E73", "data-kind": event.kind }, [label]));
    } else {
      svg.append(el("path", { d: `M${cx},${lanes.local - 7} l7,7 l-7,7 l-7,-7 z`, fill: "#E69F00", "data-kind": event.kind }, [label]));
    }
  }
  byId("treatment").append(svg);
}

async function main() {
  const status = byId("status");
  try {
    const token = await finishLaunch(location.search);
    status.textContent = "Reading the worksheet…";
    const answer = await fetch(`/patients/${encodeURIComponent(token.patient)}/worksheet`, {
      headers: { Authorization: `Bearer ${token.access_token}`, Accept: "application/json" },
    });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.detail || body.title || `HTTP ${answer.status}`);
    const lesionsById = new Map(body.lesions.map((lesion) => [lesion.lesion_id, lesion]));
    renderSummary(body);
    renderFindings(body, lesionsById);
    renderWorksheet(body);
    renderSpider(body);
    renderSum(body);
    renderTreatment(body);
    for (const id of ["findings-section", "worksheet-section", "charts-section"]) byId(id).hidden = false;
    status.textContent = "";
    document.body.dataset.ready = "true";
  } catch (error) {
    status.textContent = error.message;
    status.setAttribute("role", "alert");
    document.body.dataset.ready = "error";
  }
}

byId("print").addEventListener("click", () => window.print());
main();
