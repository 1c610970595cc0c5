// The reading screen: the study's images and the verdict panel as one piece of the page
// that owns its keys. A key changes the screen at once and never reruns the Python script;
// only a submission (or "Read next") goes back to Python, carrying the id of the study it
// was made on. Keys pressed while a submission is being saved are kept and applied, in
// order, once the next study (or the refusal) is on screen: none is lost.

import { Viewport } from "./viewer";
import { NO_FINDING } from "./types";
import type { Mark, Notice, ReaderData, RowState, Submission } from "./types";

export interface Outbox {
  submit(submission: Submission): void;
  navigate(to: "next"): void;
}

const KEYS_HELP =
  "J/K next/previous finding · P/A present/absent, then next · N normal: every finding absent, submit · " +
  "Ctrl+Enter submit · M mark (then click) · O overlay · [ ] opacity · I invert · 1 lung 2 mediastinum " +
  "3 bone 0 file window · F fit · Z 1:1 · L measure · V next image · B side by side · Esc cancel";
const PRESET_KEYS: Record<string, string> = { "1": "lung", "2": "mediastinum", "3": "bone", "0": "default" };

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text) node.textContent = text; // text, never markup: labels and reasons come from files and users
  return node;
}

export class Reader {
  readonly root = el("div", "reader");
  private readonly thumbs = el("div", "thumbs");
  private readonly viewportBox = el("div", "viewports");
  private readonly viewports: Viewport[] = [new Viewport(), new Viewport()];
  private readonly status = el("div", "status");
  private readonly summary = el("div", "summary");
  private readonly panel = el("div", "panel");
  private readonly rowsBox = el("div", "rows");
  private readonly note = el("textarea", "note");
  private readonly submitButton = el("button", "primary", "Submit: unmarked findings absent (Ctrl+Enter)");
  private readonly normalButton = el("button", "", "Normal (N)");
  private readonly nextButton = el("button", "primary", "Read next");
  private data: ReaderData | null = null;
  private states = new Map<string, RowState>();
  private marks: Record<string, Mark> = {};
  private focus = 0;
  private overlayOn = true;
  private overlayLabel = "";
  private opacity = 0.45;
  private active = 0;
  private sideBySide = false;
  private shownAt = 0;
  private saving = false;
  private queued: KeyboardEvent[] = [];

  constructor(private readonly outbox: Outbox) {
    this.root.tabIndex = -1;
    this.panel.dataset.testid = "verdict-panel";
    const images = el("div", "images");
    images.append(this.thumbs, this.viewportBox);
    this.note.placeholder = "Note (optional)";
    this.note.maxLength = 5000;
    const actions = el("div", "actions");
    actions.append(this.normalButton, this.submitButton, this.nextButton);
    this.panel.append(this.status, this.summary, this.rowsBox, this.note, actions);
    this.panel.append(el("div", "keys", KEYS_HELP));
    this.panel.append(el("div", "disclaimer", "Screening aid for radiologist review, not a diagnosis."));
    this.root.append(images, this.panel);
    this.submitButton.addEventListener("click", () => this.submit());
    this.normalButton.addEventListener("click", () => this.normal());
    this.nextButton.addEventListener("click", () => this.outbox.navigate("next"));
    this.viewports.forEach((v, i) => {
      v.onActivate = () => this.activate(i);
      v.onPoint = (x, y) => this.placeMark(v, x, y);
    });
  }

  /** New data from Python: a new study resets the screen; the same study keeps what the
  reader did and shows the notice (a refusal keeps every key they pressed). */
  update(data: ReaderData): void {
    const same = this.data?.study_id === data.study_id;
    this.data = data;
    this.saving = false;
    if (!same) this.open(data);
    this.showNotice(data.notice);
    this.renderPanel();
    const queued = this.queued;
    this.queued = [];
    for (const e of queued) this.handle(e);
  }

