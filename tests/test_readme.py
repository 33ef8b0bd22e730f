"""README opens with the two commands, and .ci/run runs exactly the README's test command."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parent.parent


def _readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text())


def test_readme_opens_with_install_and_test_commands():
    text = (REPO / "README.md").read_text()
    first_blocks = text.split("\n## ")[0]
    cmds = _readme_commands()
    assert cmds[0] in first_blocks and cmds[1] in first_blocks
    assert "tinyq demo" in cmds[0] and ".ci/install" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    """.ci/run holds the README's test line verbatim, environment prefix included, and sets no TINYQ_MNIST of its
    own: CI runs what a user types (from the repository root, where the relative data path points beside it)."""
    readme_test = _readme_commands()[1]
    assert readme_test.startswith("TINYQ_MNIST=../shared/data/mnist ") and "pytest" in readme_test
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_test in ci
    assert not [ln for ln in ci if "TINYQ_MNIST" in ln and ln != readme_test and not ln.startswith("#")]
    assert "bash .ci/install" in ci and 'cd "$(dirname "$0")/.."' in ci
