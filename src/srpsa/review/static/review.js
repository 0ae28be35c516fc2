// srpsa review page: plain JS, no build step, nothing loaded from outside this server.
// Image coordinates follow srpsa: pixel (row i, col j) covers x in [j - 0.5, j + 0.5].
"use strict";

const S = {
  images: [], name: null, meta: null, version: null,
  circles: new Map(),          // uid -> {uid, id (row id in the loaded table or null), x, y, r, score, edge, source, quality}
  selected: new Set(), undo: [], redo: [], nextUid: 1,
  view: { s: 1, tx: 0, ty: 0 }, img: null, levels: [], mode: "select", colour: "score",
  drag: null, dirty: false, saving: false,
};
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

// ---- API -------------------------------------------------------------------------------------
async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
function status(text, isError) { const el = $("status"); el.textContent = text; el.classList.toggle("error", !!isError); }
const enc = encodeURIComponent;

async function loadList() {
  const data = await api("/api/images");
  S.images = data.images;
  $("folder").textContent = data.folder;
  const body = $("list").querySelector("tbody");
  body.innerHTML = "";
  for (const im of S.images) {
    const tr = document.createElement("tr");
    tr.dataset.name = im.name;
    const tag = !im.image_ok ? '<span class="tag bad">image missing</span>' : im.reviewed ? '<span class="tag">reviewed</span>' : "";
    tr.innerHTML = `<td class="name"></td><td>${im.count} (${im.count_used})</td><td>${tag}</td>`;
    tr.firstChild.textContent = im.name;
    tr.classList.toggle("current", im.name === S.name);
    tr.addEventListener("click", () => openImage(im.name));
    body.appendChild(tr);
  }
}

async function openImage(name, keepView) {
  if (S.dirty && name !== S.name && !confirm(`${S.name} has unsaved changes. Discard them?`)) return;
  const meta = await api(`/api/images/${enc(name)}`);
  S.name = name; S.meta = meta; S.version = meta.version;
  S.circles.clear(); S.selected.clear(); S.undo = []; S.redo = []; S.nextUid = 1;
  for (const c of meta.circles) { const uid = S.nextUid++; S.circles.set(uid, { ...c, uid }); }
  setDirty(false);
  $("title").textContent = name;
  updateStats();
  for (const tr of $("list").querySelectorAll("tbody tr")) tr.classList.toggle("current", tr.dataset.name === name);
  if (!keepView) fit();
  if (!meta.image_ok) { S.img = null; S.levels = []; status(`source image ${meta.image} is missing: circles are shown on an empty canvas and cannot be saved`, true); draw(); return; }
  status(`${name}: ${meta.width} x ${meta.height} px, loading the image...`);
  // An image pyramid: a preview first (fast), then larger levels in the background. Each frame draws the
  // smallest level that still has a pixel per screen pixel, so zoomed-out views never make the browser
  // shrink the full 15-Mpx image.
  S.levels = []; S.img = null;
  const side = Math.max(meta.width, meta.height);
  const sizes = [1600, 3200].filter((m) => m < side).concat([0]);
  let first = true;
  for (const m of sizes) {
    const img = await loadImage(`/api/images/${enc(name)}/pixels?max=${m}`).catch((e) => { status(`image: ${e.message}`, true); return null; });
    if (S.name !== name) return;
    if (!img) break;
    S.levels.push({ img, scale: img.width / meta.width });
    warm(img);
    S.img = img; draw();
    if (first) { status(`${name}: ${S.circles.size} circles`); first = false; }
  }
}
function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => img.decode().then(() => resolve(img), () => resolve(img));
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}
const warmCanvas = document.createElement("canvas");
function warm(img) {
  // Draw a new level once off screen, so its first use while zooming does not stall a frame.
  warmCanvas.width = 64; warmCanvas.height = 64;
  warmCanvas.getContext("2d").drawImage(img, 0, 0, 64, 64);
}
function levelFor(s) {
  for (const lv of S.levels) if (lv.scale >= s) return lv.img;
  return S.levels.length ? S.levels[S.levels.length - 1].img : null;
}

