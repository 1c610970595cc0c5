"""The promotion gate: when a candidate model may replace the current one, judged on the
paired comparison of the two on the site's held-out patients (training.compare_models).

The rule, stated on the Model page and in the README:
1. the lower end of the 95% interval of the mean-AUC difference over findings is above
   -0.02 (the candidate is not credibly worse on average);
2. the abnormal-vs-normal AUC is not worse at p < 0.05 (DeLong);
3. no finding is worse by more than 0.05 AUC at p < 0.05.
A comparison that cannot be made (too few held-out positives) does not pass: an admin
may still promote with a stated reason, which is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

MEAN_AUC_FLOOR = -0.02
LABEL_DROP = 0.05
ALPHA = 0.05
RULE = (
    f"mean-AUC difference over findings: lower 95% bound above {MEAN_AUC_FLOOR}; "
    f"abnormal-vs-normal AUC not worse at p < {ALPHA}; "
    f"no finding worse by more than {LABEL_DROP} at p < {ALPHA} (site held-out patients, paired)"
)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]  # why it failed (empty when it passed)


def decide(comparison: dict | None) -> GateDecision:
    if not comparison or "mean_auc_findings" not in comparison:
        return GateDecision(False, ["no paired comparison on held-out site patients could be made"])
    reasons = []
    mean = comparison["mean_auc_findings"]
    if not mean["ci_low"] > MEAN_AUC_FLOOR:
        reasons.append(
            f"mean AUC difference {mean['difference']:+.3f} (95% CI {mean['ci_low']:+.3f} to "
            f"{mean['ci_high']:+.3f}): lower bound not above {MEAN_AUC_FLOOR}"
        )
    abnormal = comparison.get("abnormal_vs_normal")
    if abnormal is None:
        reasons.append("abnormal-vs-normal AUC could not be compared")
    elif abnormal["difference"] < 0 and abnormal["p_value"] < ALPHA:
        reasons.append(f"abnormal-vs-normal AUC worse by {-abnormal['difference']:.3f} (p = {abnormal['p_value']:.3g})")
    for label, row in comparison.get("per_label", {}).items():
        if row["difference"] < -LABEL_DROP and row["p_value"] < ALPHA:
            reasons.append(f"{label} AUC worse by {-row['difference']:.3f} (p = {row['p_value']:.3g})")
    return GateDecision(not reasons, reasons)
