"""The model on the CPU through ONNX Runtime, without TensorFlow.

The model folder holds the trunk (to the last convolutional block) as ONNX, exported by
``cxr models convert`` with its sha256 in the card (``runtime``); the head (pooling and one
dense layer) is read from the Keras weights with h5py and applied in NumPy, so a retrained
head never needs a new ONNX file, and Grad-CAM comes from the head's weights (one matrix
product, core.linear_head.cams_from_head). The TTA views are made in NumPy
(core.model_input); every view is one run of the trunk, on one thread per core side by side
(ONNX Runtime's own threads split one batch less evenly on two cores). The domain gate's own
trunk, where the card has one, is a second ONNX file run on the identity views only, on
the same threads.

Why ONNX Runtime over OpenVINO (both measured here on a batch of 8 views, the default
trunk): 59 ms and 60 ms at float32 against TensorFlow's 127 ms, both within 2.5e-4 of
TensorFlow's activations; OpenVINO is faster only by inferring in bfloat16 (39 ms), which
moved activations by up to 4.2 and so probabilities far beyond 1e-4. At equal speed and
exactness, ONNX Runtime is the smaller dependency (one wheel, no plugin directory).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.analyzer_base import AnalyzerBase
from core.calibration import sigmoid
from core.linear_head import cams_from_head, read_head
from core.model_card import ModelCard, ModelCardMismatch, file_sha256
from core.model_input import model_input, view_of


def parallel_runs() -> int:
    """How many views run side by side: CXR_RUNTIME_THREADS, else one per core this
    process may use."""
    wanted = int(os.environ.get("CXR_RUNTIME_THREADS", "0"))
    if wanted > 0:
        return wanted
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _session(path: Path, sha256: str):
    """A session that runs on the calling thread only: the analyzer runs one view per call
    on as many threads as there are cores (a study's 8 views 69 ms here, against 84 ms as
    one batch split over the cores by the runtime's own threads, interleaved runs)."""
    import onnxruntime as ort

    if file_sha256(path) != sha256:
        raise ModelCardMismatch(f"{path.name}: its sha256 does not match the card's runtime entry")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxAnalyzer(AnalyzerBase):
    """Same interface and outputs as core.inference.Analyzer (a test holds the
    probabilities within 1e-4 on real radiographs)."""

    def __init__(
        self, model_dir: str | Path, views: tuple[str, ...] | list[str] | None = None, warm_up: bool = True
    ) -> None:
        card = ModelCard.load(Path(model_dir))
        super().__init__(model_dir, card, views)
        onnx = (card.runtime or {}).get("onnx") or {}
        if "trunk" not in onnx:
            raise ModelCardMismatch(f"{model_dir}: the card names no ONNX trunk (run cxr models convert)")
        self.device = "CPU (ONNX Runtime)"
        # a session's run is thread-safe; each view is one run, so both trunks share these threads
        self._pool = ThreadPoolExecutor(parallel_runs(), thread_name_prefix="onnx-run")
        self.trunk = _session(self.model_dir / onnx["trunk"]["file"], onnx["trunk"]["sha256"])
        gate = onnx.get("gate_trunk")
        self.gate_trunk = _session(self.model_dir / gate["file"], gate["sha256"]) if gate else None
        self.kernel, self.bias = read_head(self.model_dir / card.weights_file, len(self.labels))
        if warm_up:
            self.analyse([np.zeros((self.size, self.size), np.float32)])

    def _submit(self, session, batch: np.ndarray) -> list[Future]:
        """One run per image of the batch, queued on the analyzer's threads: the runs of a
        batch (and of both trunks) proceed side by side, and the runtime's working memory is
        that of one image per thread, whatever the batch size."""
        name = session.get_inputs()[0].name
        return [self._pool.submit(session.run, None, {name: batch[i : i + 1]}) for i in range(len(batch))]

    def _run(self, session, batch: np.ndarray) -> np.ndarray:
        return _gathered(self._submit(session, batch))

    def _views(self, prepared: np.ndarray) -> np.ndarray:
        """(B, S, S) -> (B*V, S, S): every view of every image, image-major (identity first)."""
        return np.stack([view_of(img, view) for img in prepared for view in self._all_views])

    def augmented_views(self, image: np.ndarray) -> np.ndarray:
        return self._views(self._prepared([image]))

    def forward(self, images: list[np.ndarray]) -> np.ndarray:
        """Plain forward pass, no TTA: (N, L) probabilities."""
        activations = self._run(self.trunk, model_input(self._prepared(images), self.input_spec))
        return sigmoid(activations.mean(axis=(1, 2)) @ self.kernel + self.bias)

    def raw_outputs(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        b, v = len(images), len(self._all_views)
        inputs = model_input(self._views(self._prepared(images)), self.input_spec)
        # the gate's runs queued first: on a single study they fill the cores' idle tail
        gate_runs = self._submit(self.gate_trunk, inputs[::v]) if self.gate_trunk is not None else []
        activations = self._run(self.trunk, inputs)  # (B*V, h, w, K)
        pooled_all = activations.astype(np.float32).mean(axis=(1, 2))
        probs = sigmoid(pooled_all.astype(np.float64) @ self.kernel + self.bias).reshape(b, v, -1)
        identity = activations[::v]
        cams = cams_from_head(identity, self.kernel)
        head_features = pooled_all[::v]
        if gate_runs:
            gate_pooled = _gathered(gate_runs).astype(np.float32).mean(axis=(1, 2))
        else:
            gate_pooled = head_features
        return probs[:, self._mean_slice].astype(np.float64), cams, gate_pooled, head_features


def _gathered(runs: list[Future]) -> np.ndarray:
    """The runs' first outputs, stacked in the order they were queued."""
    parts = [run.result()[0] for run in runs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