  private open(data: ReaderData): void {
    this.states = new Map(data.rows.map((r) => [r.label, r.state]));
    this.marks = { ...data.marks };
    this.focus = 0;
    this.active = 0;
    this.sideBySide = false;
    this.note.value = data.note;
    this.rowsBox.scrollTop = 0;
    this.root.dataset.study = String(data.study_id);
    this.shownAt = performance.now();
    const first = data.rows.find((r) => r.flagged && r.label !== NO_FINDING && data.heatmaps[r.label]);
    this.overlayOn = first !== undefined; // a new study opens on its first flagged finding's map
    this.overlayLabel = first?.label ?? "";
    this.buildRows(data);
    this.buildThumbs(data);
    this.layout();
    for (const v of this.viewports) v.tool = "window";
    this.showImage(0, 0);
    this.submitButton.hidden = this.normalButton.hidden = data.read_only;
    this.note.disabled = data.read_only;
    this.nextButton.hidden = !data.read_only;
  }

  private buildRows(data: ReaderData): void {
    this.rowsBox.replaceChildren(
      ...data.rows.map((r, i) => {
        const row = el("div", `row${r.flagged ? " flagged" : ""}`);
        row.dataset.label = r.label;
        const bar = el("div", "bar");
        const fill = el("div", "fill");
        fill.style.width = `${(100 * Math.min(1, Math.max(0, r.probability))).toFixed(1)}%`;
        const thr = el("div", "thr");
        thr.style.left = `${(100 * Math.min(1, Math.max(0, r.threshold))).toFixed(1)}%`;
        bar.append(fill, thr);
        bar.title = `P ${(100 * r.probability).toFixed(0)}%, threshold ${(100 * r.threshold).toFixed(0)}%`;
        const state = el("div", "state");
        state.addEventListener("click", (e) => {
          e.stopPropagation();
          this.setFocus(i);
          this.mark(this.states.get(r.label) !== "present", false);
        });
        row.append(el("span", "flag", r.flagged ? "⚑" : ""), el("span", "name", r.label), bar, state);
        row.addEventListener("click", () => this.setFocus(i));
        return row;
      }),
    );
  }

  private buildThumbs(data: ReaderData): void {
    this.thumbs.replaceChildren(
      ...(data.images.length > 1
        ? data.images.map((image, n) => {
            const b = el("button", "", `${n + 1}: ${image.view || "view unknown"}${image.analysed ? "" : " (not analysed)"}`);
            b.title = image.analysed ? "" : image.not_analysed;
            b.addEventListener("click", () => this.showImage(this.active, n));
            return b;
          })
        : []),
    );
  }

  private layout(): void {
    const n = this.sideBySide && (this.data?.images.length ?? 0) > 1 ? 2 : 1;
    this.viewportBox.replaceChildren(...this.viewports.slice(0, n).map((v) => v.root));
    this.viewports.forEach((v, i) => v.root.classList.toggle("active", n > 1 && i === this.active));
  }

  private showImage(viewport: number, n: number): void {
    const data = this.data;
    if (!data || data.images.length === 0) return;
    const index = ((n % data.images.length) + data.images.length) % data.images.length;
    const v = this.viewports[viewport];
    v.root.dataset.index = String(index);
    v.show(data.images[index])
      .then(() => this.paintOverlays())
      .catch((err: unknown) => this.showNotice({ kind: "refused", text: `Image not shown: ${String(err)}` }));
    Array.from(this.thumbs.children).forEach((b, i) =>
      b.setAttribute("aria-pressed", String(i === index && viewport === this.active)),
    );
  }

  private activate(i: number): void {
    this.active = i;
    this.layout();
  }

  private get activeViewport(): Viewport {
    return this.viewports[this.sideBySide ? this.active : 0];
  }

