// An inline SVG chart: flagged violations per epoch (bars, left axis) and active licenses (line, right axis).
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The step of 4 whole-number grid lines that covers v: 24 -> 6 (axis 0-24), 30 -> 8 (0-32). */
function tickStep(v) {
  for (let scale = 1; ; scale *= 10) {
    for (const m of [1, 2, 3, 4, 5, 6, 8]) if (4 * m * scale >= v) return m * scale;
  }
}

/** points: [{epoch, flagged, active}] oldest first. */
export function chart(points, { width = 720, height = 240 } = {}) {
  const pad = { left: 44, right: 48, top: 28, bottom: 34 };
  const w = width - pad.left - pad.right;
  const hgt = height - pad.top - pad.bottom;
  const svg = s("svg", { id: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": "flagged violations and active licenses per epoch" });
  svg.append(s("title", {}, "Flagged violations and active licenses per epoch"));
  if (!points.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "no epoch yet"));
    return svg;
  }
  const maxF = 4 * tickStep(Math.max(...points.map((p) => p.flagged)));
  const maxA = 4 * tickStep(Math.max(...points.map((p) => p.active)));
  const slot = w / points.length;
  const x = (i) => pad.left + slot * i + slot / 2;
  const yF = (v) => pad.top + hgt - (v / maxF) * hgt;
  const yA = (v) => pad.top + hgt - (v / maxA) * hgt;
  // grid and axes
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + (hgt * i) / 4;
    svg.append(s("line", { x1: pad.left, x2: pad.left + w, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis flagged" }, String((maxF * (4 - i)) / 4)));
    svg.append(s("text", { x: pad.left + w + 6, y: y + 4, class: "axis active" }, String((maxA * (4 - i)) / 4)));
  }
  const every = Math.max(1, Math.ceil(points.length / 12));
  points.forEach((p, i) => {
    const bw = Math.min(28, Math.max(2, slot * 0.6));
    const bar = s("rect", { x: x(i) - bw / 2, y: yF(p.flagged), width: bw, height: pad.top + hgt - yF(p.flagged), class: "bar",
      "data-epoch": String(p.epoch), "data-flagged": p.flagged });
    bar.append(s("title", {}, `epoch ${p.epoch}: ${p.flagged} flagged, ${p.active} active licenses`));
    svg.append(bar);
    if (i % every === 0) svg.append(s("text", { x: x(i), y: height - pad.bottom + 16, "text-anchor": "middle", class: "axis" }, String(p.epoch)));
  });
  svg.append(s("polyline", { points: points.map((p, i) => `${x(i)},${yA(p.active)}`).join(" "), class: "line" }));
  points.forEach((p, i) => svg.append(s("circle", { cx: x(i), cy: yA(p.active), r: 3, class: "dot", "data-epoch": String(p.epoch), "data-active": p.active })));
  svg.append(s("text", { x: pad.left + w / 2, y: height - 4, "text-anchor": "middle", class: "axis" }, "epoch"));
  svg.append(s("rect", { x: pad.left, y: 8, width: 10, height: 10, class: "bar" }));
  svg.append(s("text", { x: pad.left + 14, y: 17, class: "axis" }, "flagged violations (left)"));
  svg.append(s("circle", { cx: pad.left + 200, cy: 13, r: 4, class: "dot" }));
  svg.append(s("text", { x: pad.left + 208, y: 17, class: "axis" }, "active licenses (right)"));
  return svg;
}
