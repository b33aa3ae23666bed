"""python -m tinymtl.train --from: transfer learning from the command line, called as main([...])."""

import json
import struct

import numpy as np
import pytest

from helpers import write_related_csv
from tinymtl import checkpoint, train
from tinymtl.data import read_csv
from tinymtl.model import Model

SOURCE_COLUMNS = ["a", "b", "c", "d", "kind", "size"]
TARGET_COLUMNS = ["d", "b", "grade", "a", "score", "c"]  # the features in another order
FAST = ["--epochs", "15", "--quiet"]
SENTINEL = b"an existing model that must survive"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A model trained on the source tasks (kind, size) of the related family: its path.

    Its learning rate is given, not the default: the tests below compare how far fine-tuning
    moves a trunk that has settled in 40 epochs."""
    folder = tmp_path_factory.mktemp("source")
    csv = write_related_csv(folder / "source.csv", 600, SOURCE_COLUMNS, seed=1)
    path = folder / "source.npz"
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", "--hidden", "16,16",
                       "--epochs", "40", "--lr", "0.01", "--quiet", "--out", str(path)]) == 0
    return path


@pytest.fixture
def target_csv(tmp_path):
    return write_related_csv(tmp_path / "target.csv", 200, TARGET_COLUMNS, seed=2)


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "out.npz"
    path.write_bytes(SENTINEL)
    return path


def trunk_of(path):
    arrays, _ = checkpoint.load_contents(path)
    return {name: a for name, a in arrays.items() if name.startswith("trunk.")}


def test_frozen_trunk_is_bit_identical_and_the_new_heads_learn(source, target_csv, out, capsys):
    # Must show 1
    argv = ["--csv", target_csv, "--classify", "grade", "--regress", "score", "--from", str(source),
            "--freeze-trunk", "--val-fraction", "0.25", "--lr", "0.05", *FAST, "--out", str(out)]
    assert train.main(argv) == 0
    before, after = trunk_of(source), trunk_of(out)
    assert before.keys() == after.keys() and len(before) == 4
    for name in before:
        assert after[name].dtype == before[name].dtype
        assert after[name].tobytes() == before[name].tobytes(), name
    model = Model.load(out)
    assert list(model.tasks) == ["grade", "score"] and model.training["transfer"]["trunk"] == "frozen"
    grade = model.metrics["grade"]
    chance = max(np.bincount(np.asarray(grade["confusion_matrix"]).sum(axis=1))) / grade["n_labelled"]
    assert grade["n_labelled"] == 50 and grade["accuracy"] >= 0.85 > chance + 0.2
    assert model.metrics["score"]["r2"] >= 0.3  # a mean predictor scores 0
    assert "validation metrics" in capsys.readouterr().out


def test_features_keep_the_source_encoding_and_new_targets_get_their_own_scaling(source, target_csv, out):
    assert train.main(["--csv", target_csv, "--regress", "score", "--features", "c,a,d,b",
                       "--from", str(source), "--freeze-trunk", *FAST, "--out", str(out)]) == 0
    model, original = Model.load(out), Model.load(source)
    assert model.features.to_meta() == original.features.to_meta()  # source order and statistics
    values = read_csv(target_csv).column("score").astype(float)
    assert abs(model.tasks["score"].mean - values.mean()) < 0.1 * values.std()
    assert model.tasks["score"].scale == pytest.approx(values.std(), rel=0.1)


def test_trunk_lr_moves_the_trunk_and_keep_heads_keeps_the_old_heads_working(source, target_csv, out):
    # Must show 2
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--from", str(source), "--trunk-lr", "0.005", "--keep-heads", "--lr", "0.05", *FAST,
                       "--out", str(out)]) == 0
    before, after = trunk_of(source), trunk_of(out)
    assert all(not np.array_equal(before[name], after[name]) for name in before)
    # The trunk's own rate: 10x below --lr, it moves far less than when it trains at --lr.
    full = out.parent / "full.npz"
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--from", str(source), "--lr", "0.05", *FAST, "--out", str(full)]) == 0
    step = {name: np.linalg.norm(after[name] - before[name]) for name in before}
    full_step = {name: np.linalg.norm(trunk_of(full)[name] - before[name]) for name in before}
    assert all(step[name] < 0.5 * full_step[name] for name in before), (step, full_step)
    model, original = Model.load(out), Model.load(source)
    assert list(model.tasks) == ["kind", "size", "grade", "score"]
    assert model.tasks["kind"] == original.tasks["kind"] and model.tasks["size"] == original.tasks["size"]
    assert model.metrics["grade"]["accuracy"] >= 0.8
    assert model.training["transfer"] == {"from": str(source), "trunk": "fine-tuned",
                                          "trunk_lr": 0.005, "kept_heads": ["kind", "size"]}
    # The kept heads still predict their tasks in their own classes and units.
    check = read_csv(write_related_csv(out.parent / "check.csv", 300, SOURCE_COLUMNS, seed=3))
    predictions, labels = model.predict(model.inputs(check)), model.labels(check, ["kind", "size"])
    assert np.mean(predictions["kind"].argmax(axis=1) == labels["kind"]) >= 0.8
    assert np.corrcoef(predictions["size"], labels["size"])[0, 1] >= 0.8


def test_kept_heads_predict_exactly_as_before_on_a_frozen_trunk(source, target_csv, out):
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--from", str(source), "--freeze-trunk", "--keep-heads", *FAST, "--out", str(out)]) == 0
    model, original = Model.load(out), Model.load(source)
    table = read_csv(target_csv)  # the features in another order: found by name
    new, old = model.predict(model.inputs(table)), original.predict(original.inputs(table))
    for name in ("kind", "size"):
        assert np.array_equal(new[name], old[name]), name
    for name in ("kind", "size"):
        for suffix in ("W", "b"):
            key = f"heads.{name}.{suffix}"
            assert np.array_equal(model.network.parameters()[key], original.network.parameters()[key])


def test_a_kept_head_that_is_a_new_target_trains_on_the_new_labels(source, tmp_path, out):
    csv = write_related_csv(tmp_path / "more.csv", 200, ["c", "kind", "a", "b", "d"], seed=4)
    assert train.main(["--csv", csv, "--classify", "kind", "--from", str(source), "--keep-heads",
                       "--freeze-trunk", *FAST, "--out", str(out)]) == 0
    model, original = Model.load(out), Model.load(source)
    assert list(model.tasks) == ["kind", "size"]
    params, old = model.network.parameters(), original.network.parameters()
    assert not np.array_equal(params["heads.kind.W"], old["heads.kind.W"])  # trained
    assert np.array_equal(params["heads.size.W"], old["heads.size.W"])      # no labels: frozen


def test_a_safetensors_export_works_as_the_source(source, target_csv, tmp_path, out):
    exported = tmp_path / "source.safetensors"
    Model.load(source).save_safetensors(exported)  # what python -m tinymtl.export writes
    assert train.main(["--csv", target_csv, "--classify", "grade", "--features", "a,b,c,d",
                       "--from", str(exported), "--freeze-trunk", "--keep-heads", *FAST,
                       "--out", str(out)]) == 0
    for name, array in trunk_of(source).items():
        assert np.array_equal(trunk_of(out)[name], array)
    assert list(Model.load(out).tasks) == ["kind", "size", "grade"]


def test_features_chooses_the_columns_when_the_csv_has_others(source, tmp_path, out):
    csv = write_related_csv(tmp_path / "extra.csv", 100, ["a", "size", "b", "c", "d", "grade"], seed=5)
    assert train.main(["--csv", csv, "--classify", "grade", "--features", "d,c,b,a",
                       "--from", str(source), *FAST, "--out", str(out)]) == 0
    model, original = Model.load(out), Model.load(source)
    # the chosen columns, in the source's order and with the source's statistics; not "size"
    assert model.features.names == ["a", "b", "c", "d"]
    assert model.features.to_meta() == original.features.to_meta()
    assert "size" not in model.training["features"] and list(model.tasks) == ["grade"]
    table = read_csv(csv)
    np.testing.assert_array_equal(model.inputs(table), original.inputs(table))


# ------------------------------------------------------------------------------------------------
# A trunk from a file without preprocessing metadata (PyTorch, or MultiTaskNet.save)


def torch_style_file(path, rng, n_inputs=4, dtype=np.float32):
    tensors = {"trunk.0.weight": rng.standard_normal((6, n_inputs)), "trunk.0.bias": rng.standard_normal(6),
               "trunk.1.weight": rng.standard_normal((5, 6)), "trunk.1.bias": rng.standard_normal(5),
               "heads.old.weight": rng.standard_normal((2, 5)), "heads.old.bias": rng.standard_normal(2)}
    tensors = {name: t.astype(dtype) for name, t in tensors.items()}
    checkpoint.write_safetensors(path, tensors)
    return tensors


def test_a_bare_trunk_takes_features_in_order_unstandardised(tmp_path, target_csv, out):
    bare = tmp_path / "mlp.safetensors"
    tensors = torch_style_file(bare, np.random.default_rng(0))
    assert train.main(["--csv", target_csv, "--classify", "grade", "--features", "a,b,c,d",
                       "--from", str(bare), "--freeze-trunk", *FAST, "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.network.hidden == (6, 5) and list(model.tasks) == ["grade"]
    assert [(f.name, f.mean, f.scale) for f in model.features.columns] == [
        ("a", 0.0, 1.0), ("b", 0.0, 1.0), ("c", 0.0, 1.0), ("d", 0.0, 1.0)]
    np.testing.assert_array_equal(model.network.parameters()["trunk.1.W"], tensors["trunk.1.weight"].T)
    table = read_csv(target_csv)
    x = np.stack([table.column(n).astype(np.float32) for n in "abcd"], axis=1)
    h = np.maximum(x @ tensors["trunk.0.weight"].T + tensors["trunk.0.bias"], 0)
    h = np.maximum(h @ tensors["trunk.1.weight"].T + tensors["trunk.1.bias"], 0)
    np.testing.assert_allclose(model.network.trunk_features(model.inputs(table)), h, rtol=1e-5, atol=1e-5)


def test_a_network_file_from_the_python_api_is_a_bare_trunk_too(tmp_path, target_csv, out):
    import tinymtl
    net = tinymtl.MultiTaskNet(4, (7,), {"y": tinymtl.Classify(3)}, seed=123)
    net.save(tmp_path / "net.npz")
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--features", "a,b,c,d", "--from", str(tmp_path / "net.npz"), *FAST,
                       "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.network.hidden == (7,) and list(model.tasks) == ["grade", "score"]
    assert [(f.name, f.mean, f.scale) for f in model.features.columns] == [
        ("a", 0.0, 1.0), ("b", 0.0, 1.0), ("c", 0.0, 1.0), ("d", 0.0, 1.0)]  # no statistics: as given
    # with the trunk frozen, the file's trunk itself is copied, bit for bit
    start = net.parameters()
    frozen = tmp_path / "frozen.npz"
    assert train.main(["--csv", target_csv, "--classify", "grade", "--features", "a,b,c,d",
                       "--from", str(tmp_path / "net.npz"), "--freeze-trunk", *FAST,
                       "--out", str(frozen)]) == 0
    for name, array in trunk_of(frozen).items():
        assert array.dtype == start[name].dtype and array.tobytes() == start[name].tobytes(), name


# ------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, a non-zero exit, the existing --out untouched (must show 5)


def raw_safetensors(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def exported_with(tmp_path, source, mutate):
    """The source model exported to safetensors, then its header and data changed by ``mutate``."""
    path = tmp_path / "exported.safetensors"
    Model.load(source).save_safetensors(path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    header, data = mutate(header, data)
    path.write_bytes(raw_safetensors(header, data))
    return path


def drop_tensor(header, data):
    """Remove heads.size.bias, the last tensor, and its bytes: a consistent file missing one tensor."""
    begin, end = header.pop("heads.size.bias")["data_offsets"]
    return header, data[:begin] + data[end:]


def wrong_shape(header, data):
    """trunk.1.weight claims (8, 32) instead of (16, 16): the same bytes, a wrong shape."""
    header["trunk.1.weight"]["shape"] = [8, 32]
    return header, data


BAD_SOURCES = [
    # (how to make the --from file, exit code, words the message must hold)
    ("missing", 1, ["no such file"]),
    ("directory", 1, ["is a directory"]),
    ("garbage", 1, ["not a readable", "neither npz nor safetensors"]),
    ("truncated npz", 1, ["not a readable"]),
    ("missing tensor", 1, ["missing", "heads.size.b"]),
    ("wrong shape", 1, ["trunk.1.W", "shape"]),
    ("unsupported dtype", 1, ["dtype I64"]),
    ("lying offsets", 1, ["offsets"]),
    ("lying header length", 1, ["header claims"]),
    ("header not json", 1, ["not valid JSON"]),
    ("bad metadata", 1, ["metadata"]),
    ("torch file without --features", 2, ["--features", "4 input columns"]),
    ("torch file with --keep-heads", 2, ["--keep-heads", "no task metadata"]),
    ("torch file, wrong --features count", 1, ["3 columns", "takes 4 inputs"]),
    ("torch file without trunk", 1, ["trunk.{i}.weight", "0.weight"]),
    ("torch file, broken trunk chain", 1, ["trunk.1.weight", "(5, 7)", "expected (n_out, 6)"]),
    ("torch file, missing bias", 1, ["missing", "trunk.1.b"]),
]


def make_source(kind, tmp_path, source):
    path = tmp_path / "from.model"
    extra = []
    if kind == "missing":
        return tmp_path / "nope.npz", extra
    if kind == "directory":
        return tmp_path, extra
    if kind == "garbage":
        path.write_text("a,b,c\n1,2,3\n")
    elif kind == "truncated npz":
        path.write_bytes(source.read_bytes()[:300])
    elif kind == "missing tensor":
        path = exported_with(tmp_path, source, drop_tensor)
    elif kind == "wrong shape":
        path = exported_with(tmp_path, source, wrong_shape)
    elif kind == "unsupported dtype":
        path = exported_with(tmp_path, source, lambda h, d: (
            {**h, "trunk.0.bias": {**h["trunk.0.bias"], "dtype": "I64",
                                   "shape": [h["trunk.0.bias"]["shape"][0] // 2]}}, d))
    elif kind == "lying offsets":
        path = exported_with(tmp_path, source, lambda h, d: (
            {**h, "trunk.0.bias": {**h["trunk.0.bias"], "data_offsets": [0, 64]}}, d))
    elif kind == "lying header length":
        path.write_bytes(struct.pack("<Q", 10**6) + b'{"trunk.0.weight": {}}')
    elif kind == "header not json":
        path.write_bytes(struct.pack("<Q", 8) + b"{not jso")
    elif kind == "bad metadata":
        path = exported_with(tmp_path, source, lambda h, d: (
            {**h, "__metadata__": {"tinymtl": "{broken"}}, d))
    elif kind.startswith("torch file"):
        tensors = torch_style_file(path, np.random.default_rng(0))
        extra = ["--features", "a,b,c,d"]
        if kind.endswith("without --features"):
            extra = []
        elif kind.endswith("--keep-heads"):
            extra.append("--keep-heads")
        elif kind.endswith("count"):
            extra = ["--features", "a,b,c"]
        elif kind.endswith("without trunk"):
            checkpoint.write_safetensors(path, {"0.weight": tensors["trunk.0.weight"],
                                                "0.bias": tensors["trunk.0.bias"]})
        elif kind.endswith("chain"):
            tensors["trunk.1.weight"] = np.zeros((5, 7), np.float32)
            checkpoint.write_safetensors(path, tensors)
        elif kind.endswith("bias"):
            del tensors["trunk.1.bias"]
            checkpoint.write_safetensors(path, tensors)
    return path, extra


@pytest.mark.parametrize("kind, code, words", BAD_SOURCES, ids=[k for k, _, _ in BAD_SOURCES])
def test_a_bad_source_is_one_line_and_keeps_the_old_model(kind, code, words, source, target_csv,
                                                          tmp_path, out, capsys):
    path, extra = make_source(kind, tmp_path, source)
    argv = ["--csv", target_csv, "--classify", "grade", "--from", str(path), *extra, *FAST,
            "--out", str(out)]
    assert train.main(argv) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert out.read_bytes() == SENTINEL


def test_feature_columns_that_do_not_match_are_listed(source, tmp_path, out, capsys):
    csv = write_related_csv(tmp_path / "other.csv", 50, ["a", "b", "score", "grade"], seed=6)
    text = (tmp_path / "other.csv").read_text().replace("score", "e", 1)  # a column the trunk never saw
    (tmp_path / "other.csv").write_text(text)
    assert train.main(["--csv", csv, "--classify", "grade", "--from", str(source), *FAST,
                       "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "missing [c, d]" in err and "unexpected [e]" in err and "--features" in err
    assert out.read_bytes() == SENTINEL


BAD_OPTIONS = [
    (["--freeze-trunk"], "--freeze-trunk needs --from"),
    (["--trunk-lr", "0.01"], "--trunk-lr needs --from"),
    (["--keep-heads"], "--keep-heads needs --from"),
    (["FROM", "--freeze-trunk", "--trunk-lr", "0.01"], "not allowed with"),
    (["FROM", "--trunk-lr", "0"], "--trunk-lr"),
    (["FROM", "--hidden", "8"], "--hidden 8: with --from"),
    (["FROM", "--hidden", "64,64"], "--hidden 64,64: with --from"),  # the default, given
    (["FROM", "--freeze-trunk", "--weighting", "pcgrad"], "would train as --weighting fixed"),
    (["FROM", "--categorical", "a"], "--categorical a"),
]


@pytest.mark.parametrize("extra, words", BAD_OPTIONS)
def test_bad_transfer_options_exit_2(extra, words, source, target_csv, out, capsys):
    extra = ["--from" if e == "FROM" else e for e in extra]
    if "--from" in extra:
        extra.insert(extra.index("--from") + 1, str(source))
    assert train.main(["--csv", target_csv, "--classify", "grade", *extra, *FAST,
                       "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err
    assert out.read_bytes() == SENTINEL


def test_a_kept_head_whose_classes_differ_is_an_error(source, tmp_path, out, capsys):
    csv = write_related_csv(tmp_path / "t.csv", 50, ["a", "b", "c", "d", "grade"], seed=7)
    text = (tmp_path / "t.csv").read_text().replace("grade", "kind", 1)  # kind: lo/hi, not up/down
    (tmp_path / "t.csv").write_text(text)
    assert train.main(["--csv", csv, "--classify", "kind", "--from", str(source), "--keep-heads",
                       *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "kept head kind" in err and "['hi', 'lo']" in err
    assert out.read_bytes() == SENTINEL


def test_help_lists_the_transfer_options(capsys):
    assert train.main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--from", "--freeze-trunk", "--trunk-lr", "--keep-heads"):
        assert option in help_text


def test_fine_tuning_in_place_replaces_the_source_only_after_training(source, target_csv, tmp_path):
    model = tmp_path / "model.npz"
    model.write_bytes(source.read_bytes())
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--from", str(model), *FAST, "--out", str(model)]) == 0
    tuned = Model.load(model)
    assert list(tuned.tasks) == ["grade", "score"]
    assert tuned.training["transfer"]["from"] == str(model)


def test_curves_onto_the_source_model_are_refused(source, target_csv, tmp_path, out, capsys):
    model = tmp_path / "model.npz"
    model.write_bytes(source.read_bytes())
    assert train.main(["--csv", target_csv, "--classify", "grade", "--regress", "score",
                       "--from", str(model), *FAST, "--history", str(model), "--out", str(out)]) == 2
    assert "is the same file as --from" in capsys.readouterr().err
    assert model.read_bytes() == source.read_bytes() and out.read_bytes() == SENTINEL


def test_from_a_model_the_csv_columns_it_was_trained_on_are_the_features(source, target_csv,
                                                                         out, capsys):
    """The target CSV has a column 'score' beside the source's features a..d: without
    --features it is left out, not refused as an unexpected feature."""
    assert train.main(["--csv", target_csv, "--classify", "grade", "--from", str(source), *FAST,
                       "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.features.names == Model.load(source).features.names
    assert "score" not in model.training["features"]


@pytest.mark.parametrize("source_method, asked, expected", [
    ("uncertainty", [], "fixed"),                        # the default, not the source's method
    ("uncertainty", ["--weighting", "dwa"], "dwa"),
    ("pcgrad", ["--freeze-trunk"], "fixed"),
])
def test_the_transfer_weighs_its_tasks_as_asked_not_as_the_source_did(tmp_path, target_csv, out,
                                                                      source_method, asked, expected):
    csv = write_related_csv(tmp_path / "source.csv", 120, SOURCE_COLUMNS, seed=1)
    source = tmp_path / "weighted.npz"
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", "--hidden", "8",
                       "--weighting", source_method, *FAST, "--out", str(source)]) == 0
    assert train.main(["--csv", target_csv, "--classify", "grade", "--from", str(source), *asked,
                       *FAST, "--out", str(out)]) == 0
    model = Model.load(out)
    assert model.network.weighting.method == expected == model.training["weighting"]


def test_kept_heads_are_weighed_as_this_run_asks_not_as_the_source_was(tmp_path, out):
    """A source trained with --loss-weight kind=0 and class weights: kept with --keep-heads, its
    head trains at weight 1 and without those class weights unless this run gives them."""
    csv = write_related_csv(tmp_path / "source.csv", 120, SOURCE_COLUMNS, seed=1)
    source = tmp_path / "weighted.npz"
    classes = read_csv(csv).column("kind")
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", "--hidden", "8",
                       "--loss-weight", "kind=0", "--class-weight", f"kind={classes[0]}:5",
                       *FAST, "--out", str(source)]) == 0
    assert Model.load(source).network.heads["kind"].class_weights is not None
    assert train.main(["--csv", csv, "--classify", "kind", "--from", str(source), "--keep-heads",
                       *FAST, "--out", str(out)]) == 0
    network = Model.load(out).network
    assert network.loss_weights == {"kind": 1.0, "size": 1.0}
    assert network.heads["kind"].class_weights is None
    assert train.main(["--csv", csv, "--classify", "kind", "--from", str(source), "--keep-heads",
                       "--loss-weight", "kind=0.5", *FAST, "--out", str(out)]) == 0
    assert Model.load(out).network.loss_weights == {"kind": 0.5, "size": 1.0}
