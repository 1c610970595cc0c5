"""Per-study inference cost on this CPU, TensorFlow and the CPU runtime side by side, with
the naive baseline, all in one run: whole study (decode + 8-view TTA + the domain gate +
Grad-CAM for 15 labels at the feature map's resolution, which is what the worker stores;
a map is upsampled where it is shown), throughput at batch 1 and 8, and peak resident
memory. Each engine
runs in its own process (the memory of a worker that never imports TensorFlow is the point).

Baseline: the straightforward way, ``model.predict`` once per augmented view and one eager
GradientTape pass per label (measured in the TensorFlow process), producing the same maps.
Also timed, trunk only on a batch of 8 views: ONNX Runtime and OpenVINO (float32 and its
default precision, bfloat16 on CPUs that have it), with their largest difference from
TensorFlow's activations.
Run: python -m bench.inference [--model models/default] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from bench.common import ROOT, median_ms, require_shared, table

STUDY = "nih/full/00000001_000.png"


def _whole_study(analyzer, data: bytes):
    from core.decode import decode_bytes

    return analyzer.analyse([decode_bytes(data).pixels])[0]


def _throughput(analyzer, pixels) -> dict:
    out = {}
    for b in (1, 8):
        images = [pixels] * b
        analyzer.analyse(images)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 3.0:
            analyzer.analyse(images)
            n += b
        out[f"batch {b}"] = n / (time.perf_counter() - start)
    return out


def _naive_ms(analyzer, data: bytes, repeat: int) -> float:
    import tensorflow as tf

    from core.decode import decode_bytes
    from core.model_input import prepare

    prepared = prepare(decode_bytes(data).pixels, analyzer.size)
    views = analyzer._views_fn(tf.constant(prepared[None, ..., None])).numpy()
    model, backbone, head = analyzer.model, analyzer.backbone, analyzer._head_logits

    def naive_study():
        decode_bytes(data)
        np.mean([model.predict(np.repeat(v[None] * 255.0, 3, -1), verbose=0) for v in views], axis=0)
        x = tf.constant(np.repeat(prepared[None, ..., None] * 255.0, 3, -1))
        for label in range(15):
            with tf.GradientTape() as tape:
                feats = backbone(x, training=False)
                logit = head(feats)[:, label]
            weights = tf.reduce_mean(tape.gradient(logit, feats), axis=(1, 2))
            cam = tf.nn.relu(tf.reduce_sum(feats * weights[:, None, None, :], -1))[0].numpy()
            _ = cam / cam.max() if cam.max() > 0 else cam

    return median_ms(naive_study, max(5, repeat // 3), 1)


def _trunk_engines(model_dir: str, repeat: int) -> list[dict]:
    """Trunk only, batch of 8 views: TensorFlow against ONNX Runtime and OpenVINO."""
    from core.inference import Analyzer
    from core.onnx_analyzer import OnnxAnalyzer

    keras_analyzer = Analyzer(model_dir, warm_up=False)
    onnx_analyzer = OnnxAnalyzer(model_dir, warm_up=False)
    x = np.random.default_rng(0).uniform(0, 255, (8, keras_analyzer.size, keras_analyzer.size, 3)).astype(np.float32)
    import tensorflow as tf

    trunk = tf.function(lambda batch: keras_analyzer.backbone(batch, training=False))
    want = trunk(tf.constant(x)).numpy()
    rows = [{"engine": "TensorFlow (traced)", "ms": median_ms(lambda: trunk(tf.constant(x)), repeat)}]
    got = onnx_analyzer._run(onnx_analyzer.trunk, x)
    import onnxruntime as ort

    trunk_file = onnx_analyzer.model_dir / onnx_analyzer.card.runtime["onnx"]["trunk"]["file"]
    pooled = ort.InferenceSession(str(trunk_file), providers=["CPUExecutionProvider"])  # its own threads, one per core
    name = pooled.get_inputs()[0].name
    rows.append(
        {
            "engine": "ONNX Runtime, one batch on the runtime's threads",
            "ms": median_ms(lambda: pooled.run(None, {name: x}), repeat),
            "max_diff": float(np.abs(pooled.run(None, {name: x})[0] - want).max()),
        }
    )
    rows.append(
        {
            "engine": "ONNX Runtime (float32), one view per run on each core (the analyzer)",
            "ms": median_ms(lambda: onnx_analyzer._run(onnx_analyzer.trunk, x), repeat),
            "max_diff": float(np.abs(got - want).max()),
        }
    )
    try:
        import openvino as ov
    except ImportError:
        rows.append({"engine": "OpenVINO", "ms": float("nan"), "note": "not installed"})
        return rows
    for label, config in (("OpenVINO (float32)", {"INFERENCE_PRECISION_HINT": "f32"}), ("OpenVINO (default)", {})):
        compiled = ov.Core().compile_model(str(trunk_file), "CPU", config)
        got = compiled(x)[0]
        rows.append(
            {
                "engine": label,
                "ms": median_ms(lambda c=compiled: c(x), repeat),
                "max_diff": float(np.abs(got - want).max()),
            }
        )
    return rows


def child(engine: str, model_dir: str, repeat: int) -> dict:
    """One engine in this process; prints JSON."""
    from core.decode import decode_bytes
    from core.runtime import load_analyzer

    data = (require_shared() / STUDY).read_bytes()
    analyzer = load_analyzer(model_dir, runtime=engine)
    out = {
        "engine": engine,
        "device": analyzer.device,
        "whole_study_ms": median_ms(lambda: _whole_study(analyzer, data), repeat),
        "throughput": _throughput(analyzer, decode_bytes(data).pixels),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    if engine == "tensorflow":
        out["naive_ms"] = _naive_ms(analyzer, data, repeat)
    return out


def _run_child(engine: str, model_dir: str, repeat: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inference", "--child", engine, "--model", model_dir, "--repeat", str(repeat)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trunks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.repeat)))
        return
    if args.trunks:
        print(json.dumps(_trunk_engines(args.model, args.repeat)))
        return
    require_shared()
    results = [_run_child(engine, args.model, args.repeat) for engine in ("tensorflow", "onnx")]
    naive = results[0]["naive_ms"]
    rows = [
        {
            "engine": r["engine"],
            "whole_study_ms": r["whole_study_ms"],
            "x_naive": naive / r["whole_study_ms"],
            "studies_per_s_b1": r["throughput"]["batch 1"],
            "studies_per_s_b8": r["throughput"]["batch 8"],
            "peak_rss_mib": r["peak_rss_mib"],
            "imports_tf": r["tensorflow_imported"],
        }
        for r in results
    ]
    rows.append({"engine": "naive baseline (TensorFlow)", "whole_study_ms": naive, "x_naive": 1.0})
    keys = ("engine", "whole_study_ms", "x_naive", "studies_per_s_b1", "studies_per_s_b8", "peak_rss_mib", "imports_tf")
    table(
        [{k: r.get(k, "") for k in keys} for r in rows],
        "Whole study (decode + 8-view TTA + gate + 15 Grad-CAMs as stored, 7x7)",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inference", "--trunks", "--model", args.model, "--repeat", str(args.repeat)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    trunks = json.loads(proc.stdout.strip().splitlines()[-1])
    table([{k: r.get(k, "") for k in ("engine", "ms", "max_diff", "note")} for r in trunks], "Trunk only, 8 views")
    onnx = results[1]
    print(
        f"\ntargets: whole study < 100 ms ({onnx['whole_study_ms']:.1f}), >= 150x naive "
        f"({naive / onnx['whole_study_ms']:.0f}x), batch 8 >= 15 studies/s ({onnx['throughput']['batch 8']:.1f}), "
        f"peak memory < 2048 MiB ({onnx['peak_rss_mib']:.0f})"
    )


if __name__ == "__main__":
    main()
