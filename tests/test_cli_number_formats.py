"""Numbers with thousands separators and files with other delimiters, through train and predict:
exit 1 and one line on stderr naming the file, line and column, never a model of wrong inputs."""

import numpy as np

from tinymtl import predict, train
from tinymtl.model import Model

FAST = ["--epochs", "3", "--hidden", "8", "--quiet"]


def incomes(n=80, *, separators=True):
    """income,age,buy with every income written "170,423" (or 170423 without ``separators``)."""
    rng = np.random.default_rng(0)
    lines = ["income,age,buy"]
    for _ in range(n):
        income, age = int(rng.integers(20_000, 400_000)), int(rng.integers(18, 80))
        shown = f'"{income:,}"' if separators else str(income)
        lines.append(f"{shown},{age},{'yes' if income > 150_000 else 'no'}")
    return "\n".join(lines) + "\n"


def test_train_refuses_a_feature_of_numbers_with_thousands_separators(tmp_path, capsys):
    csv, out = tmp_path / "thousands_feat.csv", tmp_path / "m.npz"
    csv.write_text(incomes())
    assert train.main(["--csv", str(csv), "--classify", "buy", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    first = incomes().splitlines()[1].split('"')[1]
    assert err == (f'python -m tinymtl.train: error: {csv}: line 2, column "income": {first!r} '
                   f"looks like a number with thousands separators (80 of 80 values have them); "
                   f"remove the separators, or pass --categorical income if the values are "
                   f"categories\n")
    assert not out.exists()


def test_categorical_still_one_hot_encodes_separated_numbers_when_asked(tmp_path):
    csv, out = tmp_path / "thousands_feat.csv", tmp_path / "m.npz"
    csv.write_text(incomes())
    assert train.main(["--csv", str(csv), "--classify", "buy", "--categorical", "income", *FAST,
                       "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.features.columns[0].kind == "categorical" and model.features.n_inputs == 81


def test_predict_says_to_remove_thousands_separators_from_a_numeric_feature(tmp_path, capsys):
    csv, out = tmp_path / "plain.csv", tmp_path / "m.npz"
    csv.write_text(incomes(separators=False))
    assert train.main(["--csv", str(csv), "--classify", "buy", *FAST, "--out", str(out)]) == 0
    assert predict.main(["--model", str(out), '"150,000",40']) == 1
    err = capsys.readouterr().err
    assert err == ('python -m tinymtl.predict: error: command line: value row 1, column "income": '
                   "cannot read '150,000' as a number (feature columns must be numeric); remove "
                   "the thousands separators\n")
    assert predict.main(["--model", str(out), "150000,40"]) == 0


def test_train_names_a_tab_separated_file(tmp_path, capsys):
    csv = tmp_path / "data.tsv"
    csv.write_text("a\tb\tcls\tval\n" + "".join(f"{i}\t{2 * i}\t{'xy'[i % 2]}\t{i / 2}\n"
                                                for i in range(20)))
    assert train.main(["--csv", str(csv), "--classify", "cls", *FAST,
                       "--out", str(tmp_path / "m.npz")]) == 1  # was 2: "--classify cls: no column"
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"python -m tinymtl.train: error: {csv}: line 1: the header "
                          r"'a\tb\tcls\tval' has no commas but 3 tabs: the file looks "
                          "tab-separated; tinymtl reads comma-separated files")