async function save() {
  if (!S.meta || S.saving) return;
  S.saving = true; status("saving...");
  const circles = [...S.circles.values()].map((c) => ({ id: c.id, x: c.x, y: c.y, r: c.r }));
  try {
    const res = await api(`/api/images/${enc(S.name)}/save`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version: S.version, circles }),
    });
    setDirty(false);
    await openImage(S.name, true);
    await loadList();
    const ch = res.changes;
    status(`saved ${S.name}: ${res.count} circles (${ch.added} added, ${ch.edited} edited, ${ch.deleted} deleted); summary, overlay, PSD, summary.csv and report updated`);
  } catch (e) {
    status(`not saved: ${e.message}`, true);
  } finally { S.saving = false; }
}

// ---- edits with undo/redo ---------------------------------------------------------------------
// Every edit replaces some circles (before) by others (after); undo swaps them back.
function apply(before, after) {
  for (const c of before) { S.circles.delete(c.uid); S.selected.delete(c.uid); }
  for (const c of after) S.circles.set(c.uid, { ...c });
}
function commit(before, after) {
  if (!before.length && !after.length) return;
  apply(before, after);
  S.undo.push({ before, after }); S.redo = [];
  setDirty(true); draw();
}
function undo() { const op = S.undo.pop(); if (!op) return; apply(op.after, op.before); S.redo.push(op); setDirty(true); draw(); }
function redo() { const op = S.redo.pop(); if (!op) return; apply(op.before, op.after); S.undo.push(op); setDirty(true); draw(); }
function deleteSelected() {
  const gone = [...S.selected].map((u) => ({ ...S.circles.get(u) }));
  commit(gone, []);
  status(`${gone.length} circle(s) deleted`);
}
function changeSelected(update) {
  // One undoable step: every selected circle replaced by its updated copy (selection kept).
  const before = [...S.selected].map((u) => ({ ...S.circles.get(u) }));
  const after = before.map((c) => { const n = clampCentre({ ...c, ...update(c) }); n.edge = onBorder(n); return n; });
  commit(before, after);
  after.forEach((c) => S.selected.add(c.uid)); updateStats();
}
function setDirty(v) {
  S.dirty = v;
  $("save").classList.toggle("dirty", v);
  $("undo").disabled = !S.undo.length; $("redo").disabled = !S.redo.length;
  updateStats();
}
function updateStats() {
  if (!S.meta) return;
  const n = S.circles.size;
  const d50 = S.meta.d50 == null ? "-" : `${(+S.meta.d50).toPrecision(4)} ${S.meta.unit}`;
  $("stats").textContent = `${n} circles${S.dirty ? " (unsaved)" : ""} | saved: ${S.meta.count} circles, D50 ${d50}` +
    (S.selected.size ? ` | ${S.selected.size} selected` : "");
}

// ---- view ----------------------------------------------------------------------------------------
function resize() {
  const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(r.width * dpr); canvas.height = Math.round(r.height * dpr);
  draw();
}
function fit() {
  if (!S.meta) return;
  const r = canvas.getBoundingClientRect();
  const s = Math.min(r.width / S.meta.width, r.height / S.meta.height) * 0.98;
  S.view = { s, tx: (r.width - S.meta.width * s) / 2 + 0.5 * s, ty: (r.height - S.meta.height * s) / 2 + 0.5 * s };
  draw();
}
const toScreen = (x, y) => [x * S.view.s + S.view.tx, y * S.view.s + S.view.ty];
const toImage = (sx, sy) => [(sx - S.view.tx) / S.view.s, (sy - S.view.ty) / S.view.s];
function zoomAt(sx, sy, factor) {
  const s = Math.min(64, Math.max(0.01, S.view.s * factor)), k = s / S.view.s;
  S.view = { s, tx: sx - (sx - S.view.tx) * k, ty: sy - (sy - S.view.ty) * k };
  draw();
}

// ---- drawing: the image once, then circles batched by colour (one path per colour) ---------------
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(t) {
  t = 0.3 + 0.7 * Math.min(1, Math.max(0, t));  // as the overlay: the dark low end is hard to see
  const f = t * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(f)), u = f - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + (VIRIDIS[i + 1][k] - v) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
