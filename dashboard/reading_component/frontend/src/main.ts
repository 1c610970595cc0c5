// The Custom Components v2 entry: Streamlit calls this on every run that mounts the
// component, with that run's data; one Reader per mounted element lives across runs.

import type { FrontendRenderer, FrontendState } from "@streamlit/component-v2-lib";
import css from "./reader.css?inline";
import { prefetch } from "./pixels";
import { Reader } from "./reader";
import type { ReaderData, Submission } from "./types";

interface ReaderState extends FrontendState {
  submit: Submission | null;
  navigate: string | null;
}

type Trigger = (name: keyof ReaderState, value: ReaderState[keyof ReaderState]) => void;

interface Mounted {
  reader: Reader;
  trigger: Trigger; // the latest run's setter
  cleanup: () => void;
}

const mounted = new WeakMap<object, Mounted>();

function mount(parentElement: HTMLElement | ShadowRoot, trigger: Trigger): Mounted {
  const style = document.createElement("style");
  style.textContent = css;
  const reader = new Reader({
    submit: (s) => entry.trigger("submit", s),
    navigate: (to) => entry.trigger("navigate", to),
  });
  parentElement.append(style, reader.root);
  const onKey = (e: KeyboardEvent) => reader.onKey(e);
  window.addEventListener("keydown", onKey, true); // before the page's own shortcuts
  const entry: Mounted = {
    reader,
    trigger,
    cleanup: () => {
      window.removeEventListener("keydown", onKey, true);
      mounted.delete(parentElement);
    },
  };
  mounted.set(parentElement, entry);
  return entry;
}

const render: FrontendRenderer<ReaderState, ReaderData> = ({ data, parentElement, setTriggerValue }) => {
  const entry = mounted.get(parentElement) ?? mount(parentElement, setTriggerValue);
  entry.trigger = setTriggerValue;
  entry.reader.update(data);
  prefetch(data.prefetch);
  return entry.cleanup;
};

export default render;
