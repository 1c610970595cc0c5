"""``cxr predict PATH... [--no-tta] [--gradcam DIR] --json``

One JSON object per input. Exits 1 when any input was rejected, so scripts notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import storage
from core.analysis import invalid_result
from core.config import load_settings
from core.decode import Limits, decode_bytes
from core.errors import RejectedInput
from core.gradcam import overlay
from core.pixel_transforms import to_uint8
from core.storage import iter_input_paths


def predict_file(analyzer, path: Path, gradcam_dir: Path | None, limits: Limits) -> dict:
    try:
        decoded = decode_bytes(path.read_bytes(), limits)
    except RejectedInput as exc:
        return {"file": str(path), "ok": False, "error": str(exc)}
    except OSError as exc:
        return {"file": str(path), "ok": False, "error": f"cannot read: {exc.strerror}"}
    try:
        analysis = analyzer.analyse([decoded.pixels])[0]
    except Exception as exc:  # noqa: BLE001 - one input's failure is its own line, the run goes on
        return {"file": str(path), "ok": False, "error": f"the model could not analyse it ({type(exc).__name__})"}
    problem = invalid_result(analysis)  # the worker's own check: what it would refuse to store
    if problem:
        return {"file": str(path), "ok": False, "error": problem}
    out = {
        "file": str(path),
        "ok": True,
        "probabilities": {k: round(v, 6) for k, v in analysis.probabilities.items()},
        "spread": {k: round(v, 6) for k, v in analysis.spread.items()},
        "thresholds": analysis.thresholds,
        "flagged": analysis.flagged,
        "tta_views": analysis.tta_views,
        "abnormal": None if analysis.abnormal is None else round(analysis.abnormal, 6),
        "in_domain": analysis.in_domain,
        "domain_score": None if analysis.domain_score is None else round(analysis.domain_score, 4),
        "model": {"name": analyzer.card.name, "version": analyzer.card.version},
        "device": analyzer.device,
        "note": "Screening aid for radiologist review, not a diagnosis.",
    }
    if gradcam_dir is not None:
        written = {}
        grey = to_uint8(decoded.pixels)
        for label in analysis.flagged:
            heat = analysis.heatmap(analyzer.labels.index(label))
            target = gradcam_dir / f"{path.stem}_{label.replace(' ', '_')}.png"
            target.write_bytes(storage.png_bytes(overlay(grey, heat)))
            written[label] = str(target)
        out["gradcam"] = written
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr predict")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--no-tta", action="store_true", help="identity view only")
    parser.add_argument("--gradcam", type=Path, default=None, help="write overlays of flagged findings here")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="one JSON object per line (the default output)")
    args = parser.parse_args(argv)
    settings = load_settings()
    from core.runtime import load_analyzer

    analyzer = load_analyzer(
        args.model or settings.model_dir,
        ["identity"] if args.no_tta else (settings.tta_views or None),
        settings.runtime,
    )
    if args.gradcam:
        args.gradcam.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in iter_input_paths(args.paths):
        result = predict_file(analyzer, path, args.gradcam, Limits(settings.max_pixels, settings.min_side))
        failed += not result["ok"]
        print(json.dumps(result, allow_nan=False), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
