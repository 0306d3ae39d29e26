// Charts drawn as SVG by our own code: stacked bars over time (the histogram, with drag-to-zoom) and
// plain bars (per-day counts). Colours come from CSS classes, so the themes restyle them.
import { counted, formatCount, formatTime, h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

// bars: [{start (ms), width (ms), parts: [[series, count, name], ...], label}]; series name a CSS class suffix, and
// the part in the bar's tooltip unless it has a name of its own (a backtest's "alerts" drawn in critical's colour).
// from/to (ms): the window the bars count, when it is not whole buckets (the last hour ends now, inside
// a bucket): the axis spans it, and the bars at its ends are cut to it.
// onZoom(fromMs, toMs) is called when the person drags across the chart. perBar: the axis names bars (a
// chart per day) rather than times. valueFormat: how the axis writes the highest bar (bytes as KiB, MiB).
// label: what the bars count ("records"), and `one` what a bar of one counts (it said "1 records").
export function stackedBars(bars, { height = 120, onZoom, label = "records", one = label === "records" ? "record" : label, from, to, perBar = false, tickFormat = (ms) => formatTime(ms), valueFormat = formatCount } = {}) {
  const width = 1000;
  const top = 4, bottom = 0;
  const first = from ?? (bars.length ? bars[0].start : 0);
  const last = to ?? (bars.length ? bars[bars.length - 1].start + bars[bars.length - 1].width : 1);
  const span = Math.max(1, last - first);
  const max = Math.max(1, ...bars.map((b) => b.parts.reduce((sum, [, n]) => sum + n, 0)));
  const x = (ms) => ((ms - first) / span) * width;
  const y = (n) => top + (height - top - bottom) * (1 - n / max);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "chart", role: "img" });
  root.append(svg("title", {}, `${label} over time, highest bar ${max}`));
  for (const frac of [0.5, 1]) {
    root.append(svg("line", { x1: 0, x2: width, y1: y(max * frac), y2: y(max * frac), class: "grid" }));
  }
  for (const bar of bars) {
    let base = 0;
    const group = svg("g");
    const total = bar.parts.reduce((sum, [, n]) => sum + n, 0);
    // (the bar's own start, whole: the axis's minutes named two 30 s bars alike; counts as the page writes them)
    // (a chart of one series has no parts to tell apart: its days said "info: N" under the total, a colour's name)
    const parted = bar.parts.length > 1;
    group.append(svg("title", {}, `${bar.label || formatTime(bar.start)}: ${counted(total, one, label)}` +
      (parted ? bar.parts.filter(([, n]) => n).map(([s, n, name = s]) => `\n${name}: ${n.toLocaleString()}`).join("") : "")));
    for (const [series, n] of bar.parts) {
      if (!n) continue;
      const x0 = x(Math.max(first, bar.start)), w = Math.max(1, x(Math.min(last, bar.start + bar.width)) - x0 - 1);
      group.append(svg("rect", { x: x0, width: w, y: y(base + n), height: y(base) - y(base + n), class: `bar s-${series}` }));
      base += n;
    }
    root.append(group);
  }
  if (onZoom) dragToZoom(root, width, (a, b) => onZoom(first + (a / width) * span, first + (b / width) * span));
  // The labels are HTML under the chart: text inside a stretched SVG would be stretched with it.
  const ticks = perBar ? barTicks(bars, (ms) => x(ms) / width, tickFormat)
    : [0, 1, 2, 3, 4].map((i) => h("span", { text: tickFormat(first + (span * i) / 4) }));
  return h("figure", { class: "chart-box" }, h("span", { class: "axis-max", text: valueFormat(max) }), root,
    h("div", { class: perBar ? "ticks bar-ticks" : "ticks" }, ticks));
}

// A bar of a day the server counted (a backtest's, a per-day report's): a UTC day, the lake's partition, which the
// page cannot count again in another zone (a local day holds parts of two). Its tooltip and the axis (utcDayTick) say
// so, beside the page's times in the zone chosen: the backtest's table said "Day (UTC)" over a chart that did not.
export function utcDayBar(day, parts) {
  return { start: Date.parse(`${day}T00:00:00Z`), width: 86400e3, label: `${day} (UTC)`, parts };
}

export function utcDayTick(ms) {
  return `${new Date(ms).toISOString().slice(5, 10)} UTC`;
}

// The labels of about five bars, each under its bar: the first, every step-th, and the last (a label too
// close before the last is left out). Times spread evenly over the axis would name where the last bar ends
// (the day after a per-day chart's range), not a bar. `at(ms)`: where a time lies across the chart, 0 to 1.
// (Placed through the CSSOM: the CSP allows no style attribute.)
function barTicks(bars, at, tickFormat) {
  const n = bars.length;
  const step = Math.max(1, Math.ceil((n - 1) / 4));
  const picked = bars.map((_, i) => i).filter((i) => i === n - 1 || (i % step === 0 && i < n - 1 - step / 2));
  return picked.map((i) => {
    const bar = bars[i];
    const tick = h("span", { text: tickFormat(bar.start) });
    if (i === 0) tick.style.left = "0"; // the ends align with the chart's edges, not past them
    else if (i === n - 1) tick.style.right = "0";
    else {
      tick.style.left = `${at(bar.start + bar.width / 2) * 100}%`;
      tick.classList.add("centred");
    }
    return tick;
  });
}

function dragToZoom(root, width, onZoom) {
  const band = svg("rect", { class: "zoom-band", y: 0, height: "100%", x: 0, width: 0 });
  band.setAttribute("visibility", "hidden");
  root.append(band);
  root.classList.add("zoomable");
  let from = null;
  const at = (event) => {
    const box = root.getBoundingClientRect();
    return Math.min(width, Math.max(0, ((event.clientX - box.left) / box.width) * width));
  };
  root.addEventListener("pointerdown", (event) => {
    from = at(event);
    root.setPointerCapture(event.pointerId);
    band.setAttribute("visibility", "visible");
    band.setAttribute("x", from);
    band.setAttribute("width", 0);
  });
  root.addEventListener("pointermove", (event) => {
    if (from === null) return;
    const to = at(event);
    band.setAttribute("x", Math.min(from, to));
    band.setAttribute("width", Math.abs(to - from));
  });
  root.addEventListener("pointerup", (event) => {
    if (from === null) return;
    const to = at(event);
    band.setAttribute("visibility", "hidden");
    const [a, b] = [Math.min(from, to), Math.max(from, to)];
    from = null;
    if (b - a > 3) onZoom(a, b); // a click is not a zoom
  });
}
