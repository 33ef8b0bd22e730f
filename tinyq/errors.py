"""Errors raised by tinyq: one base class so the CLI can print one line and exit non-zero."""


class TinyqError(Exception):
    """Base of every error tinyq raises on purpose; the message names the file, layer, op or value at fault."""


class DataError(TinyqError):
    """A dataset file or array is missing, truncated, foreign or out of range."""


class ModelError(TinyqError):
    """A Keras model cannot be loaded or does not fit what tinyq supports (one input, one output)."""


class QuantizationError(TinyqError):
    """Calibration data is unusable or the converted model is not full-integer int8."""


class InvalidModelError(TinyqError):
    """A .tflite is malformed or inconsistent: the reader's gate names the op, tensor and field at fault."""


class UnsupportedOpError(TinyqError):
    """An op or op option that the C engine or a target cannot run."""


class VerificationError(TinyqError):
    """A runtime could not run the model, or results disagree where they must not."""


class BuildError(TinyqError):
    """Compiling, linking or running generated firmware failed."""


class EmitError(TinyqError):
    """Generated files cannot be written (bad name, existing folder, template error)."""
