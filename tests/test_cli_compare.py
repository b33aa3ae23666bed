"""python -m tinymtl.compare: multi-task versus single-task tables, and the folds behind them."""

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinymtl import compare
from tinymtl.data import fold_rows

TINY = ["--epochs", "3", "--hidden", "6", "--folds", "3", "--quiet"]


def generated_csv(tmp_path, n=45):
    """Two related targets, 'hot' (classify, a few labels missing) and 'level' (regress)."""
    rng = np.random.default_rng(2)
    lines = ["x1,x2,site,hot,level"]
    for i in range(n):
        x1, x2 = rng.normal(size=2)
        hot = "" if i % 9 == 4 else ("yes" if x1 + x2 > 0 else "no")
        lines.append(f"{x1:.3f},{x2:.3f},{'ab'[i % 2]},{hot},{3 * x1 + x2 + 10:.3f}")
    path = tmp_path / "gen.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_iris_table_has_both_models_per_task_with_spread(capsys):
    assert compare.main(TINY) == 0
    out = capsys.readouterr().out
    assert "3 folds x 1 seed(s) = 3 runs" in out
    for word in ("species (classify)", "petal_width (regress)", "accuracy", "RMSE", "R^2",
                 "multi-task", "single-task", "+/-", "better"):
        assert word in out
    accuracy = next(line for line in out.splitlines() if line.strip().startswith("accuracy"))
    assert accuracy.count("+/-") == 3 and accuracy.split()[-1] in (
        "tie", "noise)", "better)")


def test_json_report_holds_every_run_and_a_consistent_verdict(capsys):
    assert compare.main([*TINY, "--seeds", "2", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = json.loads(captured.out)
    assert report["runs"] == 6 and report["seeds"] == [0, 1]
    for task in report["tasks"].values():
        for entry in task["metrics"].values():
            multi, single = entry["multi_task"], entry["single_task"]
            assert len(multi["values"]) == len(single["values"]) == 6
            assert multi["mean"] == pytest.approx(np.mean(multi["values"]))
            assert multi["std"] == pytest.approx(np.std(multi["values"], ddof=1))
            diff = entry["difference"]["mean"]
            assert diff == pytest.approx(multi["mean"] - single["mean"])
            if diff != 0:
                assert (entry["better"] == "multi-task") == ((diff > 0) == entry["higher_is_better"])


def test_same_seed_same_initial_trunk_so_one_task_per_model_is_the_same_model(capsys):
    """With a single task, the 'multi-task' model is that task's single-task model: equal scores."""
    assert compare.main([*TINY, "--classify", "species", "--format", "json"]) == 0
    entry = json.loads(capsys.readouterr().out)["tasks"]["species"]["metrics"]["accuracy"]
    assert entry["multi_task"]["values"] == entry["single_task"]["values"]
    assert entry["better"] == "tie"


def test_user_csv_with_missing_labels_early_stopping_and_weighting(tmp_path, capsys):
    csv = generated_csv(tmp_path)
    assert compare.main(["--csv", csv, "--classify", "hot", "--regress", "level", *TINY,
                         "--patience", "2", "--weighting", "uncertainty", "--val-fraction", "0.2",
                         "--class-weight", "hot=balanced"]) == 0
    captured = capsys.readouterr()
    assert "hot (classify)" in captured.out and "level (regress)" in captured.out
    assert "weighting uncertainty" in captured.out and "patience 2" in captured.out


@pytest.mark.parametrize("argv, code, words", [
    (["--folds", "1"], 2, ["argument --folds: expected an integer >= 2, got '1'"]),
    (["--folds", "0"], 2, ["argument --folds: expected an integer >= 2, got '0'"]),
    (["--folds", "500"], 1, ["500 folds of 150 rows"]),
    (["--seeds", "0"], 2, ["--seeds"]),
    (["--loss-weight", "nope=1"], 2, ["--loss-weight nope"]),
    (["--format", "xml"], 2, ["--format"]),
    (["--val-fraction", "0.2"], 2, ["--val-fraction applies only with --patience"]),
])
def test_bad_options_are_one_line(capsys, argv, code, words):
    assert compare.main([*TINY, *argv]) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


@given(st.integers(4, 60), st.integers(2, 4), st.integers(0, 2**32 - 1), st.booleans())
def test_every_row_is_tested_once_and_folds_keep_class_shares(n_rows, k, seed, stratified):
    rng = np.random.default_rng(seed)
    strata = rng.integers(-1, 3, n_rows) if stratified else None
    folds = fold_rows(n_rows, k, rng=rng, strata=strata)
    tested = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(n_rows))
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n_rows))
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    if stratified:
        for s in np.unique(strata):
            counts = [int(np.sum(strata[test] == s)) for _, test in folds]
            assert max(counts) - min(counts) <= 1


