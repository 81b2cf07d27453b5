// A small canvas viewer for the latest snapshot, no build step and no dependency. Points are
// coloured by a field (turbo colours and the frontend's ranges where it has them, with a legend)
// and sized by players on a log scale as the frontend does; wheel to zoom, drag to pan, hover for
// the beatmap, search by title/mapper, click a point to list its nearest neighbours (GET
// /items/<id>) and highlight them. The URL hash drives it for tests and links:
// #field=stars&search=TEXT&click=ITEM_ID (click goes through the same hit-test as a mouse click).
"use strict";
const $ = id => document.getElementById(id);
const canvas = $("map"), ctx = canvas.getContext("2d"), tip = $("tip"), fieldSel = $("field");
let rows = null, order = null, byId = new Map(), manifest = null;
let view = { cx: 0, cy: 0, scale: 1, fit: 1 };
let matches = null, selected = -1, neighbours = [];

// The frontend's colour ranges (OSU_ATLAS_PIPELINE §4.3); the others span the data (2nd-98th pct).
const FIELDS = {
  avg_pp: { name: "average pp", range: [100, 615], fmt: v => v.toFixed(0) },
  stars: { name: "star rating", range: [3.8, 9.3], fmt: v => v.toFixed(1) + "★" },
  ratio: { name: "aim/speed ratio", range: [0.85, 1.6], fmt: v => v.toFixed(2) },
  year: { name: "release year", fmt: v => v.toFixed(0) },
  num_users: { name: "players", log: true, fmt: v => Math.round(v).toString() },
  bpm: { name: "BPM", fmt: v => v.toFixed(0) },
  length: { name: "length", range: [10, 620], fmt: v => `${Math.floor(v / 60)}:${String(Math.round(v % 60)).padStart(2, "0")}` },
};

function turbo(t) { // Google's polynomial approximation of the turbo colormap, t in [0, 1]
  t = 0.1 + 0.9 * Math.min(1, Math.max(0, t)); // its darkest tenth would vanish on the background
  const r = 0.13572138 + t * (4.6153926 + t * (-42.66032258 + t * (132.13108234 + t * (-152.94239396 + t * 59.28637943))));
  const g = 0.09140261 + t * (2.19418839 + t * (4.84296658 + t * (-14.18503333 + t * (4.27729857 + t * 2.82956604))));
  const b = 0.1066733 + t * (12.64194608 + t * (-60.58204836 + t * (110.36276771 + t * (-89.90310912 + t * 27.34824973))));
  const c = x => Math.round(255 * Math.min(1, Math.max(0, x)));
  return `rgb(${c(r)},${c(g)},${c(b)})`;
}

function range(key) {
  const f = FIELDS[key];
  if (f.range) return f.range;
  const v = Array.from(rows[key]).filter(x => x > 0).sort((a, b) => a - b);
  if (!v.length) return [0, 1];
  return [v[Math.floor(0.02 * (v.length - 1))], v[Math.floor(0.98 * (v.length - 1))]];
}

let scale = null; // { key, lo, hi, t(v) }
function setScale() {
  const key = fieldSel.value, f = FIELDS[key], [lo, hi] = range(key);
  const tr = f.log ? (v => Math.log(Math.max(v, 1))) : (v => v);
  const a = tr(lo), b = tr(hi);
  scale = { key, lo, hi, t: v => (tr(v) - a) / (b - a || 1) };
  const stops = Array.from({ length: 11 }, (_, i) => turbo(i / 10)).join(",");
  const mid = f.log ? Math.sqrt(lo * hi) : (lo + hi) / 2;
  $("legend").innerHTML =
    `<div><strong>${f.name}</strong> <span class="dim">${f.range ? "(the frontend's range)" : "(2nd-98th percentile)"}${f.log ? ", log scale" : ""}</span></div>` +
    `<div class="bar" style="background:linear-gradient(to right,${stops})"></div>` +
    `<div class="ticks"><span>≤ ${f.fmt(lo)}</span><span>${f.fmt(mid)}</span><span>≥ ${f.fmt(hi)}</span></div>` +
    `<div class="sizes dim">size: players (log) ${[10, 100, 1000].map(n =>
      `<span><i class="dot" style="width:${2 * radius(n, 1)}px;height:${2 * radius(n, 1)}px"></i>${n}</span>`).join("")}</div>`;
}

