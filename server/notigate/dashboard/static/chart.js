// The throughput chart: delivered and 429 answers per second over the last hour, an
// inline SVG drawn here (no library). Intervals nobody measured are gaps in the lines.

import { h, s } from "./dom.js";
import { durationSeconds, formatClock, int } from "./format.js";

const M = { top: 14, right: 14, bottom: 30, left: 52 };
const HOUR_S = 3600;

const SERIES = [
  { key: "delivered", label: "Delivered per second", cls: "series-delivered" },
  { key: "rate_limited", label: "429s per second", cls: "series-429" },
];

/** 0..max rounded up to 1, 2 or 5 times a power of ten. */
function niceMax(value) {
  if (value <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

function fmtRate(v, digits) {
  return v.toFixed(digits ?? (v >= 10 ? 0 : v >= 1 ? 1 : 2));
}

/** Decimals that tell the ticks of a step apart (step 0.25 -> 2, 2.5 -> 1, 5 -> 0). */
function tickDigits(step) {
  for (let d = 0; d < 4; d += 1) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-9) return d;
  return 3;
}

/** Runs of consecutive measured intervals, so a missing one breaks the line. */
function runs(points, intervalS) {
  const out = [];
  let current = [];
  for (const p of points) {
    const prev = current[current.length - 1];
    if (prev && p.t - prev.t > intervalS * 1.5) {
      out.push(current);
      current = [];
    }
    current.push(p);
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * `width` is the space the chart gets in CSS pixels: the SVG is drawn at that size so its
 * labels keep their size on a phone and on a wide screen.
 */
export function throughputChart(data, { width = 720, now = Date.now() } = {}) {
  const W = Math.max(300, Math.round(width));
  const H = W < 600 ? 200 : 250;
  const narrow = W < 600;
  const intervalS = durationSeconds(data?.interval) || 10;
  const end = now / 1000;
  const start = end - HOUR_S;
  const points = (data?.samples || [])
    .map((sm) => {
      const t = Date.parse(sm.start_time) / 1000;
      return {
        t,
        delivered: int(sm.delivered) / intervalS,
        rate_limited: int(sm.rate_limited) / intervalS,
        rawDelivered: int(sm.delivered),
        rawLimited: int(sm.rate_limited),
      };
    })
    .filter((p) => Number.isFinite(p.t) && p.t >= start - intervalS)
    .sort((a, b) => a.t - b.t);

  const peak = Math.max(0, ...points.map((p) => Math.max(p.delivered, p.rate_limited)));
  const yMax = niceMax(peak);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  // A sample is drawn at the middle of its interval.
  const x = (t) => M.left + ((t + intervalS / 2 - start) / HOUR_S) * plotW;
  const y = (v) => M.top + plotH - (v / yMax) * plotH;

  const totalDelivered = points.reduce((a, p) => a + p.rawDelivered, 0);
  const totalLimited = points.reduce((a, p) => a + p.rawLimited, 0);
  const peakDelivered = Math.max(0, ...points.map((p) => p.delivered));
  const expected = Math.round(HOUR_S / intervalS);
  const summary = points.length
    ? `Last hour: ${totalDelivered} delivered (peak ${fmtRate(peakDelivered)} per second), ` +
      `${totalLimited} answered 429; ${points.length} of ${expected} intervals of ${intervalS} s measured.`
    : "Last hour: no interval was measured yet.";

  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-labelledby": "chart-title chart-desc",
    dataset: { chart: "throughput", samples: points.length },
  });
  svg.append(
    s("title", { id: "chart-title" }, "Messages per second, last hour"),
    s("desc", { id: "chart-desc" }, summary),
  );

  const grid = s("g", { class: "grid", "aria-hidden": "true" });
  const digits = tickDigits(yMax / 4);
  for (let i = 0; i <= 4; i += 1) {
    const v = (yMax * i) / 4;
    const yy = y(v);
    grid.append(
      s("line", { x1: M.left, x2: W - M.right, y1: yy, y2: yy, class: i === 0 ? "axis" : "gridline" }),
      s("text", { x: M.left - 6, y: yy + 4, class: "tick", "text-anchor": "end" }, fmtRate(v, digits)),
    );
  }
  for (let m = 60; m >= 0; m -= narrow ? 30 : 15) {
    const t = end - m * 60;
    const xx = M.left + ((t - start) / HOUR_S) * plotW;
    grid.append(
      s("line", { x1: xx, x2: xx, y1: M.top, y2: M.top + plotH, class: "gridline" }),
      s("text", { x: xx, y: H - 10, class: "tick", "text-anchor": m === 0 ? "end" : m === 60 ? "start" : "middle" },
        m === 0 ? "now" : formatClock(new Date(t * 1000))),
    );
  }
  grid.append(
    s("text", { x: 12, y: M.top + plotH / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 12 ${M.top + plotH / 2})` }, "per second"),
  );
  svg.append(grid);

  for (const series of SERIES) {
    const g = s("g", { class: `series ${series.cls}`, "aria-hidden": "true" });
    for (const run of runs(points, intervalS)) {
      if (run.length === 1) {
        g.append(s("circle", { cx: x(run[0].t), cy: y(run[0][series.key]), r: 2.5 }));
        continue;
      }
      const d = run.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[series.key]).toFixed(1)}`).join("");
      g.append(s("path", { d }));
    }
    svg.append(g);
  }

  const legend = h(
    "ul",
    { class: "legend" },
    SERIES.map((sr) =>
      h("li", {}, h("span", { class: `swatch ${sr.cls}`, "aria-hidden": "true" }), sr.label)),
    h("li", {}, h("span", { class: "swatch swatch-gap", "aria-hidden": "true" }), "gap: not measured"),
  );
  return h("figure", { class: "chart-figure" }, svg, legend, h("figcaption", { class: "chart-summary" }, summary));
}
