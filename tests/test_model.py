import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymtl import CheckpointError, checkpoint
from tinymtl.data import ClassTarget, Features, RegressTarget, parse_csv, read_bundled
from tinymtl.model import Model

from helpers import DELETE, with_field


def table(text):
    return parse_csv(io.StringIO(text, newline=""), "t.csv")


def iris_model(epochs=5, seed=0):
    iris = read_bundled()
    features = Features.fit(iris, ["sepal_length", "sepal_width", "petal_length"])
    tasks = {"species": ClassTarget.fit(iris, "species"),
             "petal_width": RegressTarget.fit(iris, "petal_width")}
    model = Model.build(features, tasks, hidden=(8,), rng=np.random.default_rng(seed))
    X, labels = model.inputs(iris), model.labels(iris)
    model.network.fit(X, model.targets(labels), epochs=epochs, lr=0.05)
    return model, iris, X, labels


def test_a_model_reloaded_from_disk_predicts_bit_identically(tmp_path):
    model, iris, X, labels = iris_model()
    model.metrics = model.reloaded().evaluate(X, labels)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:  # no pickle needed
        assert "__meta__" in npz.files
    loaded = Model.load(tmp_path / "m.npz")
    for name, out in model.predict(model.inputs(iris)).items():
        assert np.array_equal(loaded.predict(loaded.inputs(iris))[name], out)
    assert loaded.metrics == model.metrics == loaded.evaluate(loaded.inputs(iris), labels)
    assert loaded.network.dtype == np.float32 and loaded.predict(X)["petal_width"].dtype == np.float32


def test_predictions_are_in_the_users_units():
    t = table("x,t\n" + "\n".join(f"{x},{1000 + 500 * x}" for x in range(-5, 6)) + "\n")
    features = Features.fit(t, ["x"])
    tasks = {"t": RegressTarget.fit(t, "t")}
    model = Model.build(features, tasks, hidden=(), rng=np.random.default_rng(0))
    X, labels = model.inputs(t), model.labels(t)
    model.network.fit(X, model.targets(labels), epochs=300, batch_size=11, lr=0.1, momentum=0.0,
                      weight_decay=0.0, lr_schedule="constant")  # plain SGD: the exact line
    np.testing.assert_allclose(model.predict(X)["t"], labels["t"], atol=1.0)  # thousands, not z-scores


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20))
def test_row_by_row_prediction_equals_batch_prediction(seed, n_rows):
    model, _, X, _ = iris_model(epochs=1, seed=seed)
    batch = model.predict(X[:n_rows])
    for i in range(n_rows):
        for name, out in model.predict(X[i:i + 1]).items():
            np.testing.assert_allclose(out[0], batch[name][i], rtol=1e-5, atol=1e-6)