// The frontend's radius, (12 + 9 ln n + 0.0016 n) x a zoom factor; here 0.06 at the fitted view.
function radius(n, zoom) {
  return Math.max(1.2, (12 + 9 * Math.log(Math.max(n, 1)) + 0.0016 * n) * 0.06 * Math.sqrt(zoom));
}

function resize() {
  canvas.width = innerWidth * devicePixelRatio;
  canvas.height = innerHeight * devicePixelRatio;
  draw();
}

function fit() { // the 1st-99th percentile box fills the window, as the corpus frame fills the frontend's view
  const q = a => { const s = Array.from(a).sort((u, v) => u - v); return [s[Math.floor(0.01 * (s.length - 1))], s[Math.floor(0.99 * (s.length - 1))]]; };
  const [x0, x1] = q(rows.x), [y0, y1] = q(rows.y);
  view.cx = (x0 + x1) / 2; view.cy = (y0 + y1) / 2;
  view.scale = view.fit = 0.85 * Math.min(innerWidth / (x1 - x0 || 1), (innerHeight - 60) / (y1 - y0 || 1));
}

// As the frontend draws a row: (-2x, 2y) with y up, i.e. screen x grows with -x.
function toScreen(i) {
  return [innerWidth / 2 - (rows.x[i] - view.cx) * view.scale,
          innerHeight / 2 + 20 - (rows.y[i] - view.cy) * view.scale];
}

function ring(i, r, colour, width) {
  const [sx, sy] = toScreen(i);
  ctx.beginPath(); ctx.arc(sx, sy, r, 0, 2 * Math.PI);
  ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.stroke();
}

function draw() {
  ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  ctx.fillStyle = "#15181d";
  ctx.fillRect(0, 0, innerWidth, innerHeight);
  if (!rows) return;
  const f = rows[scale.key], zoom = view.scale / view.fit, focus = matches || selected >= 0;
  for (const i of order) { // most played first, so small points stay visible on top
    const [sx, sy] = toScreen(i), r = radius(rows.num_users[i], zoom);
    if (sx < -r || sy < -r || sx > innerWidth + r || sy > innerHeight + r) continue;
    const lit = !focus || (matches && matches.has(i)) || i === selected || neighbours.includes(i);
    ctx.globalAlpha = lit ? 0.9 : 0.3;
    ctx.fillStyle = f[i] > 0 ? turbo(scale.t(f[i])) : "#777";
    ctx.beginPath(); ctx.arc(sx, sy, r, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  if (matches) for (const i of matches) ring(i, radius(rows.num_users[i], zoom) + 2, "#ffffff", 1.5);
  if (selected >= 0) {
    const [x0, y0] = toScreen(selected);
    ctx.strokeStyle = "#ffd75e"; ctx.lineWidth = 1;
    for (const j of neighbours) {
      const [x1, y1] = toScreen(j);
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      ring(j, radius(rows.num_users[j], zoom) + 2, "#ffd75e", 2);
    }
    ring(selected, radius(rows.num_users[selected], zoom) + 4, "#ffffff", 2.5);
  }
}

// The point a click at (mx, my) means: the topmost disc under the cursor (drawn last), else the
// nearest centre within maxPx.
function pick(mx, my, maxPx) {
  const zoom = view.scale / view.fit;
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k], [sx, sy] = toScreen(i), r = radius(rows.num_users[i], zoom) + 1;
    if ((sx - mx) ** 2 + (sy - my) ** 2 <= r * r) return i;
  }
  return nearest(mx, my, maxPx);
}

