"""README opens with the two commands, and .ci/run runs exactly the README's test command."""

import re
from pathlib import Path

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
    readme_test = _readme_commands()[1]
    command = re.sub(r"^(\w+=\S+\s+)+", "", readme_test)  # the env prefix is set by .ci/run itself
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci.splitlines()
    assert "TINYQ_MNIST=" in ci and "bash .ci/install" in ci
