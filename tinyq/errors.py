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


class NativeCrash(VerificationError):
    """A native runtime (TF converter, LiteRT, TFLM) died in its worker process: signal, abort or sanitizer."""

    def __init__(self, runtime: str, step: str, signal: str, lines: tuple[str, ...] = ()) -> None:
        self.runtime, self.step, self.signal, self.lines = runtime, step, signal, lines
        said = f"; it printed: {' | '.join(lines)}" if lines else ""
        super().__init__(f"{runtime} crashed ({signal}) during {step}; tinyq itself is unharmed{said}")

    def __reduce__(self):
        return (type(self), (self.runtime, self.step, self.signal, self.lines))


class NativeTimeout(VerificationError):
    """A native runtime's worker did not answer within its time limit (hung, stopped, or far too slow); the
    worker was killed."""

    def __init__(self, runtime: str, step: str, seconds: float) -> None:
        self.runtime, self.step, self.seconds = runtime, step, seconds
        limit = f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.3g}"
        super().__init__(f"{runtime} did not finish {step} within its time limit of {limit} s; its worker "
                         f"was killed (--timeout SECONDS sets another limit)")

    def __reduce__(self):
        return (type(self), (self.runtime, self.step, self.seconds))


class OutputError(TinyqError):
    """An output folder cannot be written: locked by another run, read-only, full disk, no permission."""
