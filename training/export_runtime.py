"""``cxr models convert --model DIR``: the model folder's trunk (and the domain gate's own
trunk) as ONNX for the CPU runtime (core.onnx_analyzer), with each file's sha256 in the card.

tf2onnx turns the Keras normalisation layer's mean and variance into graph inputs; they are
folded back in as constants here, so the file needs one input, the image batch. The export
is checked before the card names it: the ONNX trunk's activations on a batch of the folder's
own inputs must match TensorFlow's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from core.model_card import ModelCard, file_sha256

OPSET = 17
TRUNK_FILE = "trunk.onnx"
GATE_TRUNK_FILE = "gate_trunk.onnx"


def _export(keras_trunk, size: int, channels: int, out: Path) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    spec = (tf.TensorSpec((None, size, size, channels), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def trunk(x):
        return tf.cast(keras_trunk(x, training=False), tf.float32)

    model, _ = tf2onnx.convert.from_function(trunk, input_signature=spec, opset=OPSET)
    extra = list(model.graph.input)[1:]
    if extra:  # the normalisation layer's statistics, exported as inputs: fold them back in
        norms = [layer for layer in _layers(keras_trunk) if type(layer).__name__ == "Normalization"]
        if len(norms) != 1:
            raise ValueError(f"the export has extra inputs {[i.name for i in extra]} and {len(norms)} normalisations")
        values = {"/Sub/y:0": np.array(norms[0].mean, np.float32), "/Sqrt/x:0": np.array(norms[0].variance, np.float32)}
        for graph_input in extra:
            suffix = next((k for k in values if graph_input.name.endswith(k)), None)
            if suffix is None:
                raise ValueError(f"the export has an unexpected input {graph_input.name}")
            dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
            model.graph.initializer.append(numpy_helper.from_array(values[suffix].reshape(dims), graph_input.name))
            model.graph.input.remove(graph_input)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    _check(trunk, out, size, channels)


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _check(trunk, path: Path, size: int, channels: int) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, channels)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = trunk(x).numpy()
    scale = float(np.abs(want).max()) or 1.0
    if got.shape != want.shape or float(np.abs(got - want).max()) > 1e-4 * scale:
        raise ValueError(f"{path.name}: the ONNX trunk does not reproduce TensorFlow's activations")


def convert(model_dir: Path) -> ModelCard:
    """Write the ONNX files into ``model_dir`` and name them, with their sha256, in its card."""
    from core.inference import Analyzer

    model_dir = Path(model_dir)
    analyzer = Analyzer(model_dir, views=["identity"], warm_up=False)
    spec = analyzer.input_spec
    _export(analyzer.backbone, spec.size, spec.channels, model_dir / TRUNK_FILE)
    onnx: dict[str, object] = {"trunk": {"file": TRUNK_FILE, "sha256": file_sha256(model_dir / TRUNK_FILE)}}
    if analyzer.gate_trunk is not None:
        _export(analyzer.gate_trunk, spec.size, spec.channels, model_dir / GATE_TRUNK_FILE)
        onnx["gate_trunk"] = {"file": GATE_TRUNK_FILE, "sha256": file_sha256(model_dir / GATE_TRUNK_FILE)}
    onnx["opset"] = OPSET
    onnx["outputs"] = "last convolutional block's activations (N, h, w, K); the head is applied from the weights file"
    card = replace(analyzer.card, runtime={**(analyzer.card.runtime or {}), "onnx": onnx})
    card.save(model_dir)
    return ModelCard.load(model_dir)
