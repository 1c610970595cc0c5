const _ = ":host,.reader{font-family:Source Sans Pro,sans-serif;font-size:14px;color:inherit}.reader{display:flex;gap:12px;height:max(440px,calc(100vh - 172px));outline:none}.images{flex:1 1 auto;display:flex;flex-direction:column;min-width:0}.thumbs{display:flex;gap:6px;margin-bottom:4px}.thumbs button{font-size:12px;padding:2px 8px;border-radius:6px;border:1px solid #888;background:transparent;color:inherit;cursor:pointer}.thumbs button[aria-pressed=true]{background:#ff4b4b;color:#fff;border-color:#ff4b4b}.viewports{flex:1 1 auto;display:flex;gap:6px;min-height:0}.viewport{flex:1 1 0;display:flex;flex-direction:column;min-width:0;min-height:0;background:#000;border-radius:6px;overflow:hidden}.viewport.active{box-shadow:0 0 0 2px #ff4b4b}.viewport canvas{display:block;flex:1 1 auto;cursor:crosshair;touch-action:none}.caption{font-size:12px;color:#ddd;padding:2px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.panel{flex:0 0 360px;display:flex;flex-direction:column;gap:4px;min-height:0;overflow-y:auto}.panel>*{flex-shrink:0}.status{min-height:22px;font-size:13px;padding:3px 8px;border-radius:6px}.status.saved{background:#21c35426}.status.refused{background:#ff2b2b26;font-weight:600}.status.info{background:#1c83e11f}.summary{display:flex;justify-content:space-between;font-size:13px}.rows{display:flex;flex-direction:column}.row{display:grid;grid-template-columns:14px 1fr 92px 64px;align-items:center;gap:4px;height:24px;padding:0 4px;border-radius:5px;cursor:pointer}.row.focused{background:#ff4b4b1f}.row .flag{font-size:12px}.row .name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.row.flagged .name{font-weight:600}.bar{position:relative;height:8px;background:#80808040;border-radius:4px}.bar .fill{position:absolute;left:0;top:0;bottom:0;background:#7f8fa6;border-radius:4px}.row.flagged .bar .fill{background:#ff8c42}.bar .thr{position:absolute;top:-3px;bottom:-3px;width:2px;background:currentColor}.state{text-align:center;font-size:12px;border-radius:5px;padding:1px 0;border:1px solid rgba(128,128,128,.5)}.row[data-state=present] .state{background:#d62828;color:#fff;border-color:#d62828}.row[data-state=absent] .state{background:#80808040}.row[data-state=unset] .state{color:#808080e6}.note{width:100%;box-sizing:border-box;font:inherit;font-size:13px;resize:none;height:30px;border-radius:6px;border:1px solid rgba(128,128,128,.5);background:transparent;color:inherit;padding:4px 6px}.actions{display:flex;gap:6px}.actions button{flex:1 1 auto;font:inherit;font-size:13px;padding:6px;border-radius:6px;border:1px solid rgba(128,128,128,.6);background:transparent;color:inherit;cursor:pointer}.actions button.primary{background:#ff4b4b;border-color:#ff4b4b;color:#fff}.actions button:disabled{opacity:.5;cursor:default}.keys{font-size:11.5px;color:gray;line-height:1.35}.disclaimer{font-size:11.5px;color:gray}";
const m = /* @__PURE__ */ new Map();
async function C(r) {
  const t = await fetch(r);
  if (!t.ok || !t.body) throw new Error(`image not served (${t.status})`);
  const e = t.body.pipeThrough(new DecompressionStream("deflate")), s = await new Response(e).arrayBuffer();
  return new Uint16Array(s);
}
function B(r) {
  let t = m.get(r);
  for (t ? m.delete(r) : (t = C(r), t.catch(() => m.delete(r))), m.set(r, t); m.size > 8; ) m.delete(m.keys().next().value);
  return t;
}
function N(r) {
  for (const t of r) B(t).catch(() => {
  });
}
const R = (() => {
  const r = [];
  for (let t = 0; t < 256; t++) {
    const e = t / 255, s = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * e - 3))), i = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * e - 2))), n = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * e - 1)));
    r.push([Math.round(255 * s), Math.round(255 * i), Math.round(255 * n)]);
  }
  return r;
})();
function z(r) {
  return Math.abs(r) >= 100 ? r.toFixed(0) : r.toPrecision(3);
}
const u = 224;
function A(r, t) {
  const e = document.createElement("canvas");
  e.width = u, e.height = u;
  const s = e.getContext("2d"), i = s.createImageData(u, u), { rows: n, cols: a, values: h } = r;
  for (let o = 0; o < u; o++) {
    const l = Math.min(n - 1, Math.max(0, (o + 0.5) * n / u - 0.5)), c = Math.floor(l), f = Math.min(n - 1, c + 1), w = l - c;
    for (let g = 0; g < u; g++) {
      const k = Math.min(a - 1, Math.max(0, (g + 0.5) * a / u - 0.5)), v = Math.floor(k), M = Math.min(a - 1, v + 1), x = k - v, E = h[c * a + v] * (1 - x) * (1 - w) + h[c * a + M] * x * (1 - w) + h[f * a + v] * (1 - x) * w + h[f * a + M] * x * w, [L, P, I] = R[Math.max(0, Math.min(255, Math.round(E * 255)))], b = 4 * (o * u + g);
      i.data[b] = L, i.data[b + 1] = P, i.data[b + 2] = I, i.data[b + 3] = Math.round(255 * t * Math.min(1, 1.6 * E));
    }
  }
  return s.putImageData(i, 0, 0), e;
}
class S {
  root;
  canvas;
  ctx;
  caption;
  raster = document.createElement("canvas");
  values = null;
  entry = null;
  center = 0;
  width = 1;
  inverted = !1;
  zoom = 1;
  panX = 0;
  panY = 0;
  overlay = null;
  overlayLabel = "";
  marks = {};
  measurement = null;
  drag = null;
  pending = !1;
  tool = "window";
  onPoint = null;
  onActivate = null;
  constructor() {
    this.root = document.createElement("div"), this.root.className = "viewport", this.root.dataset.testid = "reader-viewport", this.canvas = document.createElement("canvas"), this.ctx = this.canvas.getContext("2d"), this.caption = document.createElement("div"), this.caption.className = "caption", this.root.append(this.canvas, this.caption), this.canvas.addEventListener("wheel", (t) => this.wheel(t), { passive: !1 }), this.canvas.addEventListener("pointerdown", (t) => this.down(t)), this.canvas.addEventListener("pointermove", (t) => this.move(t)), this.canvas.addEventListener("pointerup", (t) => this.up(t)), this.canvas.addEventListener("dblclick", () => this.fit()), this.canvas.addEventListener("contextmenu", (t) => t.preventDefault()), new ResizeObserver(() => this.resize()).observe(this.root);
  }
  /** Show an image: its values are fetched (or taken from the prefetch), the view fitted. */
  async show(t) {
    this.entry = t, this.values = null, this.measurement = null, this.center = t.window[0], this.width = t.window[1], this.inverted = t.invert, this.root.dataset.imageId = String(t.id ?? ""), this.root.dataset.ready = "false", this.caption.textContent = "Loading…";
    const e = await B(t.url);
    if (this.entry === t) {
      if (e.length !== t.rows * t.cols) throw new Error("image size does not match its pixels");
      this.values = e, this.raster.width = t.cols, this.raster.height = t.rows, this.fit(), this.paintRaster(), this.root.dataset.ready = "true";
    }
  }
  get image() {
    return this.entry;
  }
  setWindow(t, e) {
    this.center = t, this.width = Math.max(e, this.entry ? this.entry.scale : 1e-6), this.schedule();
  }
  preset(t) {
    if (!this.entry) return;
    const e = t === "default" ? this.entry.window : this.entry.presets[t];
    e && this.setWindow(e[0], e[1]);
  }
  toggleInvert() {
    this.inverted = !this.inverted, this.schedule();
  }
  setOverlay(t, e, s) {
    this.overlayLabel = e ? t : "", this.overlay = e ? A(e, s) : null, this.draw();
  }
  setMarks(t) {
    this.marks = t, this.draw();
  }
  fit() {
    if (!this.entry) return;
    const { width: t, height: e } = this.canvas;
    this.zoom = Math.min(t / this.entry.cols, e / this.entry.rows) || 1, this.panX = (t - this.entry.cols * this.zoom) / 2, this.panY = (e - this.entry.rows * this.zoom) / 2, this.draw();
  }
  /** One image pixel per screen pixel, about the centre of the view. */
  actualSize() {
    this.entry && this.zoomAbout(this.canvas.width / 2, this.canvas.height / 2, 1 / (this.zoom * window.devicePixelRatio));
  }
  zoomAbout(t, e, s) {
    const i = Math.min(40, Math.max(0.02, this.zoom * s));
    this.panX = t - (t - this.panX) * i / this.zoom, this.panY = e - (e - this.panY) * i / this.zoom, Math.abs(i * (window.devicePixelRatio || 1) - 1) < 1e-9 && (this.panX = Math.round(this.panX), this.panY = Math.round(this.panY)), this.zoom = i, this.draw();
  }
  resize() {
    const t = this.root.getBoundingClientRect(), e = window.devicePixelRatio || 1, s = Math.max(1, Math.round(t.width * e)), i = Math.max(1, Math.round((t.height - this.caption.offsetHeight) * e));
    s === this.canvas.width && i === this.canvas.height || (this.canvas.width = s, this.canvas.height = i, this.canvas.style.width = `${t.width}px`, this.canvas.style.height = `${i / e}px`, this.fit());
  }
  schedule() {
    this.pending || (this.pending = !0, requestAnimationFrame(() => {
      this.pending = !1, this.paintRaster();
    }));
  }
  /** Window the stored values into the raster: one table entry per stored value. */
  paintRaster() {
    const t = this.entry, e = this.values;
    if (!t || !e) return;
    const s = new Uint32Array(65536), i = this.center - this.width / 2;
    for (let o = 0; o < 65536; o++) {
      const l = Math.min(1, Math.max(0, (o * t.scale + t.offset - i) / this.width)), c = Math.round(255 * (this.inverted ? 1 - l : l));
      s[o] = 4278190080 | c << 16 | c << 8 | c;
    }
    const n = this.raster.getContext("2d"), a = n.createImageData(t.cols, t.rows), h = new Uint32Array(a.data.buffer);
    for (let o = 0; o < e.length; o++) h[o] = s[e[o]];
    n.putImageData(a, 0, 0), this.draw();
  }
  draw() {
    const t = this.entry, e = this.ctx;
    e.setTransform(1, 0, 0, 1, 0, 0), e.fillStyle = "#000", e.fillRect(0, 0, this.canvas.width, this.canvas.height), !(!t || !this.values) && (e.setTransform(this.zoom, 0, 0, this.zoom, this.panX, this.panY), e.imageSmoothingEnabled = this.zoom < 1, e.imageSmoothingQuality = "high", e.drawImage(this.raster, 0, 0), this.overlay && (e.imageSmoothingEnabled = !0, e.drawImage(this.overlay, 0, 0, t.cols, t.rows)), e.setTransform(1, 0, 0, 1, 0, 0), this.drawMarks(t), this.drawMeasurement(), this.describe(t));
  }
  toScreen(t, e) {
    return [this.panX + t * this.zoom, this.panY + e * this.zoom];
  }
  toImage(t) {
    const e = this.canvas.getBoundingClientRect(), s = this.canvas.width / Math.max(1, e.width), i = (t.clientX - e.left) * s, n = (t.clientY - e.top) * s;
    return [(i - this.panX) / this.zoom, (n - this.panY) / this.zoom];
  }
  drawMarks(t) {
    const e = this.ctx, s = window.devicePixelRatio || 1;
    e.font = `${13 * s}px sans-serif`, e.lineWidth = 3 * s, e.strokeStyle = e.fillStyle = "#ffd166";
    for (const [i, n] of Object.entries(this.marks)) {
      if (n.image_id !== null && n.image_id !== t.id) continue;
      const [a, h] = this.toScreen(n.x * t.cols, n.y * t.rows), o = 8 * s;
      e.beginPath(), e.moveTo(a - o, h - o), e.lineTo(a + o, h + o), e.moveTo(a + o, h - o), e.lineTo(a - o, h + o), e.stroke(), e.fillText(i, a + o + 2, h - o);
    }
  }
  /** Length in mm between two image points (PixelSpacing is rows then columns), else null. */
  lengthMm(t) {
    const e = this.entry?.spacing;
    return e ? Math.hypot((t.x1 - t.x0) * e[1], (t.y1 - t.y0) * e[0]) : null;
  }
  drawMeasurement() {
    const t = this.measurement;
    if (!t) return;
    const e = this.ctx, s = window.devicePixelRatio || 1, [i, n] = this.toScreen(t.x0, t.y0), [a, h] = this.toScreen(t.x1, t.y1);
    e.lineWidth = 2 * s, e.strokeStyle = e.fillStyle = "#4cc9f0", e.beginPath(), e.moveTo(i, n), e.lineTo(a, h), e.stroke();
    const o = this.lengthMm(t), l = Math.hypot(t.x1 - t.x0, t.y1 - t.y0);
    e.font = `${13 * s}px sans-serif`, e.fillText(o === null ? `${l.toFixed(0)} px (no pixel spacing)` : `${o.toFixed(1)} mm`, a + 6 * s, h), this.root.dataset.measureMm = o === null ? "" : o.toFixed(2);
  }
  describe(t) {
    const e = this.root.dataset;
    e.window = `${this.center.toFixed(2)},${this.width.toFixed(2)}`, e.size = `${t.cols},${t.rows}`, e.zoom = this.zoom.toFixed(4), e.pan = `${this.panX.toFixed(2)},${this.panY.toFixed(2)}`, e.invert = String(this.inverted !== t.invert), e.overlay = this.overlayLabel;
    const s = this.zoom * (window.devicePixelRatio || 1), i = t.view ? ` · ${t.view}` : "";
    this.caption.textContent = `${t.cols}×${t.rows}${i} · W ${z(this.width)} L ${z(this.center)} · zoom ${(100 * this.zoom).toFixed(0)}%${Math.abs(s - 1) < 1e-3 ? " (1:1)" : ""}` + (this.overlayLabel ? ` · Grad-CAM: ${this.overlayLabel}` : "") + (this.tool !== "window" ? ` · ${this.tool === "mark" ? "click where the ▶ finding is" : "drag to measure"}` : "");
  }
  wheel(t) {
    t.preventDefault();
    const e = this.canvas.getBoundingClientRect(), s = this.canvas.width / Math.max(1, e.width);
    this.zoomAbout((t.clientX - e.left) * s, (t.clientY - e.top) * s, Math.exp(-t.deltaY / 500));
  }
  down(t) {
    if (this.onActivate?.(), !this.entry || !this.values) return;
    if (this.tool === "mark" && t.button === 0) {
      const [i, n] = this.toImage(t);
      i >= 0 && n >= 0 && i <= this.entry.cols && n <= this.entry.rows && this.onPoint?.(i / this.entry.cols, n / this.entry.rows);
      return;
    }
    const s = t.button === 1 || t.button === 2 || t.shiftKey || t.ctrlKey ? "pan" : this.tool === "measure" ? "measure" : "window";
    if (this.drag = { x: t.clientX, y: t.clientY, mode: s, c: this.center, w: this.width }, s === "measure") {
      const [i, n] = this.toImage(t);
      this.measurement = { x0: i, y0: n, x1: i, y1: n };
    }
    this.canvas.setPointerCapture(t.pointerId);
  }
  move(t) {
    const e = this.drag;
    if (!e || !this.entry) return;
    const s = t.clientX - e.x, i = t.clientY - e.y;
    if (e.mode === "pan") {
      const n = window.devicePixelRatio || 1;
      this.panX += t.movementX * n, this.panY += t.movementY * n, this.draw();
    } else if (e.mode === "window") {
      const n = e.w / 300;
      this.setWindow(e.c - i * n, Math.max(e.w + s * n, this.entry.scale));
    } else if (this.measurement) {
      const [n, a] = this.toImage(t);
      this.measurement = { ...this.measurement, x1: n, y1: a }, this.draw();
    }
  }
  up(t) {
    this.drag = null, this.canvas.hasPointerCapture(t.pointerId) && this.canvas.releasePointerCapture(t.pointerId);
  }
  clearMeasurement() {
    this.measurement = null, delete this.root.dataset.measureMm, this.draw();
  }
  redraw() {
    this.draw();
  }
}
const p = "No Finding", F = "J/K next/previous finding · P/A present/absent, then next · N normal: every finding absent, submit · Ctrl+Enter submit · M mark (then click) · O overlay · [ ] opacity · I invert · 1 lung 2 mediastinum 3 bone 0 file window · F fit · Z 1:1 · L measure · V next image · B side by side · Esc cancel", $ = { 1: "lung", 2: "mediastinum", 3: "bone", 0: "default" };
function d(r, t = "", e = "") {
  const s = document.createElement(r);
  return t && (s.className = t), e && (s.textContent = e), s;
}
class O {
  constructor(t) {
    this.outbox = t, this.root.tabIndex = -1, this.panel.dataset.testid = "verdict-panel";
    const e = d("div", "images");
    e.append(this.thumbs, this.viewportBox), this.note.placeholder = "Note (optional)", this.note.maxLength = 5e3;
    const s = d("div", "actions");
    s.append(this.normalButton, this.submitButton, this.nextButton), this.panel.append(this.status, this.summary, this.rowsBox, this.note, s), this.panel.append(d("div", "keys", F)), this.panel.append(d("div", "disclaimer", "Screening aid for radiologist review, not a diagnosis.")), this.root.append(e, this.panel), this.submitButton.addEventListener("click", () => this.submit()), this.normalButton.addEventListener("click", () => this.normal()), this.nextButton.addEventListener("click", () => this.outbox.navigate("next")), this.viewports.forEach((i, n) => {
      i.onActivate = () => this.activate(n), i.onPoint = (a, h) => this.placeMark(i, a, h);
    });
  }
  outbox;
  root = d("div", "reader");
  thumbs = d("div", "thumbs");
  viewportBox = d("div", "viewports");
  viewports = [new S(), new S()];
  status = d("div", "status");
  summary = d("div", "summary");
  panel = d("div", "panel");
  rowsBox = d("div", "rows");
  note = d("textarea", "note");
  submitButton = d("button", "primary", "Submit: unmarked findings absent (Ctrl+Enter)");
  normalButton = d("button", "", "Normal (N)");
  nextButton = d("button", "primary", "Read next");
  data = null;
  states = /* @__PURE__ */ new Map();
  marks = {};
  focus = 0;
  overlayOn = !0;
  overlayLabel = "";
  opacity = 0.45;
  active = 0;
  sideBySide = !1;
  shownAt = 0;
  saving = !1;
  queued = [];
  /** New data from Python: a new study resets the screen; the same study keeps what the
  reader did and shows the notice (a refusal keeps every key they pressed). */
  update(t) {
    const e = this.data?.study_id === t.study_id;
    this.data = t, this.saving = !1, e || this.open(t), this.showNotice(t.notice), this.renderPanel();
    const s = this.queued;
    this.queued = [];
    for (const i of s) this.handle(i);
  }
  open(t) {
    this.states = new Map(t.rows.map((s) => [s.label, s.state])), this.marks = { ...t.marks }, this.focus = 0, this.active = 0, this.sideBySide = !1, this.note.value = t.note, this.rowsBox.scrollTop = 0, this.root.dataset.study = String(t.study_id), this.shownAt = performance.now();
    const e = t.rows.find((s) => s.flagged && s.label !== p && t.heatmaps[s.label]);
    this.overlayOn = e !== void 0, this.overlayLabel = e?.label ?? "", this.buildRows(t), this.buildThumbs(t), this.layout();
    for (const s of this.viewports) s.tool = "window";
    this.showImage(0, 0), this.submitButton.hidden = this.normalButton.hidden = t.read_only, this.note.disabled = t.read_only, this.nextButton.hidden = !t.read_only;
  }
  buildRows(t) {
    this.rowsBox.replaceChildren(
      ...t.rows.map((e, s) => {
        const i = d("div", `row${e.flagged ? " flagged" : ""}`);
        i.dataset.label = e.label;
        const n = d("div", "bar"), a = d("div", "fill");
        a.style.width = `${(100 * Math.min(1, Math.max(0, e.probability))).toFixed(1)}%`;
        const h = d("div", "thr");
        h.style.left = `${(100 * Math.min(1, Math.max(0, e.threshold))).toFixed(1)}%`, n.append(a, h), n.title = `P ${(100 * e.probability).toFixed(0)}%, threshold ${(100 * e.threshold).toFixed(0)}%`;
        const o = d("div", "state");
        return o.addEventListener("click", (l) => {
          l.stopPropagation(), this.setFocus(s), this.mark(this.states.get(e.label) !== "present", !1);
        }), i.append(d("span", "flag", e.flagged ? "⚑" : ""), d("span", "name", e.label), n, o), i.addEventListener("click", () => this.setFocus(s)), i;
      })
    );
  }
  buildThumbs(t) {
    this.thumbs.replaceChildren(
      ...t.images.length > 1 ? t.images.map((e, s) => {
        const i = d("button", "", `${s + 1}: ${e.view || "view unknown"}${e.analysed ? "" : " (not analysed)"}`);
        return i.title = e.analysed ? "" : e.not_analysed, i.addEventListener("click", () => this.showImage(this.active, s)), i;
      }) : []
    );
  }
  layout() {
    const t = this.sideBySide && (this.data?.images.length ?? 0) > 1 ? 2 : 1;
    this.viewportBox.replaceChildren(...this.viewports.slice(0, t).map((e) => e.root)), this.viewports.forEach((e, s) => e.root.classList.toggle("active", t > 1 && s === this.active));
  }
  showImage(t, e) {
    const s = this.data;
    if (!s || s.images.length === 0) return;
    const i = (e % s.images.length + s.images.length) % s.images.length, n = this.viewports[t];
    n.root.dataset.index = String(i), n.show(s.images[i]).then(() => this.paintOverlays()).catch((a) => this.showNotice({ kind: "refused", text: `Image not shown: ${String(a)}` })), Array.from(this.thumbs.children).forEach(
      (a, h) => a.setAttribute("aria-pressed", String(h === i && t === this.active))
    );
  }
  activate(t) {
    this.active = t, this.layout();
  }
  get activeViewport() {
    return this.viewports[this.sideBySide ? this.active : 0];
  }
  /** The focused finding's map on each shown image it was computed on; never "No Finding". */
  paintOverlays() {
    const t = this.data;
    if (!t) return;
    const e = this.overlayOn && this.overlayLabel ? t.heatmaps[this.overlayLabel] : void 0;
    for (const s of this.viewports) {
      const i = e && (e.image_id === null || e.image_id === s.image?.id || t.images.length === 1);
      s.setOverlay(this.overlayLabel, i && e ? e : null, this.opacity), s.setMarks(this.marks);
    }
  }
  renderPanel() {
    const t = this.data;
    if (!t) return;
    const e = t.rows.map((a) => a.label);
    this.panel.dataset.focused = e[this.focus] ?? "", this.panel.dataset.study = String(t.study_id), this.panel.dataset.saving = String(this.saving), Array.from(this.rowsBox.children).forEach((a, h) => {
      const o = a, l = e[h], c = this.states.get(l) ?? "unset";
      o.dataset.state = c, o.classList.toggle("focused", h === this.focus);
      const f = c === "present" ? "present" : c === "absent" ? "absent" : "·";
      o.lastElementChild.textContent = l in this.marks ? `${f} ✕` : f;
    }), this.rowsBox.children[this.focus]?.scrollIntoView({ block: "nearest" });
    const i = e.filter((a) => a !== p && this.states.get(a) === "present"), n = t.abnormal === null ? "" : `P(abnormal) ${(100 * t.abnormal).toFixed(0)}%`;
    this.summary.replaceChildren(
      d("span", "", n + (t.outside_domain ? " · outside the model's domain: read without it" : "")),
      d("span", "", i.length ? `${i.length} present` : "no finding marked")
    ), this.submitButton.disabled = this.normalButton.disabled = this.saving;
  }
  showNotice(t) {
    const e = this.data, s = t ?? (e?.read_only ? { kind: "info", text: `Read-only: ${e.reason}` } : null);
    this.status.className = `status${s ? ` ${s.kind}` : ""}`, this.status.textContent = s?.text ?? "", this.status.dataset.testid = "reader-status";
  }
  setFocus(t) {
    const e = this.data;
    if (!e || e.rows.length === 0) return;
    this.focus = Math.max(0, Math.min(e.rows.length - 1, t));
    const s = e.rows[this.focus].label;
    s !== p && e.heatmaps[s] && (this.overlayLabel = s, this.paintOverlays()), this.renderPanel();
  }
  /** Set the focused row present or absent (then go on when asked). "No Finding" present
  clears every finding; a finding present clears "No Finding". */
  mark(t, e = !0) {
    const s = this.data;
    if (!s || s.rows.length === 0) return;
    if (s.read_only) return this.showNotice({ kind: "info", text: `Read-only: ${s.reason}` });
    const i = s.rows[this.focus].label;
    if (this.states.set(i, t ? "present" : "absent"), t && i === p) {
      for (const n of s.rows) n.label !== p && this.states.set(n.label, "absent");
      this.marks = {};
    } else t && this.states.get(p) === "present" && this.states.set(p, "absent");
    t || delete this.marks[i], this.paintOverlays(), e ? this.setFocus(this.focus + 1) : this.renderPanel();
  }
  placeMark(t, e, s) {
    const i = this.data;
    if (!i) return;
    const n = i.rows[this.focus]?.label;
    if (t.tool = "window", !n || n === p) {
      this.showNotice({ kind: "info", text: "Move ▶ to a finding (J/K) before clicking where it is." });
      return;
    }
    this.marks[n] = { x: e, y: s, image_id: i.images.length > 1 ? t.image?.id ?? null : null }, this.mark(!0, !1);
  }
  normal() {
    const t = this.data;
    if (!(!t || t.read_only || this.saving)) {
      for (const e of t.rows) this.states.set(e.label, e.label === p ? "present" : "absent");
      this.marks = {}, this.renderPanel(), this.submit();
    }
  }
  submit() {
    const t = this.data;
    if (!t || this.saving) return;
    if (t.read_only) return this.showNotice({ kind: "info", text: `Read-only: ${t.reason}` });
    const e = performance.now() - this.shownAt;
    if (e < t.min_look_ms)
      return this.showNotice({
        kind: "refused",
        text: "Not saved: the study had only just opened. Look at it, then submit again."
      });
    this.saving = !0, this.showNotice({ kind: "info", text: `Saving study ${t.study_id}…` }), this.renderPanel(), this.outbox.submit({
      study_id: t.study_id,
      states: Object.fromEntries(this.states),
      marks: this.marks,
      note: this.note.value,
      shown_ms: Math.round(e)
    });
  }
  /** Every key of the reading screen. Keys typed into the note stay text (Ctrl+Enter still
  submits, Esc leaves the note); keys typed into any other page field are not ours. */
  onKey(t) {
    const e = t.composedPath()[0];
    if (!(e && (e.tagName === "INPUT" || e.tagName === "TEXTAREA" || e.isContentEditable) && e !== this.note) && !(e === this.note && !(t.key === "Enter" && (t.ctrlKey || t.metaKey)) && t.key !== "Escape") && !(t.altKey || (t.ctrlKey || t.metaKey) && t.key !== "Enter") && this.isOurs(t)) {
      if (t.preventDefault(), t.stopPropagation(), this.saving) {
        this.queued.push(t);
        return;
      }
      this.handle(t);
    }
  }
  isOurs(t) {
    return t.key === "Enter" && (t.ctrlKey || t.metaKey) || /^[jkpanmoifzlvb0123[\]]$/i.test(t.key) || ["ArrowUp", "ArrowDown", "Escape"].includes(t.key);
  }
  handle(t) {
    if (t.key === "Enter") return this.submit();
    const e = this.activeViewport, s = t.key.length === 1 ? t.key.toLowerCase() : t.key;
    switch (s) {
      case "j":
      case "ArrowDown":
        return this.setFocus(this.focus + 1);
      case "k":
      case "ArrowUp":
        return this.setFocus(this.focus - 1);
      case "p":
        return this.mark(!0);
      case "a":
        return this.mark(!1);
      case "n":
        return this.normal();
      case "m":
        return e.tool = e.tool === "mark" ? "window" : "mark", e.redraw();
      case "l":
        return e.tool = e.tool === "measure" ? "window" : "measure", e.redraw();
      case "o":
        return this.overlayOn = !this.overlayOn, this.paintOverlays();
      case "[":
        return this.opacity = Math.max(0.1, this.opacity - 0.1), this.paintOverlays();
      case "]":
        return this.opacity = Math.min(0.9, this.opacity + 0.1), this.paintOverlays();
      case "i":
        return e.toggleInvert();
      case "f":
        return e.fit();
      case "z":
        return e.actualSize();
      case "v":
        return this.showImage(this.sideBySide ? this.active : 0, Number(e.root.dataset.index ?? 0) + 1);
      case "b":
        return this.toggleSideBySide();
      case "Escape":
        this.note.blur();
        for (const i of this.viewports)
          i.tool = "window", i.clearMeasurement();
        return;
      default:
        s in $ && e.preset($[s]);
    }
  }
  toggleSideBySide() {
    !this.data || this.data.images.length < 2 || (this.sideBySide = !this.sideBySide, this.layout(), this.sideBySide && this.showImage(1, Number(this.viewports[0].root.dataset.index ?? 0) + 1));
  }
}
const y = /* @__PURE__ */ new WeakMap();
function Y(r, t) {
  const e = document.createElement("style");
  e.textContent = _;
  const s = new O({
    submit: (a) => n.trigger("submit", a),
    navigate: (a) => n.trigger("navigate", a)
  });
  r.append(e, s.root);
  const i = (a) => s.onKey(a);
  window.addEventListener("keydown", i, !0);
  const n = {
    reader: s,
    trigger: t,
    cleanup: () => {
      window.removeEventListener("keydown", i, !0), y.delete(r);
    }
  };
  return y.set(r, n), n;
}
const T = ({ data: r, parentElement: t, setTriggerValue: e }) => {
  const s = y.get(t) ?? Y(t, e);
  return s.trigger = e, s.reader.update(r), N(r.prefetch), s.cleanup;
};
export {
  T as default
};