def test_a_target_beyond_float32_is_named_by_its_cell(tmp_path, capsys):
    """With --no-target-scaling, 1e39 does not fit the network's float32: the error names the
    file, line and column, as train's does."""
    path = generated_csv(tmp_path)
    lines = (tmp_path / "gen.csv").read_text().splitlines()
    cells = lines[7].split(",")
    lines[7] = ",".join([*cells[:-1], "1e39"])  # line 8: the header, then rows
    (tmp_path / "gen.csv").write_text("\n".join(lines) + "\n")
    assert compare.main([*TINY, "--csv", path, "--classify", "hot", "--regress", "level",
                         "--no-target-scaling"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f'{path}: line 8, column "level": \'1e39\' is beyond the range of float32' in err


def test_patience_without_validation_labels_of_a_task_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(3)
    lines = ["x1,x2,few,level"]
    for i in range(45):  # 'few' is labelled on the first 3 rows only
        x1, x2 = rng.normal(size=2)
        lines.append(f"{x1:.3f},{x2:.3f},{('yes' if x1 > 0 else 'no') if i < 3 else ''},{x1 + x2:.3f}")
    (tmp_path / "few.csv").write_text("\n".join(lines) + "\n")
    code = compare.main(["--csv", str(tmp_path / "few.csv"), "--regress", "level", "--classify",
                         "few", *TINY, "--patience", "2"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "hold no label of few" in err and "--patience" in err


def test_within_noise_uses_students_t_for_few_runs():
    assert compare.t_critical(1) == 12.706 and compare.t_critical(9) == 2.262
    assert compare.t_critical(29) == 2.045 and compare.t_critical(500) == 2.0
    # 2 runs differing by 0.2 and 0.1: mean 0.15, standard error 0.05, so 3 standard errors,
    # which two runs cannot tell from noise (t = 12.7 with one degree of freedom)...
    assert compare.verdict([0.2, 0.1], higher=True) == ("multi-task", True)
    # ...while 20 runs at the same mean and spread can (t = 2.09, standard error 0.016)
    assert compare.verdict([0.2, 0.1] * 10, higher=True) == ("multi-task", False)
    assert compare.verdict([-0.2, -0.1] * 10, higher=True) == ("single-task", False)
    assert compare.verdict([0.3], higher=False) == ("single-task", False)  # one run: no spread
    assert compare.verdict([0.1, -0.1], higher=True)[0] == "tie"


def test_a_fold_whose_training_rows_hold_no_label_of_a_class_task_is_named(tmp_path, capsys,
                                                                           monkeypatch):
    rng = np.random.default_rng(5)
    lines = ["x1,x2,kind,rare"]
    for i in range(40):  # 'rare' is labelled on rows 0 and 1 only
        x1, x2 = rng.normal(size=2)
        lines.append(f"{x1:.3f},{x2:.3f},{'ab'[int(x1 > 0)]},{('p', 'q', '')[min(i, 2)]}")
    (tmp_path / "rare.csv").write_text("\n".join(lines) + "\n")

    def both_labels_in_fold_1(n_rows, n_folds, *, rng, strata=None, source=""):
        test = [np.arange(0, 8), *(np.arange(8 * k, 8 * k + 8) for k in range(1, n_folds))]
        return [(np.setdiff1d(np.arange(n_rows), t), t) for t in test]

    monkeypatch.setattr(compare, "fold_rows", both_labels_in_fold_1)
    code = compare.main(["--csv", str(tmp_path / "rare.csv"), "--classify", "kind", "--classify",
                         "rare", *TINY])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1, err
    assert 'target "rare" has no labels in the training rows of seed 0, fold 1' in err
    assert "fewer --folds" in err


def test_without_patience_no_rows_are_held_out_besides_the_folds(tmp_path, capsys):
    """compare's folds hold out its test rows; a validation split only exists for --patience.
    Five rows once failed with "too few rows for --val-fraction 0.1", whose advice (give
    --val-fraction) was then refused without --patience."""
    path = tmp_path / "five.csv"
    path.write_text("x,y\n1,1.5\n2,2.5\n3,2.9\n4,4.2\n5,5.1\n")
    args = compare.build_parser().parse_args(["--csv", str(path), "--regress", "y", "--folds", "2",
                                              "--epochs", "2", "--quiet", "--format", "json"])
    for _ in range(2):  # the same arguments twice: compare leaves them as they were
        report = compare.compare(args)
        assert report["n_rows"] == 5 and report["training"]["val_fraction"] is None
    assert args.val_fraction is None
    capsys.readouterr()
