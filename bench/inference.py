"""Per-study inference cost on this CPU: decode, preprocessing, forward, 8-view TTA,
Grad-CAM for all 15 labels, total; throughput at batch 1/8/32; peak memory.

Baseline in the same run: the straightforward way, ``model.predict`` once per augmented
view and one eager GradientTape pass per label.
Run: python bench/inference.py [--model models/default]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bench.common import ROOT, median_ms, require_shared, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    shared = require_shared()
    import tensorflow as tf

    from core.decode import decode_bytes
    from core.gradcam import upsample
    from core.inference import Analyzer, head_cams, prepare

    analyzer = Analyzer(args.model)
    size = analyzer.size
    data = (shared / "nih/full/00000001_000.png").read_bytes()
    pixels = decode_bytes(data).pixels
    prepared = prepare(pixels, size)
    batch = tf.constant(prepared[None, ..., None])

    tta_only = tf.function(
        lambda g: tf.reduce_mean(
            analyzer.model(analyzer._to_model_input(analyzer._make_views(g)), training=False), axis=0
        )
    )
    cam_only = tf.function(
        lambda g: head_cams(analyzer.backbone(analyzer._to_model_input(g), training=False), analyzer._head_logits)[1]
    )

    def whole_study():
        img = decode_bytes(data).pixels
        analysis = analyzer.analyse([img])[0]
        return [analysis.heatmap(j) for j in range(15)]

    r = args.repeat
    ours = {
        "decode": median_ms(lambda: decode_bytes(data), r),
        "preprocess": median_ms(lambda: prepare(pixels, size), r),
        "forward (1 view)": median_ms(lambda: analyzer._forward_fn(batch), r),
        "TTA 8 views (one batch)": median_ms(lambda: tta_only(batch), r),
        "Grad-CAM 15 labels (one Jacobian)": median_ms(lambda: cam_only(batch), r),
        "whole study: decode+TTA+15 heatmaps at 1024px": median_ms(whole_study, r),
    }

    # ---- baseline: model.predict per view, eager tape per label
    views = analyzer._views_fn(batch).numpy()  # the same 8 views
    model, backbone, head = analyzer.model, analyzer.backbone, analyzer._head_logits

    def naive_tta():
        return np.mean([model.predict(np.repeat(v[None] * 255.0, 3, -1), verbose=0) for v in views], axis=0)

    def naive_cam():
        x = tf.constant(np.repeat(prepared[None, ..., None] * 255.0, 3, -1))
        maps = []
        for label in range(15):
            with tf.GradientTape() as tape:
                feats = backbone(x, training=False)
                logit = head(feats)[:, label]
            grads = tape.gradient(logit, feats)
            weights = tf.reduce_mean(grads, axis=(1, 2))
            cam = tf.nn.relu(tf.reduce_sum(feats * weights[:, None, None, :], -1))[0].numpy()
            maps.append(upsample(cam / cam.max() if cam.max() > 0 else cam, 1024, 1024))
        return maps

    def naive_study():
        decode_bytes(data)
        naive_tta()
        naive_cam()

    base = {
        "TTA 8 views (one batch)": median_ms(naive_tta, max(5, r // 3), 1),
        "Grad-CAM 15 labels (one Jacobian)": median_ms(naive_cam, max(5, r // 3), 1),
        "whole study: decode+TTA+15 heatmaps at 1024px": median_ms(naive_study, max(5, r // 3), 1),
    }
    rows = [
        {
            "step": k,
            "ours_median_ms": v,
            "baseline_median_ms": base.get(k, float("nan")),
            "speedup": base[k] / v if k in base else float("nan"),
        }
        for k, v in ours.items()
    ]
    table(
        rows,
        f"Per study at {size}x{size} on {analyzer.device} (baseline: model.predict per view, eager tape per label)",
    )

    tp = []
    images = [pixels] * 32
    for b in (1, 8, 32):
        analyzer.analyse(images[:b])
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 3.0:
            analyzer.analyse(images[:b])
            n += b
        tp.append({"batch": b, "studies_per_s (8-view TTA + 15 CAMs)": n / (time.perf_counter() - t)})
    table(tp, "Throughput")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MiB")
    total = ours["whole study: decode+TTA+15 heatmaps at 1024px"]
    print(
        f"target: whole study < 150 ms median and >= 5x the baseline: {total:.1f} ms, "
        f"{base['whole study: decode+TTA+15 heatmaps at 1024px'] / total:.1f}x"
    )


if __name__ == "__main__":
    main()
