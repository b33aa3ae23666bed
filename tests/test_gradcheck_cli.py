import math

import numpy as np
import pytest

from tinymtl import Classify, MultiTaskNet, Regress
from tinymtl import gradcheck
from tinymtl.gradcheck import PASS_BELOW, check_network, numerical_gradient, worst_error


def test_gradcheck_cli_prints_every_parameter_and_passes(capsys):
    assert gradcheck.main(["--hidden", "4,3", "--head", "y=classify:3", "--head", "t=regress:2"]) == 0
    out = capsys.readouterr().out
    for name in ("trunk.0.W", "trunk.1.b", "heads.y.W", "heads.t.b"):
        assert name in out
    assert "FAIL" not in out and "worst relative error" in out


def test_gradcheck_cli_with_no_hidden_layer(capsys):
    assert gradcheck.main(["--hidden", "", "--seed", "3"]) == 0
    assert "trunk" not in capsys.readouterr().out


def test_gradcheck_cli_rejects_a_malformed_head(capsys):
    assert gradcheck.main(["--head", "y=guess:3"]) == 2
    assert "NAME=classify:K" in capsys.readouterr().err


STEP_RANGE = "argument --step: expected a number between 0 and 1 (exclusive)"


@pytest.mark.parametrize("argv, expected", [
    (["--step", "nan"], f"{STEP_RANGE}, got 'nan'"),
    (["--step", "inf"], f"{STEP_RANGE}, got 'inf'"),
    (["--step=-inf"], STEP_RANGE),
    (["--step", "1e300"], STEP_RANGE),
    (["--step", "1"], STEP_RANGE),
    (["--step", "0"], STEP_RANGE),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--inputs", "0"], "argument --inputs: expected an integer >= 1, got '0'"),
    (["--inputs", "2.5"], "argument --inputs: expected an integer >= 1, got '2.5'"),
    (["--rows", "-3"], "argument --rows: expected an integer >= 1, got '-3'"),
    (["--show", "-1"], "argument --show: expected an integer >= 0, got '-1'"),
    (["--head", "y=classify:2", "--head", "y=regress:1"], "--head y is given more than once"),
    (["--head", "y=classify:2", "--head", "t=regress:1", "--head", "t=classify:3"],
     "--head t is given more than once"),
])
def test_gradcheck_cli_rejects_a_bad_option_in_one_line(argv, expected, capsys):
    assert gradcheck.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any check ran
    assert captured.err.startswith("python -m tinymtl.gradcheck: error: ")
    assert expected in captured.err and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_gradcheck_cli_shows_as_many_entries_as_asked(capsys):
    lines_per_parameter = {}
    for show in (0, 2):
        assert gradcheck.main(["--hidden", "", "--head", "y=regress:3", "--show", str(show)]) == 0
        out = capsys.readouterr().out
        lines_per_parameter[show] = out.count("central difference")
    assert lines_per_parameter == {0: 0, 2: 4}  # heads.y.W and heads.y.b, 2 entries each


def test_gradcheck_cli_takes_a_large_step_and_fails_it(capsys):
    # 0.5 is allowed, and the truncation error of central differences, O(h^2), fails the check
    assert gradcheck.main(["--step", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "worst relative error" in out


def test_gradcheck_cli_never_passes_a_nan_error(monkeypatch, capsys):
    """One NaN relative error among good ones: FAIL on its line, a NaN worst error, exit 1
    (max(0.0, nan) is 0.0, which once reported this as a pass)."""
    good = gradcheck.relative_error

    def nan_for_one_array(analytic, numeric):
        return math.nan if np.shape(analytic) == (3,) else good(analytic, numeric)

    monkeypatch.setattr(gradcheck, "relative_error", nan_for_one_array)
    assert gradcheck.main([]) == 1  # heads.species.b is the only (3,) array
    out = capsys.readouterr().out
    assert "relative error nan  FAIL" in out
    assert "worst relative error nan" in out


@pytest.mark.parametrize("errors", [[1e-9, math.nan, 1e-10], [math.nan, 1e-9], [1e-9, math.nan]])
def test_worst_error_is_nan_if_any_error_is(errors):
    results = {f"p{i}": (None, None, error) for i, error in enumerate(errors)}
    assert math.isnan(worst_error(results))
    assert not worst_error(results) < PASS_BELOW


def test_worst_error_is_the_largest_error():
    results = {"a": (None, None, 1e-9), "b": (None, None, 3e-8), "c": (None, None, 0.0)}
    assert worst_error(results) == 3e-8


def test_worst_error_of_a_network_check_passes_and_a_broken_gradient_fails():
    rng = np.random.default_rng(0)
    heads = {"y": Classify(3), "t": Regress(2)}
    net = MultiTaskNet(3, (4,), heads, rng=rng, dtype=np.float64)
    X = rng.standard_normal((6, 3))
    targets = {"y": rng.integers(0, 3, 6), "t": rng.standard_normal((6, 2))}
    results = check_network(net, X, targets)
    assert worst_error(results) < PASS_BELOW
    analytic, numeric, _ = results["heads.t.W"]
    results["heads.t.W"] = (analytic, numeric, gradcheck.relative_error(1.01 * analytic, numeric))
    assert worst_error(results) > PASS_BELOW


@pytest.mark.parametrize("h", [math.nan, math.inf, -math.inf, 0.0, -1e-6])
def test_numerical_gradient_refuses_a_step_that_is_not_a_finite_positive_number(h):
    x = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="step h must be a finite number > 0"):
        numerical_gradient(lambda: float(x @ x), x, h)


def test_gradcheck_interrupted_or_out_of_memory_is_one_line(capsys, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gradcheck, "check_network", stop)
    assert gradcheck.main([]) == 130
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert gradcheck.main(["--rows", "10000000000000"]) == 1  # numpy cannot allocate that
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not enough memory" in err
