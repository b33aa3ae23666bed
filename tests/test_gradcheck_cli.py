from tinymtl import gradcheck


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
    import pytest
    with pytest.raises(SystemExit) as exit_info:
        gradcheck.main(["--head", "y=guess:3"])
    assert exit_info.value.code == 2
    assert "NAME=classify:K" in capsys.readouterr().err
