"""The model's scores and the reviewer's verdict form on the review screen."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.labels import NO_FINDING
from core.model_card import MIN_THRESHOLD_SUPPORT
from core.verdict_rules import Mark, present, verdict_for
from dashboard.text import plain
from services.reading import StudyRecord

PANEL_HEIGHT = 280  # with the note and Submit below it, the panel fits a 720-pixel screen
FLAGGED_CHOICES = {"correct": "present: flag correct", "incorrect": "absent: false positive"}
UNFLAGGED_CHOICES = {"correct": "absent: correct", "missed": "present: missed"}


def domain_and_abnormal(study: StudyRecord) -> None:
    """The out-of-domain mark and the calibrated abnormal score, above everything else."""
    if study.outside_domain:
        st.error(
            "Outside the model's domain: this image does not look like the frontal chest radiographs the "
            f"model was trained on (domain score {study.domain_score or 0:.1f}). No finding is "
            "flagged and it does not count in the triage order; read it without the model.",
            icon="🚫",
        )
    if study.abnormal is not None:
        st.markdown(
            f"**P(abnormal) {100 * float(study.abnormal):.0f}%**",
            help="Calibrated 1 - P(No Finding): how likely a reader finds something on this study",
        )


def probability_bar(p: float, threshold: float, width: int = 12) -> str:
    """A text bar of the calibrated probability with the threshold marked: '▇▇▇▇▇░░│░░ 41%'.
    Plain characters, so no markup is involved."""
    filled = int(round(max(0.0, min(1.0, p)) * width))
    mark = min(width - 1, int(round(max(0.0, min(1.0, threshold)) * width)))
    cells = ["▇" if i < filled else "░" for i in range(width)]
    cells[mark] = "┃"
    return "".join(cells) + f" {100 * p:.0f}%"


def scores_table(preds: pd.DataFrame, support: dict[str, int]) -> None:
    """The full scores table (TTA spread, threshold basis) for those who want every number."""
    if preds.empty:
        st.write("No predictions stored.")
        return
    table = preds[["label", "probability", "threshold", "flagged", "spread"]].copy()
    if support:
        table["threshold basis"] = table["label"].map(
            lambda lab: (
                "?"
                if lab not in support
                else (
                    f"{support[lab]} positives"
                    if support[lab] >= MIN_THRESHOLD_SUPPORT
                    else f"unreliable: {support[lab]} positives"
                )
            )
        )
    with st.expander("All scores (TTA spread, threshold basis)", expanded=False):
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            height=38 + 35 * len(table),  # every row visible, no inner scrolling
            column_config={
                "probability": st.column_config.ProgressColumn(
                    "probability", min_value=0.0, max_value=1.0, format="%.3f"
                ),
                "threshold": st.column_config.NumberColumn(format="%.3f", width="small"),
                "flagged": st.column_config.CheckboxColumn(width="small"),
                "spread": st.column_config.NumberColumn("TTA spread (sd)", format="%.3f", width="small"),
            },
        )


def verdict_key(study_id: int, label: str) -> str:
    """The session key of one label's verdict control."""
    return f"v_{study_id}_{label}"


def focus_key(study_id: int) -> str:
    """The session key of the finding the keyboard acts on."""
    return f"focus_{study_id}"


def marks_key(study_id: int) -> str:
    """The session key of the points the reader has placed on this study (label -> Mark)."""
    return f"marks_{study_id}"