const SOURCE_COLOURS = { auto: "#37d36b", added: "#35c9ff", edited: "#ff9f1a" };
const QUALITY_COLOURS = { ok: "#37d36b", doubtful: "#ffd000", failed: "#ff3b3b" };
const EDGE = "#ff3bff";
function colourOf(c) {
  if (c.edge) return EDGE;
  if (S.colour === "source") return SOURCE_COLOURS[c.source] || "#ffffff";
  if (S.colour === "quality") return QUALITY_COLOURS[c.quality] || "#bbbbbb";
  return c.score == null ? SOURCE_COLOURS.added : viridis(Math.round(c.score * 20) / 20);
}
let frame = 0;
function draw() { if (!frame) frame = requestAnimationFrame(render); }
function render() {
  frame = 0;
  const dpr = window.devicePixelRatio || 1, W = canvas.width / dpr, H = canvas.height / dpr;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#333"; ctx.fillRect(0, 0, W, H);
  if (!S.meta) return;
  const { s, tx, ty } = S.view;
  ctx.imageSmoothingEnabled = s < 2;
  const img = levelFor(s);
  if (img) ctx.drawImage(img, tx - 0.5 * s, ty - 0.5 * s, S.meta.width * s, S.meta.height * s);
  else { ctx.fillStyle = "#555"; ctx.fillRect(tx - 0.5 * s, ty - 0.5 * s, S.meta.width * s, S.meta.height * s); }
  const groups = new Map(), sel = [];
  for (const c of S.circles.values()) {
    const sx = c.x * s + tx, sy = c.y * s + ty, sr = Math.max(1.5, c.r * s);
    if (sx + sr < 0 || sy + sr < 0 || sx - sr > W || sy - sr > H) continue;  // off screen
    if (S.selected.has(c.uid)) { sel.push([sx, sy, sr]); continue; }
    const col = colourOf(c);
    if (!groups.has(col)) groups.set(col, new Path2D());
    const p = groups.get(col); p.moveTo(sx + sr, sy); p.arc(sx, sy, sr, 0, 2 * Math.PI);
  }
  ctx.lineWidth = 1.5;
  for (const [col, p] of groups) { ctx.strokeStyle = col; ctx.stroke(p); }
  if (sel.length) {
    const p = new Path2D();
    for (const [sx, sy, sr] of sel) { p.moveTo(sx + sr, sy); p.arc(sx, sy, sr, 0, 2 * Math.PI); }
    ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.stroke(p);
    ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff"; ctx.stroke(p);
  }
  const d = S.drag;
  if (d && d.kind === "add" && d.r > 0) {
    const [sx, sy] = toScreen(d.x, d.y);
    ctx.setLineDash([5, 4]); ctx.strokeStyle = SOURCE_COLOURS.added; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(sx, sy, d.r * s, 0, 2 * Math.PI); ctx.stroke(); ctx.setLineDash([]);
  }
  if (d && d.kind === "box") {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
    ctx.strokeRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0); ctx.setLineDash([]);
  }
  legend();
}
function legend() {
  const sw = (col, text) => `<span class="swatch" style="background:${col}"></span>${text}`;
  let html;
  if (S.colour === "source") html = sw(SOURCE_COLOURS.auto, "auto") + sw(SOURCE_COLOURS.added, "added") + sw(SOURCE_COLOURS.edited, "edited");
  else if (S.colour === "quality") html = sw(QUALITY_COLOURS.ok, "ok") + sw(QUALITY_COLOURS.doubtful, "doubtful") + sw(QUALITY_COLOURS.failed, "failed") + sw("#bbbbbb", "no flag");
  else html = sw(viridis(0), "score 0") + sw(viridis(0.5), "0.5") + sw(viridis(1), "1") + sw(SOURCE_COLOURS.added, "added (no score)");
  $("legend").innerHTML = html + sw(EDGE, "on the border (left out of statistics)") + sw("#fff", "selected");
}

