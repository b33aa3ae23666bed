"""python -m tinymtl.predict and python -m tinymtl.evaluate, called as main([...])."""

import errno
import io
import json
import sys
import zipfile

import numpy as np
import pytest

from tinymtl import checkpoint, evaluate, predict, train
from tinymtl.data import read_bundled, read_csv, table_from_values
from tinymtl.model import Model

IRIS = "sepal_length,sepal_width,petal_length,petal_width,species\n"


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "iris.npz"
    assert train.main(["--quiet", "--epochs", "60", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    rows = [f"{x},{'red' if x % 2 else 'blue'},{'big' if x > 5 else 'small'},{1000 + 10 * x}"
            for x in range(12)]
    (folder / "m.csv").write_text("x,colour,size,price\n" + "\n".join(rows) + "\n")
    path = folder / "m.npz"
    assert train.main(["--csv", str(folder / "m.csv"), "--classify", "size", "--regress", "price",
                       "--quiet", "--epochs", "5", "--val-fraction", "0.25", "--out", str(path)]) == 0
    return path


def test_predict_names_setosa_for_a_setosa_flower(iris_model, capsys):
    assert predict.main(["--model", str(iris_model), "5.1,3.5,1.4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["row", "species", "P(species=setosa)"]
    assert out[1].split()[1] == "setosa" and float(out[1].split()[2]) > 0.9


def test_json_has_one_object_per_row_keyed_by_task(iris_model, capsys):
    assert predict.main(["--model", str(iris_model), "--format", "json", "5.1,3.5,1.4", "6.7,3.0,5.2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 2
    for row in rows:
        assert set(row) == {"species", "petal_width"}
        assert set(row["species"]) == {"label", "probabilities"}
        probabilities = row["species"]["probabilities"]
        assert list(probabilities) == ["setosa", "versicolor", "virginica"]
        assert abs(sum(probabilities.values()) - 1) <= 1e-6
        assert row["species"]["label"] == max(probabilities, key=probabilities.get)
        assert isinstance(row["petal_width"], float)
    assert rows[0]["species"]["label"] == "setosa" and rows[1]["species"]["label"] == "virginica"
    assert 0.0 < rows[0]["petal_width"] < 0.6 and 1.5 < rows[1]["petal_width"] < 2.6  # centimetres


def test_csv_input_finds_features_by_name_and_matches_the_model(iris_model, tmp_path, capsys):
    csv = tmp_path / "new.csv"
    csv.write_text("species,petal_length,id,sepal_width,sepal_length\n"
                   "?,1.4,a,3.5,5.1\n?,5.2,b,3.0,6.7\n")  # reordered, extra columns ignored
    assert predict.main(["--model", str(iris_model), "--csv", str(csv), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("species,P(species=setosa),P(species=versicolor),P(species=virginica),"
                        "petal_width")
    model = Model.load(iris_model)
    X = np.array([[5.1, 3.5, 1.4], [6.7, 3.0, 5.2]])
    expected = model.predict(((X - [c.mean for c in model.features.columns])
                              / [c.scale for c in model.features.columns]).astype(np.float32))
    for line, width, probabilities in zip(lines[1:], expected["petal_width"], expected["species"]):
        cells = line.split(",")
        np.testing.assert_allclose([float(c) for c in cells[1:4]], probabilities, rtol=1e-6)
        np.testing.assert_allclose(float(cells[4]), width, rtol=1e-6)


def test_predictions_agree_with_the_model_train_evaluated(iris_model, capsys):
    model = Model.load(iris_model)
    iris = read_bundled()
    assert predict.main(["--model", str(iris_model), "--csv",
                         str(__import__("importlib.resources").resources.files("tinymtl") / "data" / "iris.csv"),
                         "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = model.predict(model.inputs(iris))
    assert [r["species"]["label"] for r in rows] == [model.tasks["species"].classes[i]
                                                      for i in expected["species"].argmax(axis=1)]
    np.testing.assert_array_equal([r["petal_width"] for r in rows],
                                  [float(str(v)) for v in expected["petal_width"]])


def test_text_categories_are_given_as_text(mixed_model, capsys):
    assert predict.main(["--model", str(mixed_model), "--format", "json", "3,red", "8,blue"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [{"size", "price"}] * 2
    assert all(900 < r["price"] < 1200 for r in rows)  # the CSV's units, not z-scores


def test_evaluate_scores_every_task_on_labelled_rows(iris_model, capsys):
    iris_csv = str(__import__("importlib.resources").resources.files("tinymtl") / "data" / "iris.csv")
    assert evaluate.main(["--model", str(iris_model), "--csv", iris_csv, "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"species", "petal_width"}
    assert results["species"]["accuracy"] > 0.8 and results["species"]["n_labelled"] == 150
    assert np.sum(results["species"]["confusion_matrix"]) == 150
    assert results["petal_width"]["rmse"] < 0.5 and results["petal_width"]["r2"] > 0.5
    assert evaluate.main(["--model", str(iris_model), "--csv", iris_csv]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro F1" in out and "RMSE" in out and "MAE" in out


def test_evaluate_skips_missing_targets_and_absent_columns(iris_model, tmp_path, capsys):
    csv = tmp_path / "part.csv"
    csv.write_text("sepal_length,sepal_width,petal_length,species\n"
                   "5.1,3.5,1.4,setosa\n6.7,3.0,5.2,\n")
    assert evaluate.main(["--model", str(iris_model), "--csv", str(csv), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert list(results) == ["species"] and results["species"]["n_labelled"] == 1


# ------------------------------------------------------------------------------------------------
# Bad input


def test_evaluate_scores_the_labelled_task_when_another_target_column_is_all_empty(iris_model, tmp_path,
                                                                                   capsys):
    """One labelled target is enough to score: a target column with no label on any row is
    reported as such, not a reason to refuse the file."""
    csv = tmp_path / "species_only.csv"
    csv.write_text(IRIS + "5.1,3.5,1.4,,setosa\n6.7,3.0,5.2,,virginica\n5.9,3.0,4.2,NA,versicolor\n")
    assert evaluate.main(["--model", str(iris_model), "--csv", str(csv), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["species"]["n_labelled"] == 3 and np.sum(results["species"]["confusion_matrix"]) == 3
    assert results["petal_width"] == {"n_labelled": 0, "rmse": None, "mae": None, "r2": None}
    assert evaluate.main(["--model", str(iris_model), "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "species (classify, 3 rows)" in out and "petal_width: no labelled rows" in out


def corrupt_models(folder, good):
    """{name: path} of model files that must be refused."""
    files = {}
    data = good.read_bytes()
    files["truncated"] = folder / "truncated.npz"
    files["truncated"].write_bytes(data[:len(data) // 2])
    files["garbage"] = folder / "garbage.npz"
    files["garbage"].write_bytes(b"\x00\x01 this is not a zip file at all")
    files["not a model"] = folder / "plain.npz"
    np.savez(files["not a model"], x=np.zeros(3))
    arrays, meta = checkpoint.load_npz(good)
    files["bare network"] = folder / "bare.npz"
    checkpoint.save_npz(files["bare network"], arrays, {**meta, "kind": "tinymtl.network"})
    files["newer format"] = folder / "newer.npz"
    np.savez(files["newer format"], **arrays, __meta__=np.array(__import__("json").dumps({**meta, "format": 99})))
    files["wrong shape"] = folder / "shape.npz"
    checkpoint.save_npz(files["wrong shape"], {**arrays, "trunk.0.W": np.zeros((2, 2), np.float32)}, meta)
    files["missing"] = folder / "missing.npz"
    files["a folder"] = folder
    with zipfile.ZipFile(folder / "zip.npz", "w") as z:
        z.writestr("__meta__.npy", b"not an npy")
    files["bad member"] = folder / "zip.npz"
    for kind, change in MALFORMED_METADATA.items():  # hand-edited metadata, each field wrong
        files[kind] = folder / f"{kind.replace(' ', '_')}.npz"
        checkpoint.save_npz(files[kind], arrays, change(json.loads(json.dumps(meta))))
    return files


def _changed(meta, section, key, value):
    meta[section][key] = value
    return meta


MALFORMED_METADATA = {
    "training a string": lambda m: {**m, "training": "x"},
    "classes a string": lambda m: _changed(m, "tasks", "species", {"kind": "classify", "classes": "abc"}),
    "scale null": lambda m: _changed(m, "tasks", "petal_width", {"kind": "regress", "mean": 1, "scale": None}),
    "features a dict": lambda m: {**m, "features": {}},
    "hidden negative": lambda m: _changed(m, "network", "hidden", [-8]),
    "unknown option": lambda m: _changed(m, "network", "weighting", {"method": "fixed", "options": {"beta": 1}}),
}

REFUSALS = {"truncated": "truncated.npz", "garbage": "garbage.npz", "not a model": "plain.npz",
            "bare network": "not a tinymtl command-line model", "newer format": "newer tinymtl",
            "wrong shape": "trunk.0.W", "missing": "no such file", "a folder": "directory",
            "bad member": "zip.npz",
            "training a string": 'training_a_string.npz: invalid metadata: training is "x", expected an object',
            "classes a string": 'invalid metadata: tasks.species.classes is "abc", expected a list',
            "scale null": "invalid metadata: tasks.petal_width.scale is null, expected a finite number > 0",
            "features a dict": "invalid metadata: features is {}, expected a non-empty list",
            "hidden negative": "invalid metadata: network.hidden[0] is -8, expected an integer >= 1",
            "unknown option": "invalid metadata: network.weighting.options.beta is not an option of fixed"}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
@pytest.mark.parametrize("tool", [predict, evaluate])
def test_bad_model_files_are_one_line_errors(iris_model, tmp_path, capsys, kind, tool):
    path = corrupt_models(tmp_path, iris_model)[kind]
    csv = tmp_path / "rows.csv"
    csv.write_text(IRIS + "5.1,3.5,1.4,0.2,setosa\n")
    assert tool.main(["--model", str(path), "--csv", str(csv)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert REFUSALS[kind] in err


@pytest.mark.parametrize("argv, code, words", [
    (["5.1,3.5"], 1, ["value row 1", "2 values, expected 3", "sepal_length,sepal_width,petal_length"]),
    (["5.1,3.5,1.4", "1,2,3,4"], 1, ["value row 2", "4 values"]),
    (["5.1,x,1.4"], 1, ["value row 1", 'column "sepal_width"', "'x'"]),
    (["5.1,inf,1.4"], 1, ["value row 1", "infinite"]),
    (["5.1,,1.4"], 1, ["value row 1", "missing feature value"]),
    ([], 2, ["either rows of values", "neither"]),
    (["--format", "xml", "5.1,3.5,1.4"], 2, ["--format", "xml"]),
])
def test_bad_rows_for_predict(iris_model, capsys, argv, code, words):
    assert predict.main(["--model", str(iris_model), *argv]) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and all(word in err for word in words)


def test_a_category_the_model_never_saw_is_named(mixed_model, tmp_path, capsys):
    assert predict.main(["--model", str(mixed_model), "3,green"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "'green'" in err and 'column "colour"' in err and "known categories: blue, red" in err
    csv = tmp_path / "new.csv"
    csv.write_text("x,colour,size,price\n1,red,small,1010\n2,purple,small,1020\n")
    assert evaluate.main(["--model", str(mixed_model), "--csv", str(csv)]) == 1
    err = capsys.readouterr().err
    assert "line 3" in err and "'purple'" in err


@pytest.mark.parametrize("text, words", [
    ("sepal_length,sepal_width\n5.1,3.5\n", ['no column "petal_length"', "sepal_length, sepal_width"]),
    (IRIS + "5.1,3.5,1.4,0.2\n", ["line 2", "4 fields, expected 5"]),
    (IRIS + "5.1,3.5,1.4,0.2,tulip\n", ["line 2", "'tulip'", "known classes"]),
    (IRIS + "5.1,3.5,1.4,wide,setosa\n", ["line 2", 'column "petal_width"', "'wide'"]),
    ("", ["empty"]),
    ("sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n", ["none of the model's target columns"]),
    (IRIS + "5.1,3.5,1.4,,\n6.1,2.5,4.4,NA,\n", ["(species, petal_width) hold no label", "nothing to score"]),
])
def test_bad_csv_for_evaluate(iris_model, tmp_path, capsys, text, words):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    assert evaluate.main(["--model", str(iris_model), "--csv", str(csv)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and all(word in err for word in words), err


def test_rows_that_start_with_a_negative_value_are_rows(iris_model, capsys):
    assert predict.main(["--model", str(iris_model), "-1.5,3.5,1.4", "5.1,-3.5,1.4",
                         "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert predict.main(["--model", str(iris_model), "--nonsense"]) == 2
    assert "unrecognized arguments: --nonsense" in capsys.readouterr().err


@pytest.mark.parametrize("row", ["-.5,3.5,1.4", "-0.5,3.5,1.4", "-5,3.5,1.4", "-inf,3.5,1.4",
                                 "-Infinity,3.5,1.4", "-nan,3.5,1.4", "-NaN,3.5,1.4", "-.5"])
def test_a_row_starting_with_a_minus_sign_and_a_value_is_a_row_not_an_option(row):
    args = predict.build_parser().parse_args(["--model", "m.npz", row, "5.1,3.5,1.4"])
    assert args.rows == [row, "5.1,3.5,1.4"] and args.model == "m.npz"


def test_a_row_starting_with_minus_point_is_predicted(iris_model, capsys):
    assert predict.main(["--model", str(iris_model), "--format", "json", "-.5,3.5,1.4"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    model = Model.load(iris_model)
    table = table_from_values(["-0.5,3.5,1.4"], model.features.names)
    assert row == predict.predict_rows(model, table)[0]
    # -inf and -nan are rows too: refused as values, naming the value row, not as options
    assert predict.main(["--model", str(iris_model), "-inf,3.5,1.4"]) == 1
    err = capsys.readouterr().err
    assert "value row 1" in err and "infinite" in err and "unrecognized" not in err
    assert predict.main(["--model", str(iris_model), "5.1,3.5,1.4", "-nan,3.5,1.4"]) == 1
    err = capsys.readouterr().err
    assert "value row 2" in err and "unrecognized" not in err


def test_the_table_prints_probabilities_and_values_with_4_decimals(iris_model, capsys):
    assert predict.main(["--model", str(iris_model), "5.1,3.5,1.4", "6.7,3.0,5.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = Model.load(iris_model)
    table = table_from_values(["5.1,3.5,1.4", "6.7,3.0,5.2"], model.features.names)
    outputs = model.predict(model.inputs(table))
    assert lines[0].split() == ["row", "species", "P(species=setosa)", "P(species=versicolor)",
                                "P(species=virginica)", "petal_width"]
    for i, line in enumerate(lines[1:]):
        cells = line.split()
        assert cells[0] == str(i + 1)
        assert cells[2:5] == [f"{float(str(p)):.4f}" for p in outputs["species"][i]]
        assert cells[5] == f"{float(str(outputs['petal_width'][i])):.4f}"
        assert all(len(cell.split(".")[1]) == 4 for cell in cells[2:])


def test_an_input_that_overflows_the_network_is_a_one_line_error(iris_model, tmp_path, capsys):
    assert predict.main(["--model", str(iris_model), "--format", "json", "5.1,3.5,3e38"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not finite" in err and "'petal_length'" in err, err
    assert "Warning" not in err
    (tmp_path / "far.csv").write_text(IRIS + "5.1,3.5,1.4,0.2,setosa\n5.1,3.5,3e38,0.2,setosa\n")
    assert evaluate.main(["--model", str(iris_model), "--csv", str(tmp_path / "far.csv")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "far.csv: line 3" in err and "not finite" in err, err


def test_regression_values_beyond_float32_are_printed_as_numbers(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = rng.normal(size=80)
    rows = "\n".join(f"{x:.4f},{(5 + x) * 1e40:.6g}" for x in a)
    (tmp_path / "big.csv").write_text("a,val\n" + rows + "\n")
    model = tmp_path / "big.npz"
    assert train.main(["--quiet", "--csv", str(tmp_path / "big.csv"), "--regress", "val",
                       "--epochs", "30", "--out", str(model)]) == 0
    capsys.readouterr()
    for fmt in ("json", "csv", "table"):
        assert predict.main(["--model", str(model), "--format", fmt, "0.5"]) == 0
        captured = capsys.readouterr()
        assert "inf" not in captured.out.lower() and captured.err == ""
        if fmt == "json":
            value = json.loads(captured.out)[0]["val"]
            assert 1e40 < value < 1e42


class FullDisk:
    """A stdout whose writes fail as on a full disk (> /dev/full)."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass


def test_a_full_disk_on_stdout_is_one_line(iris_model, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", FullDisk())
    assert predict.main(["--model", str(iris_model), "5.1,3.5,1.4"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["python -m tinymtl.predict: error: cannot write the output: "
                                "No space left on device"]


def test_running_out_of_memory_is_one_line(capsys, monkeypatch):
    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.09 TiB")

    monkeypatch.setattr(train.Model, "build", too_big)
    assert train.main(["--hidden", "99999999999", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not enough memory" in err


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_output_written_block_by_block_is_the_output_of_all_rows_at_once(iris_model, tmp_path,
                                                                         capsys, monkeypatch, fmt):
    rows = "".join(f"{5 + i / 50:.2f},3.0,{1 + i / 20:.2f},1.0,setosa\n" for i in range(23))
    (tmp_path / "many.csv").write_text(IRIS + rows)
    assert predict.main(["--model", str(iris_model), "--csv", str(tmp_path / "many.csv"),
                         "--format", fmt]) == 0
    whole = capsys.readouterr().out
    monkeypatch.setattr(predict, "BLOCK_ROWS", 5)  # 23 rows: blocks of 5, 5, 5, 5 and 3
    assert predict.main(["--model", str(iris_model), "--csv", str(tmp_path / "many.csv"),
                         "--format", fmt]) == 0
    assert capsys.readouterr().out == whole
    if fmt == "json":
        model = Model.load(iris_model)
        table = read_csv(tmp_path / "many.csv")
        assert whole == json.dumps(predict.predict_rows(model, table), indent=2) + "\n"
        probabilities = model.predict(model.inputs(table))["species"]
        first = json.loads(whole)[0]["species"]["probabilities"]
        assert list(first.values()) == [float(str(p)) for p in probabilities[0]]  # float32's


def test_json_of_no_rows_is_an_empty_array(iris_model, capsys):
    model = Model.load(iris_model)
    stream = io.StringIO()
    predict.write(iter([]), model, "json", stream)
    assert stream.getvalue() == "[]\n"


def test_a_file_error_not_caught_where_the_file_was_opened_is_one_line(capsys, monkeypatch):
    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/some/model.npz")

    monkeypatch.setattr(predict.Model, "load", unreadable)
    assert predict.main(["--model", "/some/model.npz", "5.1,3.5,1.4"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["python -m tinymtl.predict: error: /some/model.npz: Permission denied"]


def test_the_table_shows_large_values_as_their_shortest_decimal():
    from tinymtl.predict import _table_number
    assert [_table_number(v) for v in (0.25, 9999.5, 9999.99996, 30474.16, -1234567.0, 1e20)] == \
        ["0.2500", "9999.5000", "9999.99996", "30474.16", "-1234567.0", "1e+20"]
