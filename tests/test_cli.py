"""The `tinyq` command: one clear line and a non-zero exit for bad input, and the whole demo chain."""

import subprocess
import sys

from tinyq import cli


def _fail(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR
    assert err[-1].startswith("tinyq: error: ")
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_bad_data_path(capsys, tmp_path):
    line = _fail(capsys, ["--quiet", "demo", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert str(tmp_path / "none") in line and "no such file or directory" in line
    assert not (tmp_path / "o").exists()


def test_missing_model_file(capsys, tmp_path):
    line = _fail(capsys, ["--quiet", "convert", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o")])
    assert "m.keras: no such model file" in line


def test_non_empty_out_dir_refused(capsys, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep")
    line = _fail(capsys, ["--quiet", "demo", "--out", str(tmp_path / "o")])
    assert "exists and is not empty" in line
    assert (tmp_path / "o" / "x").read_text() == "keep"


def test_unknown_demo_model(capsys, tmp_path, dataset):
    line = _fail(capsys, ["--quiet", "demo", "--model", "resnet50", "--out", str(tmp_path / "o")])
    assert "unknown demo model 'resnet50'" in line


def test_debug_shows_traceback(capsys, tmp_path):
    cli.main(["--quiet", "--debug", "demo", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert "Traceback" in capsys.readouterr().err


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinyq.cli", "--quiet", "demo", "--data", str(tmp_path / "none"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