// ---- mouse ---------------------------------------------------------------------------------------
function pointer(ev) { const r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; }
function hit(sx, sy) {
  // The circle under the cursor: "rim" within 6 screen px of the circle, else "body"; smallest wins.
  const [x, y] = toImage(sx, sy), tol = 6 / S.view.s;
  let best = null;
  for (const c of S.circles.values()) {
    const d = Math.hypot(x - c.x, y - c.y);
    if (d > c.r + tol) continue;
    const part = Math.abs(d - c.r) <= tol && c.r * S.view.s > 10 ? "rim" : "body";
    if (!best || c.r < best.c.r) best = { c, part };
  }
  return best;
}
canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
canvas.addEventListener("pointerdown", (ev) => {
  if (!S.meta) return;
  canvas.setPointerCapture(ev.pointerId);
  const [sx, sy] = pointer(ev);
  const [x, y] = toImage(sx, sy);
  if (ev.button === 1 || ev.button === 2) { S.drag = { kind: "pan", sx, sy, tx: S.view.tx, ty: S.view.ty }; return; }
  if (S.mode === "add") { S.drag = clampCentre({ kind: "add", x, y, r: 0 }); return; }
  if (ev.shiftKey && !hit(sx, sy)) { S.drag = { kind: "box", x0: sx, y0: sy, x1: sx, y1: sy }; return; }
  const h = hit(sx, sy);
  if (!h) { if (!ev.shiftKey) S.selected.clear(); S.drag = { kind: "pan", sx, sy, tx: S.view.tx, ty: S.view.ty, moved: false }; updateStats(); draw(); return; }
  if (ev.shiftKey) { S.selected.has(h.c.uid) ? S.selected.delete(h.c.uid) : S.selected.add(h.c.uid); updateStats(); draw(); return; }
  if (!S.selected.has(h.c.uid)) { S.selected.clear(); S.selected.add(h.c.uid); }
  const uids = h.part === "rim" ? [h.c.uid] : [...S.selected];
  S.drag = { kind: h.part === "rim" ? "resize" : "move", x, y, uids, start: uids.map((u) => ({ ...S.circles.get(u) })) };
  updateStats(); draw();
});
canvas.addEventListener("pointermove", (ev) => {
  const [sx, sy] = pointer(ev);
  const d = S.drag;
  if (!d) {
    if (!S.meta) return;
    const h = S.mode === "select" ? hit(sx, sy) : null;
    canvas.style.cursor = S.mode === "add" ? "crosshair" : h ? (h.part === "rim" ? "nwse-resize" : "move") : "grab";
    return;
  }
  const [x, y] = toImage(sx, sy);
  if (d.kind === "pan") { S.view.tx = d.tx + sx - d.sx; S.view.ty = d.ty + sy - d.sy; }
  else if (d.kind === "add") d.r = Math.hypot(x - d.x, y - d.y);
  else if (d.kind === "box") { d.x1 = sx; d.y1 = sy; }
  else if (d.kind === "move") d.start.forEach((c0) => clampCentre(Object.assign(S.circles.get(c0.uid), { x: c0.x + x - d.x, y: c0.y + y - d.y })));
  else if (d.kind === "resize") { const c0 = d.start[0]; S.circles.get(c0.uid).r = Math.max(0.5, Math.hypot(x - c0.x, y - c0.y)); }
  draw();
});
canvas.addEventListener("pointerup", (ev) => {
  const d = S.drag; S.drag = null;
  if (!d) return;
  if (d.kind === "add") {
    if (d.r * S.view.s >= 3) {
      const c = { uid: S.nextUid++, id: null, x: d.x, y: d.y, r: Math.max(0.5, d.r), score: null, edge: false, source: "added", quality: null };
      c.edge = onBorder(c);
      commit([], [c]); status(`circle added at (${c.x.toFixed(1)}, ${c.y.toFixed(1)}), r ${c.r.toFixed(1)} px`);
    } else status("drag from the centre out to the rim to add a circle");
  } else if (d.kind === "box") {
    const [ax, ay] = toImage(Math.min(d.x0, d.x1), Math.min(d.y0, d.y1)), [bx, by] = toImage(Math.max(d.x0, d.x1), Math.max(d.y0, d.y1));
    for (const c of S.circles.values()) if (c.x >= ax && c.x <= bx && c.y >= ay && c.y <= by) S.selected.add(c.uid);
    updateStats();
  } else if (d.kind === "move" || d.kind === "resize") {
    const after = d.start.map((c0) => { const c = { ...S.circles.get(c0.uid) }; c.edge = onBorder(c); return c; });
    const changed = after.some((c, i) => c.x !== d.start[i].x || c.y !== d.start[i].y || c.r !== d.start[i].r);
    if (changed) {  // back to the start, then forward again as one undoable step
      apply(after, d.start); commit(d.start, after);
      d.uids.forEach((u) => S.selected.add(u)); updateStats();
    }
  }
  draw();
});
function clampCentre(c) {
  // The server takes centres inside the image only; keep them there while editing.
  c.x = Math.min(S.meta.width - 0.5, Math.max(-0.5, c.x)); c.y = Math.min(S.meta.height - 0.5, Math.max(-0.5, c.y));
  return c;
}
function onBorder(c) { return c.x - c.r <= -0.5 || c.y - c.r <= -0.5 || c.x + c.r >= S.meta.width - 0.5 || c.y + c.r >= S.meta.height - 0.5; }
canvas.addEventListener("wheel", (ev) => { ev.preventDefault(); const [sx, sy] = pointer(ev); zoomAt(sx, sy, Math.exp(-ev.deltaY * 0.0015)); }, { passive: false });

