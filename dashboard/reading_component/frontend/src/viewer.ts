// One image on a canvas: the stored 16-bit values windowed in the browser (a lookup table
// from stored value to grey, rebuilt per window), zoom about the cursor, pan, fit, 1:1,
// invert, the Grad-CAM of one finding as a colour overlay, the reader's marks, and a length
// measurement in millimetres from the image's pixel spacing. Canvas 2D, not WebGL: the
// windowing pass is a table lookup per pixel (a few ms for a 5-megapixel CR), and the
// same code runs on a reading-room thin client and in headless test browsers.

import type { Heatmap, ImageEntry, Mark } from "./types";
import { loadValues } from "./pixels";

export type Tool = "window" | "measure" | "mark";

export interface Measurement {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const JET: Array<[number, number, number]> = (() => {
  const out: Array<[number, number, number]> = [];
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
    const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
    const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
    out.push([Math.round(255 * r), Math.round(255 * g), Math.round(255 * b)]);
  }
  return out;
})();

/** A window value as a reader reads it: whole units on CR/DX, three digits on 0-1 rasters. */
function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

const OVERLAY_SIZE = 224; // the map is upsampled to this many pixels a side, then scaled with the image

/** Bilinear upsampling with pixel centres aligned (as OpenCV's resize), then the jet colours. */
export function heatmapCanvas(map: Heatmap, opacity: number): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = OVERLAY_SIZE;
  canvas.height = OVERLAY_SIZE;
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(OVERLAY_SIZE, OVERLAY_SIZE);
  const { rows, cols, values } = map;
  for (let y = 0; y < OVERLAY_SIZE; y++) {
    const fy = Math.min(rows - 1, Math.max(0, ((y + 0.5) * rows) / OVERLAY_SIZE - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(rows - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < OVERLAY_SIZE; x++) {
      const fx = Math.min(cols - 1, Math.max(0, ((x + 0.5) * cols) / OVERLAY_SIZE - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(cols - 1, x0 + 1);
      const wx = fx - x0;
      const v =
        values[y0 * cols + x0] * (1 - wx) * (1 - wy) +
        values[y0 * cols + x1] * wx * (1 - wy) +
        values[y1 * cols + x0] * (1 - wx) * wy +
        values[y1 * cols + x1] * wx * wy;
      const [r, g, b] = JET[Math.max(0, Math.min(255, Math.round(v * 255)))];
      const o = 4 * (y * OVERLAY_SIZE + x);
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = Math.round(255 * opacity * Math.min(1, 1.6 * v)); // cold regions stay clear
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

export class Viewport {
  readonly root: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly caption: HTMLDivElement;
  private readonly raster = document.createElement("canvas");
  private values: Uint16Array | null = null;
  private entry: ImageEntry | null = null;
  private center = 0;
  private width = 1;
  private inverted = false;
  private zoom = 1;
  private panX = 0;
  private panY = 0;
  private overlay: HTMLCanvasElement | null = null;
  private overlayLabel = "";
  private marks: Record<string, Mark> = {};
  private measurement: Measurement | null = null;
  private drag: { x: number; y: number; mode: "window" | "pan" | "measure"; c: number; w: number } | null = null;
  private pending = false;
  tool: Tool = "window";
  onPoint: ((x: number, y: number) => void) | null = null;
  onActivate: (() => void) | null = null;

  constructor() {
    this.root = document.createElement("div");
    this.root.className = "viewport";
    this.root.dataset.testid = "reader-viewport";
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d")!;
    this.caption = document.createElement("div");
    this.caption.className = "caption";
    this.root.append(this.canvas, this.caption);
    this.canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("dblclick", () => this.fit());
    this.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this.resize()).observe(this.root);
  }

  /** Show an image: its values are fetched (or taken from the prefetch), the view fitted. */
  async show(entry: ImageEntry): Promise<void> {
    this.entry = entry;
    this.values = null;
    this.measurement = null;
    this.center = entry.window[0];
    this.width = entry.window[1];
    this.inverted = entry.invert;
    this.root.dataset.imageId = String(entry.id ?? "");
    this.root.dataset.ready = "false";
    this.caption.textContent = "Loading…";
    const values = await loadValues(entry.url);
    if (this.entry !== entry) return; // another image was asked for meanwhile
    if (values.length !== entry.rows * entry.cols) throw new Error("image size does not match its pixels");
    this.values = values;
    this.raster.width = entry.cols;
    this.raster.height = entry.rows;
    this.fit();
    this.paintRaster();
    this.root.dataset.ready = "true";
  }

  get image(): ImageEntry | null {
    return this.entry;
  }

  setWindow(center: number, width: number): void {
    this.center = center;
    this.width = Math.max(width, this.entry ? this.entry.scale : 1e-6);
    this.schedule();
  }

  preset(name: string): void {
    if (!this.entry) return;
    const w = name === "default" ? this.entry.window : this.entry.presets[name];
    if (w) this.setWindow(w[0], w[1]);
  }

  toggleInvert(): void {
    this.inverted = !this.inverted;
    this.schedule();
  }

  setOverlay(label: string, map: Heatmap | null, opacity: number): void {
    this.overlayLabel = map ? label : "";
    this.overlay = map ? heatmapCanvas(map, opacity) : null;
    this.draw();
  }

  setMarks(marks: Record<string, Mark>): void {
    this.marks = marks;
    this.draw();
  }

  fit(): void {
    if (!this.entry) return;
    const { width, height } = this.canvas;
    this.zoom = Math.min(width / this.entry.cols, height / this.entry.rows) || 1;
    this.panX = (width - this.entry.cols * this.zoom) / 2;
    this.panY = (height - this.entry.rows * this.zoom) / 2;
    this.draw();
  }

  /** One image pixel per screen pixel, about the centre of the view. */
  actualSize(): void {
    if (!this.entry) return;
    this.zoomAbout(this.canvas.width / 2, this.canvas.height / 2, 1 / (this.zoom * window.devicePixelRatio));
  }

  private zoomAbout(sx: number, sy: number, factor: number): void {
    const next = Math.min(40, Math.max(0.02, this.zoom * factor));
    this.panX = sx - ((sx - this.panX) * next) / this.zoom;
    this.panY = sy - ((sy - this.panY) * next) / this.zoom;
    if (Math.abs(next * (window.devicePixelRatio || 1) - 1) < 1e-9) {
      this.panX = Math.round(this.panX); // 1:1 on whole pixels: each screen pixel one image pixel
      this.panY = Math.round(this.panY);
    }
    this.zoom = next;
    this.draw();
  }

  private resize(): void {
    const box = this.root.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.width * dpr));
    const h = Math.max(1, Math.round((box.height - this.caption.offsetHeight) * dpr));
    if (w === this.canvas.width && h === this.canvas.height) return;
    this.canvas.width = w;
    this.canvas.height = h;
    this.canvas.style.width = `${box.width}px`;
    this.canvas.style.height = `${h / dpr}px`;
    this.fit();
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.paintRaster();
    });
  }

  /** Window the stored values into the raster: one table entry per stored value. */
  private paintRaster(): void {
    const entry = this.entry;
    const values = this.values;
    if (!entry || !values) return;
    const lut = new Uint32Array(65536);
    const low = this.center - this.width / 2;
    for (let s = 0; s < 65536; s++) {
      const unit = Math.min(1, Math.max(0, (s * entry.scale + entry.offset - low) / this.width));
      const g = Math.round(255 * (this.inverted ? 1 - unit : unit));
      lut[s] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
    const ctx = this.raster.getContext("2d")!;
    const img = ctx.createImageData(entry.cols, entry.rows);
    const out = new Uint32Array(img.data.buffer);
    for (let i = 0; i < values.length; i++) out[i] = lut[values[i]];
    ctx.putImageData(img, 0, 0);
    this.draw();
  }

  private draw(): void {
    const entry = this.entry;
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!entry || !this.values) return;
    ctx.setTransform(this.zoom, 0, 0, this.zoom, this.panX, this.panY);
    ctx.imageSmoothingEnabled = this.zoom < 1; // at 1:1 and above, native pixels
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.raster, 0, 0);
    if (this.overlay) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.overlay, 0, 0, entry.cols, entry.rows);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.drawMarks(entry);
    this.drawMeasurement();
    this.describe(entry);
  }

  private toScreen(x: number, y: number): [number, number] {
    return [this.panX + x * this.zoom, this.panY + y * this.zoom];
  }

  private toImage(e: PointerEvent | WheelEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    const dpr = this.canvas.width / Math.max(1, r.width);
    const sx = (e.clientX - r.left) * dpr;
    const sy = (e.clientY - r.top) * dpr;
    return [(sx - this.panX) / this.zoom, (sy - this.panY) / this.zoom];
  }

  private drawMarks(entry: ImageEntry): void {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.font = `${13 * dpr}px sans-serif`;
    ctx.lineWidth = 3 * dpr;
    ctx.strokeStyle = ctx.fillStyle = "#ffd166";
    for (const [label, m] of Object.entries(this.marks)) {
      if (m.image_id !== null && m.image_id !== entry.id) continue; // a mark on another image
      const [x, y] = this.toScreen(m.x * entry.cols, m.y * entry.rows);
      const s = 8 * dpr;
      ctx.beginPath();
      ctx.moveTo(x - s, y - s);
      ctx.lineTo(x + s, y + s);
      ctx.moveTo(x + s, y - s);
      ctx.lineTo(x - s, y + s);
      ctx.stroke();
      ctx.fillText(label, x + s + 2, y - s); // text on a canvas: never markup
    }
  }

  /** Length in mm between two image points (PixelSpacing is rows then columns), else null. */
  lengthMm(m: Measurement): number | null {
    const spacing = this.entry?.spacing;
    if (!spacing) return null;
    return Math.hypot((m.x1 - m.x0) * spacing[1], (m.y1 - m.y0) * spacing[0]);
  }

  private drawMeasurement(): void {
    const m = this.measurement;
    if (!m) return;
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    const [ax, ay] = this.toScreen(m.x0, m.y0);
    const [bx, by] = this.toScreen(m.x1, m.y1);
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = ctx.fillStyle = "#4cc9f0";
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(bx, by);
    ctx.stroke();
    const mm = this.lengthMm(m);
    const px = Math.hypot(m.x1 - m.x0, m.y1 - m.y0);
    ctx.font = `${13 * dpr}px sans-serif`;
    ctx.fillText(mm === null ? `${px.toFixed(0)} px (no pixel spacing)` : `${mm.toFixed(1)} mm`, bx + 6 * dpr, by);
    this.root.dataset.measureMm = mm === null ? "" : mm.toFixed(2);
  }

  private describe(entry: ImageEntry): void {
    const d = this.root.dataset;
    d.window = `${this.center.toFixed(2)},${this.width.toFixed(2)}`;
    d.size = `${entry.cols},${entry.rows}`;
    d.zoom = this.zoom.toFixed(4);
    d.pan = `${this.panX.toFixed(2)},${this.panY.toFixed(2)}`;
    d.invert = String(this.inverted !== entry.invert);
    d.overlay = this.overlayLabel;
    const native = this.zoom * (window.devicePixelRatio || 1);
    const view = entry.view ? ` · ${entry.view}` : "";
    this.caption.textContent =
      `${entry.cols}×${entry.rows}${view} · W ${fmt(this.width)} L ${fmt(this.center)}` +
      ` · zoom ${(100 * this.zoom).toFixed(0)}%${Math.abs(native - 1) < 1e-3 ? " (1:1)" : ""}` +
      (this.overlayLabel ? ` · Grad-CAM: ${this.overlayLabel}` : "") +
      (this.tool !== "window" ? ` · ${this.tool === "mark" ? "click where the ▶ finding is" : "drag to measure"}` : "");
  }

  private wheel(e: WheelEvent): void {
    e.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    const dpr = this.canvas.width / Math.max(1, r.width);
    this.zoomAbout((e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr, Math.exp(-e.deltaY / 500));
  }

  private down(e: PointerEvent): void {
    this.onActivate?.();
    if (!this.entry || !this.values) return;
    if (this.tool === "mark" && e.button === 0) {
      const [x, y] = this.toImage(e);
      if (x >= 0 && y >= 0 && x <= this.entry.cols && y <= this.entry.rows) {
        this.onPoint?.(x / this.entry.cols, y / this.entry.rows);
      }
      return;
    }
    const pan = e.button === 1 || e.button === 2 || e.shiftKey || e.ctrlKey;
    const mode = pan ? "pan" : this.tool === "measure" ? "measure" : "window";
    this.drag = { x: e.clientX, y: e.clientY, mode, c: this.center, w: this.width };
    if (mode === "measure") {
      const [x, y] = this.toImage(e);
      this.measurement = { x0: x, y0: y, x1: x, y1: y };
    }
    this.canvas.setPointerCapture(e.pointerId);
  }

  private move(e: PointerEvent): void {
    const d = this.drag;
    if (!d || !this.entry) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (d.mode === "pan") {
      const dpr = window.devicePixelRatio || 1;
      this.panX += e.movementX * dpr;
      this.panY += e.movementY * dpr;
      this.draw();
    } else if (d.mode === "window") {
      // a drag across the view moves the window by its own width; right widens, down brightens
      const step = d.w / 300;
      this.setWindow(d.c - dy * step, Math.max(d.w + dx * step, this.entry.scale));
    } else if (this.measurement) {
      const [x, y] = this.toImage(e);
      this.measurement = { ...this.measurement, x1: x, y1: y };
      this.draw();
    }
  }

  private up(e: PointerEvent): void {
    this.drag = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
  }

  clearMeasurement(): void {
    this.measurement = null;
    delete this.root.dataset.measureMm;
    this.draw();
  }

  redraw(): void {
    this.draw();
  }
}