  /** The focused finding's map on each shown image it was computed on; never "No Finding". */
  private paintOverlays(): void {
    const data = this.data;
    if (!data) return;
    const map = this.overlayOn && this.overlayLabel ? data.heatmaps[this.overlayLabel] : undefined;
    for (const v of this.viewports) {
      const here = map && (map.image_id === null || map.image_id === v.image?.id || data.images.length === 1);
      v.setOverlay(this.overlayLabel, here && map ? map : null, this.opacity);
      v.setMarks(this.marks);
    }
  }

  private renderPanel(): void {
    const data = this.data;
    if (!data) return;
    const labels = data.rows.map((r) => r.label);
    this.panel.dataset.focused = labels[this.focus] ?? "";
    this.panel.dataset.study = String(data.study_id);
    this.panel.dataset.saving = String(this.saving);
    Array.from(this.rowsBox.children).forEach((node, i) => {
      const row = node as HTMLElement;
      const label = labels[i];
      const state = this.states.get(label) ?? "unset";
      row.dataset.state = state;
      row.classList.toggle("focused", i === this.focus);
      const text = state === "present" ? "present" : state === "absent" ? "absent" : "·";
      (row.lastElementChild as HTMLElement).textContent = label in this.marks ? `${text} ✕` : text;
    });
    const focused = this.rowsBox.children[this.focus] as HTMLElement | undefined;
    focused?.scrollIntoView({ block: "nearest" });
    const present = labels.filter((l) => l !== NO_FINDING && this.states.get(l) === "present");
    const abnormal = data.abnormal === null ? "" : `P(abnormal) ${(100 * data.abnormal).toFixed(0)}%`;
    this.summary.replaceChildren(
      el("span", "", abnormal + (data.outside_domain ? " · outside the model's domain: read without it" : "")),
      el("span", "", present.length ? `${present.length} present` : "no finding marked"),
    );
    this.submitButton.disabled = this.normalButton.disabled = this.saving;
  }

  private showNotice(notice: Notice | null): void {
    const data = this.data;
    const n = notice ?? (data?.read_only ? { kind: "info" as const, text: `Read-only: ${data.reason}` } : null);
    this.status.className = `status${n ? ` ${n.kind}` : ""}`;
    this.status.textContent = n?.text ?? "";
    this.status.dataset.testid = "reader-status";
  }

  private setFocus(index: number): void {
    const data = this.data;
    if (!data || data.rows.length === 0) return;
    this.focus = Math.max(0, Math.min(data.rows.length - 1, index));
    const label = data.rows[this.focus].label;
    if (label !== NO_FINDING && data.heatmaps[label]) {
      this.overlayLabel = label; // the overlay follows the focus; "No Finding" leaves it where it was
      this.paintOverlays();
    }
    this.renderPanel();
  }

  /** Set the focused row present or absent (then go on when asked). "No Finding" present
  clears every finding; a finding present clears "No Finding". */
  private mark(isPresent: boolean, advance = true): void {
    const data = this.data;
    if (!data || data.rows.length === 0) return;
    if (data.read_only) return this.showNotice({ kind: "info", text: `Read-only: ${data.reason}` });
    const label = data.rows[this.focus].label;
    this.states.set(label, isPresent ? "present" : "absent");
    if (isPresent && label === NO_FINDING) {
      for (const r of data.rows) if (r.label !== NO_FINDING) this.states.set(r.label, "absent");
      this.marks = {};
    } else if (isPresent && this.states.get(NO_FINDING) === "present") {
      this.states.set(NO_FINDING, "absent");
    }
    if (!isPresent) delete this.marks[label];
    this.paintOverlays();
    if (advance) this.setFocus(this.focus + 1);
    else this.renderPanel();
  }

  private placeMark(v: Viewport, x: number, y: number): void {
    const data = this.data;
    if (!data) return;
    const label = data.rows[this.focus]?.label;
    v.tool = "window";
    if (!label || label === NO_FINDING) {
      this.showNotice({ kind: "info", text: "Move ▶ to a finding (J/K) before clicking where it is." });
      return;
    }
    this.marks[label] = { x, y, image_id: data.images.length > 1 ? (v.image?.id ?? null) : null };
    this.mark(true, false);
  }

