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
