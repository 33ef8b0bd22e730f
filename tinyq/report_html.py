"""report.html: one static self-contained page (plots embedded as PNG data URIs) from an analysis."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from .emit import environment


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float = 6.0, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def layer_error_plot(errors) -> str:
    """Bar chart of SQNR per layer: the lower, the more signal int8 loses there."""
    fig, ax = _figure()
    ax.bar([e.layer for e in errors], [e.sqnr_db for e in errors], color="#4a7ab5")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("float vs int8 activation, per layer")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def confusion_plot(matrix: np.ndarray, title: str) -> str:
    """A confusion matrix as an image with counts."""
    fig, ax = _figure(4.2, 4.0)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="black" if v < matrix.max() / 2 else "white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    return _png(fig)


def write_html(out_path: str | Path, values: dict) -> Path:
    """Render templates/report.html.j2 with plain values (numbers, strings, data URIs) to `out_path`."""
    path = Path(out_path)
    path.write_text(environment().get_template("report.html.j2").render(**values))
    return path