  private normal(): void {
    const data = this.data;
    if (!data || data.read_only || this.saving) return;
    for (const r of data.rows) this.states.set(r.label, r.label === NO_FINDING ? "present" : "absent");
    this.marks = {};
    this.renderPanel();
    this.submit();
  }

  private submit(): void {
    const data = this.data;
    if (!data || this.saving) return;
    if (data.read_only) return this.showNotice({ kind: "info", text: `Read-only: ${data.reason}` });
    const shown = performance.now() - this.shownAt;
    if (shown < data.min_look_ms) {
      return this.showNotice({
        kind: "refused",
        text: "Not saved: the study had only just opened. Look at it, then submit again.",
      });
    }
    this.saving = true;
    this.showNotice({ kind: "info", text: `Saving study ${data.study_id}…` });
    this.renderPanel();
    this.outbox.submit({
      study_id: data.study_id,
      states: Object.fromEntries(this.states),
      marks: this.marks,
      note: this.note.value,
      shown_ms: Math.round(shown),
    });
  }

  /** Every key of the reading screen. Keys typed into the note stay text (Ctrl+Enter still
  submits, Esc leaves the note); keys typed into any other page field are not ours. */
  onKey(e: KeyboardEvent): void {
    const target = e.composedPath()[0] as HTMLElement | undefined;
    const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable);
    if (typing && target !== this.note) return;
    if (target === this.note && !(e.key === "Enter" && (e.ctrlKey || e.metaKey)) && e.key !== "Escape") return;
    if (e.altKey || ((e.ctrlKey || e.metaKey) && e.key !== "Enter")) return; // the browser's own shortcuts
    if (!this.isOurs(e)) return;
    e.preventDefault();
    e.stopPropagation();
    if (this.saving) {
      this.queued.push(e); // applied once the next study (or the refusal) is on screen
      return;
    }
    this.handle(e);
  }

  private isOurs(e: KeyboardEvent): boolean {
    return (e.key === "Enter" && (e.ctrlKey || e.metaKey)) || /^[jkpanmoifzlvb0123[\]]$/i.test(e.key) ||
      ["ArrowUp", "ArrowDown", "Escape"].includes(e.key);
  }

  private handle(e: KeyboardEvent): void {
    if (e.key === "Enter") return this.submit();
    const v = this.activeViewport;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    switch (key) {
      case "j": case "ArrowDown": return this.setFocus(this.focus + 1);
      case "k": case "ArrowUp": return this.setFocus(this.focus - 1);
      case "p": return this.mark(true);
      case "a": return this.mark(false);
      case "n": return this.normal();
      case "m": v.tool = v.tool === "mark" ? "window" : "mark"; return v.redraw();
      case "l": v.tool = v.tool === "measure" ? "window" : "measure"; return v.redraw();
      case "o": this.overlayOn = !this.overlayOn; return this.paintOverlays();
      case "[": this.opacity = Math.max(0.1, this.opacity - 0.1); return this.paintOverlays();
      case "]": this.opacity = Math.min(0.9, this.opacity + 0.1); return this.paintOverlays();
      case "i": return v.toggleInvert();
      case "f": return v.fit();
      case "z": return v.actualSize();
      case "v": return this.showImage(this.sideBySide ? this.active : 0, Number(v.root.dataset.index ?? 0) + 1);
      case "b": return this.toggleSideBySide();
      case "Escape":
        this.note.blur();
        for (const w of this.viewports) { w.tool = "window"; w.clearMeasurement(); }
        return;
      default:
        if (key in PRESET_KEYS) v.preset(PRESET_KEYS[key]);
    }
  }

  private toggleSideBySide(): void {
    if (!this.data || this.data.images.length < 2) return;
    this.sideBySide = !this.sideBySide;
    this.layout();
    if (this.sideBySide) this.showImage(1, Number(this.viewports[0].root.dataset.index ?? 0) + 1);
  }
}
