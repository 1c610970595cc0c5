"""Sections of the Model page: the card's evaluation, calibration, gate and runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st


def held_out_evaluation(card) -> None:
    """The card's held-out figures per label, with CIs and the targets it misses."""
    st.subheader("Held-out evaluation")
    ev = card.evaluation
    if ev:
        c = st.columns(3)
        c[0].metric(
            f"Mean AUC, the {ev.get('n_findings_with_positives')} findings with positives", ev.get("mean_auc_findings")
        )
        c[1].metric("Mean AUC, all labels with positives (incl. No Finding)", ev.get("mean_auc_15_labels"))
        c[2].metric("Abnormal vs No Finding AUC", ev.get("abnormal_vs_no_finding_auc"))
        st.caption(
            f"{ev.get('n_images')} images of {ev.get('n_patients')} patients; {ev.get('split')}; "
            f"{ev.get('bootstrap')}; {ev.get('tta_views')} TTA views; mean AUC 95% CI "
            f"{ev.get('mean_auc_findings_ci95')}."
        )
        short = {k: v["short_by"] for k, v in ev.get("targets", {}).items() if isinstance(v, dict) and v["short_by"]}
        if short:
            st.warning(
                "Below the project's targets (mean AUC 0.70, abnormal AUC 0.75) by "
                + ", ".join(f"{v:.3f} ({k.replace('_', ' ')})" for k, v in short.items())
            )
        rows = [
            {
                "label": k,
                "AUC": v["auc"],
                "95% CI low": v["ci95"][0],
                "95% CI high": v["ci95"][1],
                "positives": v["n_positive"],
                "negatives": v["n_negative"],
                "threshold": card.thresholds.get(k),
            }
            for k, v in ev["per_label"].items()
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if ev.get("by_source"):
            st.caption(
                "By source folder of the test images: "
                + "; ".join(
                    f"{src}: {v['n_images']} images, mean AUC {v['mean_auc_findings']}, abnormal AUC "
                    f"{v['abnormal_vs_no_finding_auc']}"
                    for src, v in ev["by_source"].items()
                )
            )
        calibration_section(ev.get("calibration"))


def calibration_section(cal: dict | None) -> None:
    """Reliability diagram on the held-out patients, before and after Platt scaling."""
    if not cal:
        return
    import plotly.graph_objects as go

    st.subheader("Calibration")
    c = st.columns(2)
    c[0].metric("Expected calibration error, raw", cal["ece_before"])
    c[1].metric("Expected calibration error, calibrated", cal["ece_after"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot"}))
    for key, name in (("reliability_before", "raw"), ("reliability_after", "calibrated")):
        bins = [b for b in cal[key] if b["n"]]
        fig.add_trace(
            go.Scatter(
                x=[b["mean_predicted"] for b in bins],
                y=[b["observed"] for b in bins],
                mode="lines+markers",
                name=name,
                text=[f"n={b['n']}" for b in bins],
            )
        )
    fig.update_layout(
        xaxis_title="mean predicted probability", yaxis_title="observed rate", height=360, margin={"t": 10}
    )
    st.plotly_chart(fig, width="stretch")
    st.caption(cal.get("note", ""))


def abnormal_and_domain(card) -> None:
    if card.abnormal:
        st.subheader("Abnormal score")
        st.write(
            f"{card.abnormal.get('method')}: held-out AUC {card.abnormal.get('held_out_auc')} "
            f"(95% CI {card.abnormal.get('held_out_ci95')})."
        )
    if card.domain_gate:
        st.subheader("Out-of-domain gate")
        st.write(card.domain_gate.get("method"))
        check = card.domain_gate.get("check")
        if check:
            st.write(
                f"Non-radiographs marked outside: {check['non_radiographs']['fraction_outside']:.0%} of "
                f"{check['non_radiographs']['n']}; chest radiographs kept inside: "
                f"{check['chest_radiographs']['fraction_inside']:.0%} of {check['chest_radiographs']['n']}."
            )
            st.caption(check.get("sources", ""))


def runs_compared(runs: list[dict] | None) -> None:
    if not runs:
        return
    st.subheader("Training runs compared (same patient split)")
    st.dataframe(pd.DataFrame(runs), hide_index=True, width="stretch")


def other_models(settings, card) -> None:
    """Say when another bundled model scored better on validation, and how to select it."""
    from core.config import PROJECT_ROOT
    from core.model_card import ModelCard

    folder = PROJECT_ROOT / "models" / "lite0"
    if not folder.is_dir() or folder.resolve() == settings.model_dir.resolve():
        return
    try:
        other = ModelCard.load(folder)
    except Exception:  # noqa: BLE001 - a broken second folder must not hide this page
        return
    ev = other.evaluation
    st.info(
        f"Also bundled: {other.name} ({other.architecture.split(' + ')[0]}), held-out mean AUC "
        f"{ev.get('mean_auc_findings')} and abnormal AUC {ev.get('abnormal_vs_no_finding_auc')}, better than "
        f"this model on the validation patients. Select it with CXR_MODEL=models/lite0."
    )