function nearest(mx, my, maxPx) {
  let best = -1, bd = maxPx * maxPx;
  for (let i = 0; i < rows.n; i++) {
    const [sx, sy] = toScreen(i), d = (sx - mx) ** 2 + (sy - my) ** 2;
    if (d < bd) { bd = d; best = i; }
  }
  return best;
}

function label(i) {
  const m = modString(rows.mods[i]);
  return `${rows.title[i] || rows.id[i]} [${rows.version[i]}]${m ? " +" + m : ""}`;
}

function li(i, extra) {
  const e = document.createElement("li");
  e.dataset.item = itemId(rows.id[i], rows.mods[i]);
  e.textContent = `${label(i)} — ${rows.creator[i]}${extra || ""}`;
  e.onclick = () => { select(i); centreOn(i); };
  return e;
}

// Bring item i to the middle of the part of the window the side panel leaves free.
function centreOn(i) {
  const free = innerWidth - ($("side").style.display === "block" ? 360 : 0);
  view.cx = rows.x[i] + (free / 2 - innerWidth / 2) / view.scale;
  view.cy = rows.y[i];
  draw();
}

function showSide() { $("side").style.display = matches || selected >= 0 ? "block" : "none"; }

function search(q) {
  q = q.trim().toLowerCase();
  const list = $("results");
  list.replaceChildren();
  matches = null;
  if (q) {
    matches = new Set();
    for (let i = 0; i < rows.n; i++)
      if (rows.title[i].toLowerCase().includes(q) || rows.creator[i].toLowerCase().includes(q))
        matches.add(i);
    [...matches].sort((a, b) => rows.num_users[b] - rows.num_users[a]).slice(0, 30)
      .forEach(i => list.appendChild(li(i, `, ${rows.num_users[i]} players`)));
  }
  $("nfound").textContent = matches ? String(matches.size) : "0";
  $("found").style.display = matches ? "block" : "none";
  showSide(); draw();
}

async function select(i) {
  selected = i; neighbours = [];
  $("picked").style.display = i >= 0 ? "block" : "none";
  showSide();
  const nl = $("neighbours");
  nl.replaceChildren();
  if (i < 0) { draw(); return; }
  $("pick").textContent = label(i);
  $("pickinfo").textContent = `${rows.creator[i]} · ${rows.avg_pp[i].toFixed(0)} pp average · ` +
    `${rows.stars[i].toFixed(2)}★ · aim/speed ${rows.ratio[i].toFixed(2)} · ${rows.bpm[i]} BPM · ` +
    `${rows.year[i]} · ${rows.num_users[i]} players`;
  draw();
  const id = itemId(rows.id[i], rows.mods[i]);
  try {
    const res = await fetch(`items/${encodeURIComponent(id)}?k=10`);
    if (!res.ok) throw new Error(`items/${id}: HTTP ${res.status}`);
    const item = await res.json();
    if (selected !== i) return;
    for (const nb of (item.map && item.map.neighbours) || []) {
      const j = byId.get(nb.item);
      if (j === undefined) continue;
      neighbours.push(j);
      nl.appendChild(li(j, ` (distance ${nb.distance_3d.toFixed(2)})`));
    }
    nl.dataset.loaded = String(neighbours.length);
  } catch (err) {
    nl.innerHTML = `<li>${String(err.message || err)}</li>`;
  }
  draw();
}

function freshness() {
  if (!manifest) return;
  const age = Math.max(0, Date.now() / 1000 - manifest.created);
  const ago = age < 90 ? `${Math.round(age)} s` : age < 5400 ? `${Math.round(age / 60)} min` : `${(age / 3600).toFixed(1)} h`;
  const made = new Date(manifest.created * 1000).toISOString().replace("T", " ").slice(0, 19);
  let s = `made ${made} UTC (${ago} ago)`;
  if (manifest.newest_event_time) s += `, newest play ${manifest.newest_event_time.replace("T", " ").replace("Z", "")}`;
  if (manifest.refresh_lag_seconds >= 0) s += `, refresh lag ${manifest.refresh_lag_seconds} s`;
  $("fresh").textContent = s;
}

