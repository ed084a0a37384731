"""The README's training example runs and learns."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")


def test_train_toy(tmp_path):
    script = Path(__file__).parents[1] / "examples" / "train_toy.py"
    out = subprocess.run([sys.executable, str(script), "--dir", str(tmp_path), "--steps", "40"], capture_output=True, text=True, check=True, timeout=300)
    first, last = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+)", out.stdout).groups())
    assert last < first * 0.7, out.stdout


def test_train_toy_resumes_where_it_stopped(tmp_path):
    """Stopped after 25 steps (checkpointed at 20) and resumed with DataLoader workers, the run
    trains on the batches an uninterrupted run does: the same final loss, to the bit."""
    script = Path(__file__).parents[1] / "examples" / "train_toy.py"

    def run(*args):
        cmd = [sys.executable, str(script), "--dir", str(tmp_path), "--steps", "40", *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout

    whole = run()
    stopped = run("--checkpoint", str(tmp_path / "ck.pt"), "--stop-at", "25")
    assert "stopped after step 24" in stopped and "final loss" not in stopped
    resumed = run("--checkpoint", str(tmp_path / "ck.pt"), "--workers", "2")
    assert "resumed at step 20" in resumed
    final = re.compile(r"final loss (\S+)")
    assert final.search(resumed).group(1) == final.search(whole).group(1), (whole, resumed)