def separable_with_holes(missing):
    """Class "pos" where x > 0; the regression target t = 2 x^2 is missing on some rows."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 400)
    lines = ["x,z,y,t"]
    for xi, zi in zip(x, rng.normal(size=400)):
        y = "pos" if xi > 0 else "neg"
        t = f"{2 * xi * xi:.4f}"
        if missing == "t" and xi > 0:
            t = ""         # every "pos" row lacks t: dropping such rows loses the class
        if missing == "y" and xi < -0.5:
            y = "NA"       # rows far left lack y: dropping them loses half of t's curve
        lines.append(f"{xi:.4f},{zi:.4f},{y},{t}")
    return table("\n".join(lines) + "\n")


def fit_both(t):
    features = Features.fit(t, ["x", "z"])
    tasks = {"y": ClassTarget.fit(t, "y"), "t": RegressTarget.fit(t, "t")}
    model = Model.build(features, tasks, hidden=(16, 16), rng=np.random.default_rng(0))
    X, labels = model.inputs(t), model.labels(t)
    model.network.fit(X, model.targets(labels), epochs=60, lr=0.02, momentum=0.9)
    return model, X


def test_rows_without_a_regression_label_still_train_the_classifier():
    t = separable_with_holes("t")
    model, X = fit_both(t)
    x = t.column("x").astype(float)
    truth = (x > 0).astype(int)  # classes sorted: neg, pos
    predicted = model.predict(X)["y"].argmax(axis=1)
    assert np.mean(predicted[x > 0] == truth[x > 0]) > 0.9  # learned only from rows lacking t


def test_rows_without_a_class_label_still_train_the_regression():
    t = separable_with_holes("y")
    model, X = fit_both(t)
    x = t.column("x").astype(float)
    far_left = x < -0.5  # these rows have no class label
    error = model.predict(X)["t"][far_left] - 2 * x[far_left] ** 2
    assert np.sqrt(np.mean(error ** 2)) < 0.2  # t ranges 0.5..2 there; a flat fit misses by ~0.4


def test_loading_rejects_files_that_are_not_command_line_models(tmp_path):
    model, *_ = iris_model(epochs=1)
    model.network.save(tmp_path / "bare.npz")
    with pytest.raises(CheckpointError, match="not a tinymtl command-line model"):
        Model.load(tmp_path / "bare.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="junk.npz"):
        Model.load(tmp_path / "junk.npz")


def test_a_model_saved_as_safetensors_loads_back_bit_identically(tmp_path):
    model, iris, X, labels = iris_model()
    model.metrics = model.reloaded().evaluate(X, labels)
    model.save_safetensors(tmp_path / "m.safetensors")
    loaded = Model.load(tmp_path / "m.safetensors")  # the content, not the name, decides
    assert loaded.features.to_meta() == model.features.to_meta() and loaded.metrics == model.metrics
    assert {k: t.to_meta() for k, t in loaded.tasks.items()} == {k: t.to_meta() for k, t in model.tasks.items()}
    for name, p in model.network.parameters().items():
        assert loaded.network.parameters()[name].tobytes() == p.tobytes(), name
    for name, out in model.predict(X).items():
        assert np.array_equal(loaded.predict(X)[name], out)


def test_loading_rejects_safetensors_without_model_metadata_and_text_files(tmp_path):
    from tinymtl.checkpoint import write_safetensors
    write_safetensors(tmp_path / "torch.safetensors", {"trunk.0.weight": np.zeros((2, 3), np.float32)})
    with pytest.raises(CheckpointError, match="without tinymtl metadata"):
        Model.load(tmp_path / "torch.safetensors")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CheckpointError, match=r"data.csv: not a readable tinymtl model file \(neither npz nor safetensors\)$"):
        Model.load(tmp_path / "data.csv")


# Malformed preprocessing metadata: a one-line CheckpointError naming the file and the field



@pytest.mark.parametrize("path, value, words", [
    (("features",), DELETE, "features is missing"),
    (("features",), None, "features is null, expected a non-empty list"),
    (("features",), {}, "features is {}"),
    (("features",), [], "features is []"),
    (("features", 0), None, 'features[0] is null, expected an object {"name", "kind", ...}'),
    (("features", 0), "sepal_length", 'features[0] is "sepal_length"'),
    (("features", 0, "name"), 5, "features[0].name is 5, expected a non-empty string"),
    (("features", 1, "name"), "sepal_length", 'features[1].name is "sepal_length" again'),
    (("features", 0, "kind"), "date", 'features[0].kind is "date", expected "numeric" or "categorical"'),
    (("features", 0, "mean"), None, "features[0].mean is null, expected a finite number"),
    (("features", 0, "mean"), "5.8", 'features[0].mean is "5.8"'),
    (("features", 0, "scale"), -1, "features[0].scale is -1, expected a finite number > 0"),
    (("features", 0, "scale"), 0, "features[0].scale is 0"),
    (("features", 0, "scale"), DELETE, "features[0].scale is missing"),
    (("features", 0), {"name": "sepal_length", "kind": "categorical", "categories": "ab"},
     'features[0].categories is "ab", expected a non-empty list'),
    (("features", 0), {"name": "sepal_length", "kind": "categorical", "categories": ["a", 1]},
     "features[0].categories[1] is 1, expected a string"),
    (("features", 0), {"name": "sepal_length", "kind": "categorical", "categories": ["a", "a"]},
     'features[0].categories[1] is "a" again'),
    (("tasks",), [], "tasks is [], expected an object of task name -> task"),
    (("tasks",), {}, "tasks is {}"),
    (("tasks", "species"), [], "tasks.species is [], expected an object"),
    (("tasks", "species", "kind"), None, "tasks.species.kind is null"),
    (("tasks", "species", "classes"), "abc", 'tasks.species.classes is "abc", expected a list of at least 2 items'),
    (("tasks", "species", "classes"), None, "tasks.species.classes is null"),
    (("tasks", "species", "classes"), ["setosa"], 'tasks.species.classes is ["setosa"]'),
    (("tasks", "species", "classes"), ["a", None, "c"], "tasks.species.classes[1] is null, expected a string"),
    (("tasks", "species", "classes"), ["a", "b", "a"], 'tasks.species.classes[2] is "a" again'),
    (("tasks", "petal_width", "mean"), None, "tasks.petal_width.mean is null, expected a finite number"),
    (("tasks", "petal_width", "mean"), "1.2", 'tasks.petal_width.mean is "1.2"'),
    (("tasks", "petal_width", "scale"), 0, "tasks.petal_width.scale is 0, expected a finite number > 0"),
    (("tasks", "petal_width", "scale"), DELETE, "tasks.petal_width.scale is missing"),
    (("training",), "x", 'training is "x", expected an object, or null'),
    (("metrics",), [], "metrics is [], expected an object, or null"),
    (("network",), None, "network is null, expected an object"),
    (("network",), DELETE, "network is missing"),
    (("network", "hidden"), [8, 0], "network.hidden[1] is 0"),
])
def test_malformed_model_metadata_names_the_field(tmp_path, path, value, words):
    model, *_ = iris_model(epochs=1)
    arrays, meta = model.to_file_contents()
    checkpoint.save_npz(tmp_path / "bad.npz", arrays, with_field(meta, path, value))
    with pytest.raises(CheckpointError) as err:
        Model.load(tmp_path / "bad.npz")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'bad.npz'}: invalid metadata: ") and words in message
    assert "\n" not in message


def test_valid_metadata_without_training_and_metrics_or_with_nulls_still_loads(tmp_path):
    model, iris, X, _ = iris_model(epochs=1)
    arrays, meta = model.to_file_contents()
    for changed in (with_field(with_field(meta, ("training",), DELETE), ("metrics",), DELETE),
                    with_field(with_field(meta, ("training",), None), ("metrics",), None),
                    with_field(meta, ("network", "seed"), None)):
        checkpoint.save_npz(tmp_path / "m.npz", arrays, changed)
        loaded = Model.load(tmp_path / "m.npz")
        assert all(np.array_equal(loaded.predict(X)[k], v) for k, v in model.predict(X).items())
