"""Rewrites of a float Keras model before conversion that keep what it computes (Nagel et al. 2019,
"Data-Free Quantization"): cross-layer equalization rescales the channels between two weighted layers through a
ReLU or linear activation so their weight ranges match; bias correction moves the expected error of the
int8-rounded weights into the biases. Each result is checked against the original model on given inputs."""

from __future__ import annotations

import dataclasses

import numpy as np

from .analyze import weight_roundtrip
from .errors import QuantizationError
from .models import keras_module

WEIGHTED = ("Dense", "Conv2D")  # kernels (..., in, out): channels on the last axis
# Between two weighted layers: layers that commute with a positive per-channel scale (ReLU is positively
# homogeneous; pooling, dropout and flatten act per channel or not at all).
PASS_THROUGH = ("Dropout", "MaxPooling2D", "AveragePooling2D", "Flatten", "ReLU", "Activation")
HOMOGENEOUS = ("linear", "relu")
CLE_ITERATIONS = 20  # sweeps over all pairs; each equalizes exactly, chains converge in a few
CHECK_RTOL = 1e-4  # rewritten vs original outputs: max |difference| <= CHECK_RTOL * max |output| + CHECK_ATOL
CHECK_ATOL = 1e-5


@dataclasses.dataclass(frozen=True)
class LayerPair:
    """Two weighted layers with only channel-wise, positively homogeneous layers between them."""

    first: str
    second: str
    flatten_channels: int  # the first's channel count when a Flatten lies between (rows of the second: j % C)


@dataclasses.dataclass(frozen=True)
class Equalized:
    """One pair after equalization: the range of channel scales applied (first divided, second multiplied)."""

    pair: LayerPair
    min_scale: float
    max_scale: float


@dataclasses.dataclass(frozen=True)
class BiasShift:
    """One layer's bias correction: the largest change of a bias, and what it is relative to that bias's range."""

    layer: str
    max_shift: float
    bias_range: float


@dataclasses.dataclass(frozen=True)
class Rewritten:
    """A rewritten copy of the float model, what was done, and how far its outputs are from the original's on
    the check inputs (for bias correction: by design, the weights' expected int8 error)."""

    model: object
    equalized: tuple[Equalized, ...] = ()
    biases: tuple[BiasShift, ...] = ()
    max_abs_difference: float = 0.0
    output_range: float = 0.0


def _activation(layer) -> str:
    act = getattr(layer, "activation", None)
    return "linear" if act is None else getattr(act, "__name__", str(act))


def _passes(layer) -> bool:
    kind = type(layer).__name__
    if kind not in PASS_THROUGH:
        return False
    if kind == "ReLU":
        cfg = layer.get_config()
        return cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
    if kind == "Activation":
        return _activation(layer) in HOMOGENEOUS
    return True


def _producer(tensor):
    """The layer that computed a Keras symbolic tensor (Keras records it as the tensor's history)."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history[0]


def _readers(model) -> dict[int, list]:
    """id(layer) -> the layers that read its output, each once (a model output counts as one more reader)."""
    readers: dict[int, list] = {}
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        for producer in {id(p): p for p in map(_producer, inputs) if p is not None}.values():
            readers.setdefault(id(producer), []).append(layer)
    for t in model.outputs:
        readers.setdefault(id(_producer(t)), []).append(None)
    return readers


def layer_pairs(model) -> tuple[LayerPair, ...]:
    """Every (first, second) of Dense/Conv2D layers joined by a chain of single readers through PASS_THROUGH
    layers, the first with a linear or ReLU activation, so rescaling the channels between them keeps the
    model's function."""
    readers = _readers(model)
    pairs = []
    for layer in model.layers:
        if type(layer).__name__ not in WEIGHTED or _activation(layer) not in HOMOGENEOUS:
            continue
        node, flatten = layer, 0
        while True:
            nxt = readers.get(id(node), [])
            if len(nxt) != 1 or nxt[0] is None:
                break
            node = nxt[0]
            if type(node).__name__ == "Flatten":
                flatten = int(layer.kernel.shape[-1])
            if not _passes(node):
                break
        if type(node).__name__ in WEIGHTED and node is not layer and _groups(node) == 1:
            pairs.append(LayerPair(layer.name, node.name, flatten))
    return tuple(pairs)


def _groups(layer) -> int:
    return int(layer.get_config().get("groups", 1))


