"""Which engine runs the model, chosen once at start by what the machine has.

``auto`` (the default, ``CXR_RUNTIME``): on a machine with an NVIDIA GPU, TensorFlow (mixed
precision there); otherwise ONNX Runtime when the model folder has its ONNX files (``cxr
models convert``), which needs no TensorFlow in the process (a worker within 2 GiB);
otherwise TensorFlow. ``onnx`` or ``tensorflow`` force one; ``onnx`` on a folder without
the files is an error, not a silent fallback. The GPU is detected without importing
TensorFlow, from the driver's device files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from core.analyzer_base import AnalyzerBase
from core.model_card import ModelCard


class Runtime(StrEnum):
    AUTO = "auto"
    ONNX = "onnx"
    TENSORFLOW = "tensorflow"


def nvidia_gpu_present() -> bool:
    return Path("/dev/nvidia0").exists() or any(Path("/proc/driver/nvidia/gpus").glob("*"))


def _onnx_usable(model_dir: Path) -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    runtime = ModelCard.load(model_dir).runtime or {}
    return "trunk" in (runtime.get("onnx") or {})


def choose(model_dir: str | Path, wanted: str = Runtime.AUTO) -> Runtime:
    try:
        runtime = Runtime(wanted)
    except ValueError:
        raise ValueError(f"CXR_RUNTIME={wanted!r}: use one of {[r.value for r in Runtime]}") from None
    if runtime != Runtime.AUTO:
        return runtime
    if not nvidia_gpu_present() and _onnx_usable(Path(model_dir)):
        return Runtime.ONNX
    return Runtime.TENSORFLOW


def load_analyzer(
    model_dir: str | Path,
    views: tuple[str, ...] | list[str] | None = None,
    runtime: str = Runtime.AUTO,
    warm_up: bool = True,
) -> AnalyzerBase:
    """The model folder's analyzer on the chosen engine (the same interface either way)."""
    if choose(model_dir, runtime) == Runtime.ONNX:
        from core.onnx_analyzer import OnnxAnalyzer

        return OnnxAnalyzer(model_dir, views=views, warm_up=warm_up)
    from core.inference import Analyzer

    return Analyzer(model_dir, views=views, warm_up=warm_up)
