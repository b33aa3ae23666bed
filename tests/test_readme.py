"""The README's Python example runs as written and learns Iris (it once used undefined arrays and
raw features, on which fit's first steps killed every ReLU)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_api_example_runs_and_learns_iris():
    text = README.read_text(encoding="utf-8")
    example = re.search(r"## The Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(compile(example, "README.md (The Python API)", "exec"), scope)
    out, y, t = scope["out"], scope["y"], scope["t"]
    assert out["species"].shape == (150, 3) and out["petal_width"].shape == (150, 1)
    assert np.mean(out["species"].argmax(axis=1) == y) >= 0.95
    assert np.sqrt(np.mean((out["petal_width"][:, 0] - t) ** 2)) <= 0.3
    assert set(scope["grads"]) == set(scope["params"])