def copy_model(model):
    """A new model with the same architecture and weights (rewrites never touch the caller's model)."""
    keras = keras_module(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _second_rows(kernel: np.ndarray, pair: LayerPair, channels: int) -> np.ndarray:
    """For each input row of the second kernel (its second-to-last axis), the channel of the first layer."""
    rows = kernel.shape[-2]
    return np.arange(rows) % channels if pair.flatten_channels else np.arange(rows)


def rescale_channels(model, pair: LayerPair, scales: np.ndarray) -> None:
    """In place: the first layer's output channel c divided by scales[c], the second's inputs from it multiplied;
    the function is unchanged for positive scales (ReLU(x / s) = ReLU(x) / s)."""
    scales = np.asarray(scales, np.float64)
    if np.any(~(scales > 0)) or not np.all(np.isfinite(scales)):
        raise QuantizationError(f"layers {pair.first!r} -> {pair.second!r}: channel scales must be positive and "
                                f"finite")
    first, second = model.get_layer(pair.first), model.get_layer(pair.second)
    w1 = [np.asarray(w, np.float64) for w in first.get_weights()]
    w2 = [np.asarray(w, np.float64) for w in second.get_weights()]
    w1[0] = w1[0] / scales
    if len(w1) > 1:
        w1[1] = w1[1] / scales
    factor = scales[_second_rows(w2[0], pair, len(scales))]
    w2[0] = w2[0] * factor.reshape((1,) * (w2[0].ndim - 2) + (-1, 1))
    first.set_weights([w.astype(np.float32) for w in w1])
    second.set_weights([w.astype(np.float32) for w in w2])


def _ranges(model, pair: LayerPair) -> tuple[np.ndarray, np.ndarray]:
    """Per channel between the pair: max |weight| of the first's output channel, of the second's inputs from it."""
    k1 = np.abs(np.asarray(model.get_layer(pair.first).kernel.numpy(), np.float64))
    k2 = np.abs(np.asarray(model.get_layer(pair.second).kernel.numpy(), np.float64))
    r1 = k1.reshape(-1, k1.shape[-1]).max(axis=0)
    rows = np.moveaxis(k2, -2, 0).reshape(k2.shape[-2], -1).max(axis=1)
    r2 = np.zeros_like(r1)
    np.maximum.at(r2, _second_rows(k2, pair, len(r1)), rows)
    return r1, r2


def equalize(model, check_inputs: np.ndarray, iterations: int = CLE_ITERATIONS) -> Rewritten:
    """Cross-layer equalization of every pair (`layer_pairs`), swept `iterations` times: channel c of a pair gets
    scale sqrt(r1_c / r2_c), so both layers' weight ranges become sqrt(r1_c * r2_c). Checked on `check_inputs`."""
    pairs = layer_pairs(model)
    out = copy_model(model)
    total = {p: np.ones(int(out.get_layer(p.first).kernel.shape[-1])) for p in pairs}
    for _ in range(iterations):
        for pair in pairs:
            r1, r2 = _ranges(out, pair)
            scales = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1.0)), 1.0)
            rescale_channels(out, pair, scales)
            total[pair] = total[pair] * scales
    done = tuple(Equalized(p, float(total[p].min()), float(total[p].max())) for p in pairs)
    diff, span = check_same_function(model, out, check_inputs, "cross-layer equalization")
    return Rewritten(out, equalized=done, max_abs_difference=diff, output_range=span)


def check_same_function(original, rewritten, inputs: np.ndarray, what: str) -> tuple[float, float]:
    """Max |difference| of the two models' outputs on `inputs` and the original's max |output|; raises when the
    difference exceeds CHECK_RTOL of that range plus CHECK_ATOL."""
    a = np.asarray(original.predict(inputs, batch_size=500, verbose=0), np.float64)
    b = np.asarray(rewritten.predict(inputs, batch_size=500, verbose=0), np.float64)
    diff, span = float(np.max(np.abs(a - b))), float(np.max(np.abs(a)))
    if not diff <= CHECK_RTOL * span + CHECK_ATOL:
        raise QuantizationError(f"model {original.name!r}: {what} changed the float outputs by up to {diff:.3g} "
                                f"(outputs span {span:.3g}; allowed {CHECK_RTOL:g} of it + {CHECK_ATOL:g})")
    return diff, span


def _layer_inputs(model, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    keras = keras_module(model)
    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in names])
    out = probe.predict(x, batch_size=500, verbose=0)
    return out if isinstance(out, list) else [out]


def correct_bias(model, calibration: np.ndarray, per_channel: bool = True) -> Rewritten:
    """Bias correction: each Dense/Conv2D bias minus the expected output error of its int8-rounded kernel
    (symmetric, per channel or per tensor as the converter will round it), E[(W_q - W) x], with E[x] the mean
    layer input over `calibration` (a Conv2D's per input channel, borders ignored). The float outputs move by
    that expected error only; the check reports how far."""
    out = copy_model(model)
    layers = [l for l in out.layers if type(l).__name__ in WEIGHTED and len(l.get_weights()) == 2
              and _groups(l) == 1]
    means = _layer_inputs(out, [l.name for l in layers], calibration)
    shifts = []
    for layer, x in zip(layers, means):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        delta = weight_roundtrip(kernel, per_channel) - kernel
        mean_in = np.asarray(x, np.float64).reshape(-1, kernel.shape[-2]).mean(axis=0)
        shift = np.einsum("...io,i->o", delta, mean_in)
        layer.set_weights([kernel.astype(np.float32), (bias - shift).astype(np.float32)])
        shifts.append(BiasShift(layer.name, float(np.max(np.abs(shift))), float(np.ptp(bias))))
    a = np.asarray(model.predict(calibration, batch_size=500, verbose=0), np.float64)
    b = np.asarray(out.predict(calibration, batch_size=500, verbose=0), np.float64)
    return Rewritten(out, biases=tuple(shifts), max_abs_difference=float(np.max(np.abs(a - b))),
                     output_range=float(np.max(np.abs(a))))
