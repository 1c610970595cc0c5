"""``cxr retrain --out FOLDER`` and ``cxr models list|compare|promote|rollback``: the model
learns from the site's reads (services.retraining). NAME is a registered model's name (its
card's ``name``) or its folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.config import load_settings
from db import models as registry
from db.bootstrap import open_database
from services import model_loop, retraining, shadow_runs


def _print_progress(fraction: float, message: str) -> bool:
    print(f"{fraction:4.0%} {message}", file=sys.stderr)
    return False  # a command line run is stopped with Ctrl+C, not a cancel request


def retrain_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cxr retrain", description="Refit the current model's head on the site's reads."
    )
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the candidate model")
    args = parser.parse_args(argv)
    settings = load_settings()
    engine = open_database(settings)
    try:
        result = retraining.retrain(
            engine,
            settings,
            args.out,
            actor="cli",
            progress=_print_progress,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gate = (
        "passes the promotion gate"
        if result.gate.passed
        else "does not pass the gate: " + "; ".join(result.gate.reasons)
    )
    print(f"candidate {result.card.name} ({result.card.version}) {gate}", file=sys.stderr)
    print(result.folder)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr models", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    listing = sub.add_parser("list", help="every registered model with its status")
    listing.add_argument("--json", action="store_true")
    comparison = sub.add_parser("compare", help="a candidate against the model it was trained from")
    comparison.add_argument("name")
    comparison.add_argument("--json", action="store_true")
    promotion = sub.add_parser("promote", help="make a candidate current (the gate must pass)")
    promotion.add_argument("name")
    promotion.add_argument("--override", metavar="REASON", help="promote a candidate the gate refuses (audited)")
    back = sub.add_parser("rollback", help="return to an earlier model (default: the one before)")
    back.add_argument("name", nargs="?")
    shadow = sub.add_parser("shadow", help="run a candidate beside the current model on new studies, unseen")
    shadow.add_argument("name", nargs="?", help="omit with --stop")
    shadow.add_argument("--stop", action="store_true", help="end the shadow run (the candidate stays registered)")
    reference = sub.add_parser("reference", help="keep the features of a model folder's held-out test images")
    reference.add_argument("--model", type=Path, required=True, help="the model folder (with test_images.txt)")
    reference.add_argument("--images", type=Path, nargs="+", required=True, help="folders holding those images")
    reference.add_argument("--labels", type=Path, required=True, help="the NIH label table")
    convert = sub.add_parser("convert", help="write the model folder's ONNX files for the CPU runtime")
    convert.add_argument("--model", type=Path, required=True, help="the model folder")
    args = parser.parse_args(argv)
    if args.cmd == "convert":  # files beside the model; no database
        from training.export_runtime import convert as convert_folder

        card = convert_folder(args.model)
        print(json.dumps(card.runtime, indent=1))
        return 0
    if args.cmd == "reference":  # a file beside the model; no database
        from training.reference_features import build

        print(build(args.model, args.images, args.labels))
        return 0
    settings = load_settings()
    engine = open_database(settings)
    retraining.ensure_registered(engine, settings)
    try:
        return COMMANDS[args.cmd](engine, args)
    except PermissionError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _list(engine, args) -> int:
    rows = [
        {
            "name": m.name,
            "version": m.version,
            "status": m.status,
            "parent_version": m.parent_version,
            "folder": m.folder,
            "created_at": m.created_at.isoformat(timespec="seconds"),
            "promoted_by": m.promoted_by,
            "promoted_at": m.promoted_at.isoformat(timespec="seconds") if m.promoted_at else None,
        }
        for m in registry.list_models(engine)
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['status']:<10}{r['name']}\t{r['version']}\t{r['folder']}")
    return 0


def _compare(engine, args) -> int:
    out = model_loop.comparison(engine, args.name)
    decision = out["gate"]
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        mean = (out["site_heldout"] or {}).get("mean_auc_findings")
        if mean:
            print(
                f"mean AUC {mean['mean_a']:.3f} -> {mean['mean_b']:.3f} "
                f"({mean['difference']:+.3f}, 95% CI {mean['ci_low']:+.3f} to {mean['ci_high']:+.3f})"
            )
        print("gate: " + ("passes" if decision["passed"] else "refuses: " + "; ".join(decision["reasons"])))
    return 0


def _promote(engine, args) -> int:
    model = retraining.promote(engine, args.name, actor="cli", override=args.override)
    print(f"{model.name} ({model.version}) is now current; unread studies are analysed again")
    return 0


def _rollback(engine, args) -> int:
    model = retraining.rollback(engine, actor="cli", name=args.name)
    print(f"{model.name} ({model.version}) is current again; unread studies are analysed again")
    return 0


def _shadow(engine, args) -> int:
    if args.stop:
        stopped = shadow_runs.stop(engine, actor="cli")
        print(f"shadow run of {stopped.name} ended" if stopped else "no shadow run")
        return 0
    if not args.name:
        raise ValueError("name a candidate, or give --stop")
    model = shadow_runs.start(engine, args.name, actor="cli")
    print(f"{model.name} ({model.version}) now runs in shadow on new studies; readers never see it")
    return 0


COMMANDS = {"list": _list, "compare": _compare, "promote": _promote, "rollback": _rollback, "shadow": _shadow}