def panel_rows(preds: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows in the panel's order: flagged first, most probable first."""
    return preds.sort_values(["flagged", "probability"], ascending=[False, False])


def panel_order(preds: pd.DataFrame) -> tuple[list[str], list[bool]]:
    """The rows' labels and flags in the panel's order: the form, the keyboard and a click
    on the image all count rows in this order."""
    rows = panel_rows(preds)
    return [str(lab) for lab in rows["label"]], [bool(f) for f in rows["flagged"]]


def focused_index(study_id: int, n_rows: int) -> int:
    """The row the keyboard and a click on the image act on (0 when the study opens)."""
    return min(st.session_state.get(focus_key(study_id), 0), n_rows - 1)


def open_marks(study_id: int, stored: dict[str, Mark]) -> dict[str, Mark]:
    """The study's points for this session: the reader's stored ones when it opens."""
    return st.session_state.setdefault(marks_key(study_id), dict(stored))


def place_mark(study_id: int, labels: list[str], flags: list[bool], mark: Mark) -> None:
    """A click on the image places the focused (▶) finding there and marks it present; the
    focus stays, so J goes on. "No Finding" has no place: the click is refused."""
    index = focused_index(study_id, len(labels))
    label = labels[index]
    if label == NO_FINDING:
        st.toast("Move ▶ to a finding (J/K) before clicking where it is.", icon="📍")
        return
    st.session_state.setdefault(marks_key(study_id), {})[label] = mark
    st.session_state[verdict_key(study_id, label)] = verdict_for(flags[index], True)


def marks_to_store(study_id: int, verdicts: dict[str, str], flags: dict[str, bool]) -> dict[str, Mark]:
    """The placed points of the findings this verdict says are present."""
    placed = st.session_state.get(marks_key(study_id), {})
    return {k: m for k, m in placed.items() if k in verdicts and present(flags.get(k, False), verdicts[k])}


def _focus_on(study_id: int, labels: list[str], index: int) -> None:
    """Move the keyboard's finding; the overlay follows it unless the reader switched it off.
    "No Finding" has no place on the image: focused, it leaves the overlay where it was."""
    index = max(0, min(len(labels) - 1, index))
    st.session_state[focus_key(study_id)] = index
    if labels[index] == NO_FINDING:
        return
    if st.session_state.get("cam_label", "(none)") == "(none)":
        st.session_state["last_overlay"] = labels[index]
    else:
        st.session_state["cam_label"] = labels[index]


def _move(study_id: int, labels: list[str], step: int) -> None:
    _focus_on(study_id, labels, focused_index(study_id, len(labels)) + step)


def _mark(study_id: int, labels: list[str], flags: list[bool], is_present: bool) -> None:
    """Set the focused finding present or absent, then go on to the next one."""
    index = focused_index(study_id, len(labels))
    st.session_state[verdict_key(study_id, labels[index])] = verdict_for(flags[index], is_present)
    if not is_present:  # an absent finding has no place on the image
        st.session_state.get(marks_key(study_id), {}).pop(labels[index], None)
    _focus_on(study_id, labels, index + 1)


def _keyboard_buttons(study_id: int, labels: list[str], flags: list[bool]) -> None:
    """Previous/next finding and present/absent as form buttons with shortcuts: they keep
    the choices already made in the form and act on the focused finding (marked ▶)."""
    cols = st.columns([1, 1, 1.6, 1.6], gap="small")
    specs = (
        ("▲", "k", "Previous finding (K)", _move, (study_id, labels, -1)),
        ("▼", "j", "Next finding (J)", _move, (study_id, labels, 1)),
        ("Present", "p", "The ▶ finding is present, go to the next (P)", _mark, (study_id, labels, flags, True)),
        ("Absent", "a", "The ▶ finding is absent, go to the next (A)", _mark, (study_id, labels, flags, False)),
    )
    for col, (text, key, hint, action, args) in zip(cols, specs, strict=True):
        with col:
            st.form_submit_button(text, shortcut=key, help=hint, on_click=action, args=args, width="stretch")


FOCUS_SCRIPT = """<script>/* focus %d */
const row = window.parent.document.querySelector('.st-key-focus_row');
let box = row && row.parentElement;
while (box && !/(auto|scroll)/.test(getComputedStyle(box).overflowY)) box = box.parentElement;
if (row && box && box.closest('[data-testid=stForm]')) {  // the verdict panel's own scroller, never the page
  const r = row.getBoundingClientRect(), b = box.getBoundingClientRect();
  if (r.top < b.top) box.scrollTop += r.top - b.top;
  else if (r.bottom > b.bottom) box.scrollTop += r.bottom - b.bottom;
}</script>"""


def _show_focus(focus: int) -> None:
    """Scroll the panel to the focused (▶) row and tint it, so a reader moving with J/K sees
    it. The index in the script makes each move a new script, which the browser runs."""
    import streamlit.components.v1 as components

    st.html("<style>.st-key-focus_row{background:rgba(255,75,75,0.08);border-radius:0.4rem;}</style>")
    components.html(FOCUS_SCRIPT % focus, height=0)


def verdict_form(
    study_id: int, preds: pd.DataFrame, my_verdicts: dict[str, str], note: str
) -> tuple[dict[str, str], str] | None:
    """One compact row per label (probability bar with its threshold mark, flag, verdict);
    returns (verdict per label, note) once submitted complete, else None. Rows are in the
    order the reader works: flagged first, most probable first; the keyboard walks them."""
    if preds.empty:
        return None
    rows = panel_rows(preds)
    labels, flags = panel_order(rows)
    placed = st.session_state.get(marks_key(study_id), {})
    focus = focused_index(study_id, len(labels))
    st.markdown(
        "**Your verdict** · ⚑ flagged · ┃ threshold · ▶ keys J K P A · ✕ M, then click",
        help="Mark (M), then a click on the image, places the ▶ finding there (✕) and marks it present.",
    )
    choices: dict[str, str | None] = {}
    with st.form(f"verdict_{study_id}", border=False):
        with st.container(height=PANEL_HEIGHT, border=True):  # every row reachable, Submit always in view
            for i, row in enumerate(rows.itertuples()):
                flagged = flags[i]
                options = FLAGGED_CHOICES if flagged else UNFLAGGED_CHOICES
                current = my_verdicts.get(row.label)
                index = list(options).index(current) if current in options else (None if flagged else 0)
                row_box = st.container(key="focus_row") if i == focus else st.container()
                left, right = row_box.columns([5, 6], vertical_alignment="center", gap="small")
                left.markdown(
                    f"{'▶ ' if i == focus else ''}{'⚑ ' if flagged else ''}**{plain(row.label)}**"
                    f"{' ✕' if row.label in placed else ''}  \n"
                    f"`{probability_bar(row.probability, row.threshold)}`"
                )
                key = verdict_key(study_id, row.label)
                choices[row.label] = right.radio(
                    f"{row.label} (flagged)" if flagged else row.label,
                    list(options),
                    index=None if key in st.session_state else index,  # a key press's choice wins
                    format_func=options.get,
                    key=key,
                    label_visibility="collapsed",
                )
        _keyboard_buttons(study_id, labels, flags)
        if focus:
            _show_focus(focus)
        text = st.text_input(
            "Note",
            value=note,
            key=f"note_{study_id}",
            max_chars=5000,
            placeholder="Note (optional)",
            label_visibility="collapsed",
        )
        submitted = st.form_submit_button("Submit verdict and open next", type="primary", shortcut="ctrl+enter")
    if not submitted:
        return None
    undecided = [lab for lab, v in choices.items() if v is None]
    if undecided:
        message = "Not saved: mark every flagged finding as correct or incorrect: " + ", ".join(undecided)
        st.toast(message, icon="⛔")  # seen without scrolling
        st.error(message)
        return None
    return {lab: str(v) for lab, v in choices.items()}, text
