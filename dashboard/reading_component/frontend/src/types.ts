// The shapes exchanged with Python (dashboard/reading_payload.py and pages/review.py).

export type RowState = "present" | "absent" | "unset";

export interface Row {
  label: string;
  probability: number;
  threshold: number;
  flagged: boolean;
  state: RowState;
}

export interface ImageEntry {
  id: number | null;
  url: string;
  view: string;
  analysed: boolean;
  not_analysed: string;
  rows: number;
  cols: number;
  offset: number; // value = stored * scale + offset (modality units)
  scale: number;
  window: [number, number]; // the file's default (centre, width)
  presets: Record<string, [number, number]>; // lung, mediastinum, bone
  invert: boolean; // MONOCHROME1
  spacing: [number, number] | null; // mm between rows, between columns
}

export interface Heatmap {
  image_id: number | null;
  rows: number;
  cols: number;
  values: number[];
}

export interface Mark {
  x: number; // fraction of the image's width
  y: number; // fraction of its height
  image_id: number | null;
}

export interface Notice {
  kind: "saved" | "refused" | "info";
  text: string;
}

export interface ReaderData {
  study_id: number;
  read_only: boolean;
  reason: string;
  abnormal: number | null;
  outside_domain: boolean;
  rows: Row[];
  images: ImageEntry[];
  heatmaps: Record<string, Heatmap>;
  marks: Record<string, Mark>;
  note: string;
  notice: Notice | null;
  min_look_ms: number;
  prefetch: string[];
}

export interface Submission {
  study_id: number;
  states: Record<string, RowState>;
  marks: Record<string, Mark>;
  note: string;
  shown_ms: number;
}

export const NO_FINDING = "No Finding";
