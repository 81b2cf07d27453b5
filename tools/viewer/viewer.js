// A small canvas viewer for the latest snapshot: points coloured by a field, wheel to zoom,
// drag to pan, hover for the beatmap. No build step and no dependency.
"use strict";
const canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
const tip = document.getElementById("tip"), fieldSel = document.getElementById("field");
let rows = null, view = { cx: 0, cy: 0, scale: 1 }, order = null;

function resize() {
  canvas.width = innerWidth * devicePixelRatio;
  canvas.height = innerHeight * devicePixelRatio;
  draw();
}

function fit() {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < rows.n; i++) {
    x0 = Math.min(x0, rows.x[i]); x1 = Math.max(x1, rows.x[i]);
    y0 = Math.min(y0, rows.y[i]); y1 = Math.max(y1, rows.y[i]);
  }
  view.cx = (x0 + x1) / 2; view.cy = (y0 + y1) / 2;
  view.scale = 0.9 * Math.min(innerWidth / (x1 - x0 || 1), innerHeight / (y1 - y0 || 1));
}

// Points go on screen as the frontend does (the y axis points up).
function toScreen(i) {
  return [innerWidth / 2 + (rows.x[i] - view.cx) * view.scale,
          innerHeight / 2 - (rows.y[i] - view.cy) * view.scale];
}

function colour(t) { // viridis-like ramp, t in [0, 1]
  const r = Math.round(255 * Math.min(1, Math.max(0, 1.6 * t - 0.5)));
  const g = Math.round(255 * Math.min(1, 0.2 + 0.8 * t));
  const b = Math.round(255 * Math.min(1, Math.max(0, 0.9 - 0.9 * t + 0.3)));
  return `rgb(${r},${g},${b})`;
}

function draw() {
  ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, innerWidth, innerHeight);
  if (!rows) return;
  const f = rows[fieldSel.value];
  // colour range from the 2nd to the 98th percentile, so a few outliers do not flatten it
  const vals = Array.from(f).filter(v => v > 0).sort((a, b) => a - b);
  const lo = vals.length ? vals[Math.floor(0.02 * (vals.length - 1))] : 0;
  const hi = vals.length ? vals[Math.floor(0.98 * (vals.length - 1))] : 1;
  const size = Math.max(1.5, Math.min(6, view.scale * 0.15));
  for (let i = 0; i < rows.n; i++) {
    const [sx, sy] = toScreen(i);
    if (sx < -5 || sy < -5 || sx > innerWidth + 5 || sy > innerHeight + 5) continue;
    const t = Math.min(1, Math.max(0, (f[i] - lo) / (hi - lo || 1)));
    ctx.fillStyle = f[i] > 0 ? colour(t) : "#555";
    ctx.fillRect(sx - size / 2, sy - size / 2, size, size);
  }
}

function nearest(mx, my) {
  let best = -1, bd = 100;
  for (let i = 0; i < rows.n; i++) {
    const [sx, sy] = toScreen(i), d = (sx - mx) ** 2 + (sy - my) ** 2;
    if (d < bd) { bd = d; best = i; }
  }
  return best;
}

let drag = null;
canvas.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY]; });
addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("mousemove", e => {
  if (!rows) return;
  if (drag) {
    view.cx -= (e.clientX - drag[0]) / view.scale;
    view.cy += (e.clientY - drag[1]) / view.scale;
    drag = [e.clientX, e.clientY];
    draw();
    return;
  }
  const i = nearest(e.clientX, e.clientY);
  if (i < 0) { tip.style.display = "none"; return; }
  tip.style.display = "block";
  tip.style.left = e.clientX + 12 + "px";
  tip.style.top = e.clientY + 12 + "px";
  tip.textContent = `${rows.title[i] || rows.id[i]} [${rows.version[i]}] ${modString(rows.mods[i])}` +
    ` — ${rows.avg_pp[i].toFixed(0)}pp avg, ${rows.stars[i].toFixed(2)}★, ${rows.num_users[i]} players`;
});
canvas.addEventListener("wheel", e => {
  e.preventDefault();
  const k = Math.exp(-e.deltaY * 0.001);
  const wx = view.cx + (e.clientX - innerWidth / 2) / view.scale;
  const wy = view.cy - (e.clientY - innerHeight / 2) / view.scale;
  view.scale *= k;
  view.cx = wx - (e.clientX - innerWidth / 2) / view.scale;
  view.cy = wy + (e.clientY - innerHeight / 2) / view.scale;
  draw();
}, { passive: false });
fieldSel.addEventListener("change", draw);
addEventListener("resize", resize);

async function load() {
  const status = document.getElementById("status");
  try {
    const [res, list] = await Promise.all([fetch("snapshots/latest"), fetch("snapshots")]);
    if (!res.ok) throw new Error(`snapshots/latest: HTTP ${res.status}`);
    rows = parseCorpus(await res.arrayBuffer());
    const manifests = list.ok ? await list.json() : [];
    document.getElementById("snapshot").textContent = manifests.length ? manifests[0].id : "?";
    document.getElementById("count").textContent = String(rows.n);
    status.textContent = "";
    document.body.dataset.loaded = "1";
    fit();
    resize();
  } catch (err) {
    status.textContent = String(err.message || err);
    document.body.dataset.loaded = "error";
  }
}
resize();
load();