// ---- keys and buttons ------------------------------------------------------------------------------
function setMode(m) { S.mode = m; $("mode").textContent = m === "add" ? "add" : "select"; $("mode").classList.toggle("add", m === "add"); }
function step(k) {
  const i = S.images.findIndex((im) => im.name === S.name), j = i + k;
  if (j >= 0 && j < S.images.length) openImage(S.images[j].name);
}
document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") return;
  const k = ev.key.toLowerCase(), mod = ev.ctrlKey || ev.metaKey;
  const r = canvas.getBoundingClientRect();
  if (mod && k === "z") { ev.preventDefault(); ev.shiftKey ? redo() : undo(); }
  else if (mod && k === "y") { ev.preventDefault(); redo(); }
  else if (mod && k === "s") { ev.preventDefault(); save(); }
  else if (mod && k === "a") { ev.preventDefault(); S.circles.forEach((c) => S.selected.add(c.uid)); updateStats(); draw(); }
  else if (mod) return;
  else if (k === "delete" || k === "backspace") { ev.preventDefault(); deleteSelected(); }
  else if ((k === "[" || k === "]") && S.selected.size) {
    const f = k === "]" ? 1.05 : 1 / 1.05;
    changeSelected((c) => ({ r: Math.max(0.5, c.r * f) }));
  } else if (k.startsWith("arrow") && S.selected.size) {
    ev.preventDefault();
    const d = (ev.shiftKey ? 10 : 1) * (k === "arrowleft" || k === "arrowup" ? -1 : 1);
    changeSelected((c) => (k === "arrowleft" || k === "arrowright" ? { x: c.x + d } : { y: c.y + d }));
  }
  else if (k === "a") setMode("add");
  else if (k === "v") setMode("select");
  else if (k === "escape") { setMode("select"); S.selected.clear(); S.drag = null; updateStats(); draw(); }
  else if (k === "f") fit();
  else if (k === "+" || k === "=") zoomAt(r.width / 2, r.height / 2, 1.25);
  else if (k === "-" || k === "_") zoomAt(r.width / 2, r.height / 2, 0.8);
  else if (k === "n" || k === "pagedown") step(1);
  else if (k === "p" || k === "pageup") step(-1);
  else if (k === "c") { S.colour = S.colour === "score" ? "source" : "score"; $("colour").value = S.colour; draw(); }
});
$("colour").addEventListener("change", (ev) => { S.colour = ev.target.value; draw(); });
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("save").addEventListener("click", save);
$("mode").addEventListener("click", () => setMode(S.mode === "add" ? "select" : "add"));
window.addEventListener("resize", resize);
window.addEventListener("beforeunload", (ev) => { if (S.dirty) { ev.preventDefault(); ev.returnValue = ""; } });

// For tests and the console: state, coordinate transforms.
window.srpsaReview = { state: S, toScreen, toImage, openImage, save, render, zoomAt, fit };

(async () => {
  resize();
  try {
    await loadList();
    if (S.images.length) await openImage(S.images[0].name);
    else status("no images in this folder", true);
  } catch (e) { status(e.message, true); }
})();