let drag = null, moved = 0;
canvas.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY]; moved = 0; });
addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("mousemove", e => {
  if (!rows) return;
  if (drag) {
    moved += Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]);
    view.cx += (e.clientX - drag[0]) / view.scale;
    view.cy += (e.clientY - drag[1]) / view.scale;
    drag = [e.clientX, e.clientY];
    draw();
    return;
  }
  const i = pick(e.clientX, e.clientY, 12);
  if (i < 0) { tip.style.display = "none"; return; }
  tip.style.display = "block";
  tip.style.left = e.clientX + 12 + "px";
  tip.style.top = e.clientY + 12 + "px";
  tip.textContent = `${label(i)} by ${rows.creator[i]} — ${rows.avg_pp[i].toFixed(0)} pp avg, ` +
    `${rows.stars[i].toFixed(2)}★, ${rows.num_users[i]} players`;
});
canvas.addEventListener("click", e => {
  if (!rows || moved > 4) return;
  select(pick(e.clientX, e.clientY, 12));
});
canvas.addEventListener("wheel", e => {
  e.preventDefault();
  const k = Math.exp(-e.deltaY * 0.001);
  const wx = view.cx - (e.clientX - innerWidth / 2) / view.scale;
  const wy = view.cy - (e.clientY - innerHeight / 2 - 20) / view.scale;
  view.scale *= k;
  view.cx = wx + (e.clientX - innerWidth / 2) / view.scale;
  view.cy = wy + (e.clientY - innerHeight / 2 - 20) / view.scale;
  draw();
}, { passive: false });
fieldSel.addEventListener("change", () => { setScale(); draw(); });
$("search").addEventListener("input", e => search(e.target.value));
addEventListener("resize", resize);

function fromHash() { // #field=...&search=...&click=ITEM_ID
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("field") && FIELDS[h.get("field")]) { fieldSel.value = h.get("field"); setScale(); }
  if (h.get("search")) { $("search").value = h.get("search"); search(h.get("search")); }
  const id = h.get("click");
  if (id && byId.has(id)) { // a real click event at the item's place on screen
    const i = byId.get(id);
    let [sx, sy] = toScreen(i);
    if (sx < 0 || sy < 60 || sx > innerWidth - 360 || sy > innerHeight) { // hidden: bring it in
      centreOn(i);
      [sx, sy] = toScreen(i);
    }
    canvas.dispatchEvent(new MouseEvent("click", { clientX: sx, clientY: sy, bubbles: true }));
  }
  draw();
}

async function load() {
  const status = $("status");
  try {
    const [res, list] = await Promise.all([fetch("snapshots/latest"), fetch("snapshots")]);
    if (!res.ok) throw new Error(`snapshots/latest: HTTP ${res.status}`);
    rows = parseCorpus(await res.arrayBuffer());
    const manifests = list.ok ? await list.json() : [];
    manifest = manifests.length ? manifests[0] : null;
    $("snapshot").textContent = manifest ? manifest.id : "?";
    $("count").textContent = String(rows.n);
    for (let i = 0; i < rows.n; i++) byId.set(itemId(rows.id[i], rows.mods[i]), i);
    order = Array.from({ length: rows.n }, (_, i) => i).sort((a, b) => rows.num_users[b] - rows.num_users[a]);
    status.textContent = "";
    freshness(); setInterval(freshness, 5000);
    setScale(); fit(); resize(); fromHash();
    document.body.dataset.loaded = "1";
  } catch (err) {
    status.textContent = String(err.message || err);
    document.body.dataset.loaded = "error";
  }
}
addEventListener("hashchange", () => rows && fromHash());
resize();
load();
