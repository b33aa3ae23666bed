"""benchmarks/weighting.py --quick runs end to end and reports every method's per-task metrics."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "weighting.py"


def test_quick_benchmark_reports_every_method(capsys):
    spec = importlib.util.spec_from_file_location("weighting_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--json", "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["method"]: row for row in report["table"]}
    assert list(rows) == [*bench.METHODS, bench.REFERENCE]
    for row in rows.values():
        assert row["lr"] in bench.QUICK["lrs"]
        if row["runs"]:
            assert set(bench.TASKS) <= set(row) and -1e9 < row["big"][0] <= 1
    # the chosen rate is the best mean validation score of the method's grid
    for method, row in rows.items():
        scores = {lr: report["grid"][f"{method} @ {lr:g}"]["score"] for lr in bench.QUICK["lrs"]}
        assert scores[row["lr"]] == max(scores.values())
