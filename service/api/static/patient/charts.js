// Small SVG charts drawn by our own code (no chart library): linear scales, axes, lines.
const SVG_NS = "http://www.w3.org/2000/svg";

export function el(name, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

export function text(x, y, content, attrs = {}) {
  const node = el("text", { x, y, ...attrs });
  node.textContent = content;
  return node;
}

export function scale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

export function niceTicks(min, max, count = 6) {
  const span = max - min || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
  return ticks;
}

export function path(points) {
  return points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
}

// A chart frame: svg with title/desc for screen readers, axes with ticks and labels.
export function frame({ width, height, margin, title, desc, x, y, xLabel, yLabel }) {
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-labelledby": `${title.id} ${desc.id}`,
    xmlns: SVG_NS, preserveAspectRatio: "xMinYMin meet",
  });
  const t = el("title", { id: title.id }); t.textContent = title.text;
  const d = el("desc", { id: desc.id }); d.textContent = desc.text;
  svg.append(t, d);
  const xs = scale(x.domain, [margin.left, width - margin.right]);
  const ys = scale(y.domain, [height - margin.bottom, margin.top]);
  const axes = el("g", { class: "axis" });
  for (const tick of y.ticks) {
    axes.append(el("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: ys(tick), y2: ys(tick) }));
    axes.append(text(margin.left - 6, ys(tick) + 4, y.format(tick), { "text-anchor": "end" }));
  }
  for (const tick of x.ticks) {
    axes.append(el("line", { x1: xs(tick), x2: xs(tick), y1: height - margin.bottom, y2: height - margin.bottom + 5 }));
    axes.append(text(xs(tick), height - margin.bottom + 17, x.format(tick), { "text-anchor": "middle" }));
  }
  axes.append(el("line", { x1: margin.left, x2: width - margin.right, y1: height - margin.bottom, y2: height - margin.bottom }));
  axes.append(el("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom }));
  if (xLabel) axes.append(text((margin.left + width - margin.right) / 2, height - 6, xLabel, { "text-anchor": "middle" }));
  if (yLabel) {
    axes.append(text(14, (margin.top + height - margin.bottom) / 2, yLabel, {
      "text-anchor": "middle", transform: `rotate(-90 14 ${(margin.top + height - margin.bottom) / 2})`,
    }));
  }
  svg.append(axes);
  return { svg, xs, ys };
}
