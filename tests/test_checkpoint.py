import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from tinymtl import Classify, MultiTaskNet, Regress
from tinymtl.checkpoint import read_safetensors, save_npz, write_safetensors
from tinymtl.errors import CheckpointError

from helpers import DELETE, with_field


def small_net(seed=0, dtype=np.float32, hidden=(4, 5)):
    return MultiTaskNet(3, hidden, {"y": Classify(3), "t": Regress(2)}, seed=seed, dtype=dtype)


def same_predictions(a, b, X):
    pa, pb = a.predict(X), b.predict(X)
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       hidden=st.lists(st.integers(1, 6), max_size=3), suffix=st.sampled_from([".npz", ".safetensors"]))
def test_save_then_load_is_bit_identical(tmp_path, seed, dtype, hidden, suffix):
    net = small_net(seed, dtype, tuple(hidden))
    path = tmp_path / f"net{suffix}"
    net.save(path)
    loaded = MultiTaskNet.load(path)
    assert loaded.dtype == dtype and loaded.hidden == net.hidden
    for name, p in net.parameters().items():
        assert loaded.parameters()[name].dtype == p.dtype
        np.testing.assert_array_equal(loaded.parameters()[name], p)
    X = np.random.default_rng(seed).standard_normal((4, 3)).astype(dtype)
    assert same_predictions(net, loaded, X)


def test_npz_loads_without_pickle(tmp_path):
    small_net().save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"]))
        assert meta["format"] == 1 and meta["network"]["hidden"] == [4, 5]
        assert npz["trunk.0.W"].shape == (3, 4)


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    small_net(seed=1).save(path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(CheckpointError, match="No space left"):
        small_net(seed=2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]  # no temporary file left


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "not a readable"),
    (b"PK\x03\x04 truncated zip", "not a readable"),
    (b"plain text, not a model", "not a readable"),
])
def test_unreadable_files_are_checkpoint_errors(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        MultiTaskNet.load(path)


def test_newer_format_and_foreign_npz_are_refused(tmp_path):
    save_npz(tmp_path / "new.npz", {}, {"format": 99, "network": {}})
    with pytest.raises(CheckpointError, match="newer tinymtl"):
        MultiTaskNet.load(tmp_path / "new.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="no __meta__"):
        MultiTaskNet.load(tmp_path / "foreign.npz")


def test_a_mismatched_parameter_names_the_key_and_both_shapes(tmp_path):
    net = small_net()
    arrays = {k: v for k, v in net.parameters().items()}
    arrays["trunk.1.W"] = np.zeros((4, 7), np.float32)
    from tinymtl.checkpoint import network_meta
    save_npz(tmp_path / "bad.npz", arrays, {"network": network_meta(net)})
    with pytest.raises(CheckpointError, match=r"trunk.1.W has shape \(4, 7\), the network expects \(4, 5\)"):
        MultiTaskNet.load(tmp_path / "bad.npz")


def torch_style_tensors(rng, dtype=np.float32):
    return {"trunk.0.weight": rng.standard_normal((6, 3)).astype(dtype),
            "trunk.0.bias": rng.standard_normal(6).astype(dtype),
            "heads.y.weight": rng.standard_normal((4, 6)).astype(dtype),
            "heads.y.bias": rng.standard_normal(4).astype(dtype),
            "heads.t.weight": rng.standard_normal((1, 6)).astype(dtype),
            "heads.t.bias": rng.standard_normal(1).astype(dtype)}


def test_a_hand_built_pytorch_style_file_loads_with_head_kinds_from_the_caller(tmp_path):
    rng = np.random.default_rng(0)
    tensors = torch_style_tensors(rng)
    write_safetensors(tmp_path / "mlp.safetensors", tensors)
    with pytest.raises(CheckpointError, match="give the head kinds"):
        MultiTaskNet.load(tmp_path / "mlp.safetensors")
    net = MultiTaskNet.load(tmp_path / "mlp.safetensors", heads={"y": "classify", "t": "regress"})
    assert net.hidden == (6,) and net.heads["y"] == Classify(4) and net.heads["t"] == Regress(1)
    X = rng.standard_normal((5, 3)).astype(np.float32)
    h = np.maximum(X @ tensors["trunk.0.weight"].T + tensors["trunk.0.bias"], 0)
    np.testing.assert_allclose(net.predict(X)["t"], h @ tensors["heads.t.weight"].T + tensors["heads.t.bias"],
                               rtol=1e-5, atol=1e-6)


def raw_safetensors(header, data):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("mutate, message", [
    (lambda h, d: (h, d[:-4]), "do not hold|bytes after"),
    (lambda h, d: ({**h, "heads.t.bias": {**h["heads.t.bias"], "dtype": "I8"}}, d), "dtype I8"),
    (lambda h, d: ({**h, "heads.t.bias": {**h["heads.t.bias"], "data_offsets": [0, 4]}}, d), "overlap"),
    (lambda h, d: ({k: v for k, v in h.items() if k != "heads.y.bias"}, d), "missing|gap|after"),
    (lambda h, d: ({**h, "trunk.0.bias": {**h["trunk.0.bias"], "shape": [5]}}, d), "do not hold"),
])
def test_corrupt_safetensors_files_are_one_line_errors(tmp_path, mutate, message):
    rng = np.random.default_rng(0)
    path = tmp_path / "ok.safetensors"
    write_safetensors(path, torch_style_tensors(rng))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(raw_safetensors(*mutate(header, data)))
    with pytest.raises(CheckpointError, match=message) as err:
        MultiTaskNet.load(bad, heads={"y": "classify", "t": "regress"})
    assert "\n" not in str(err.value)


def test_a_header_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(CheckpointError, match="header claims"):
        read_safetensors(path)


def test_wrong_shapes_in_a_pytorch_style_file_name_the_tensor(tmp_path):
    rng = np.random.default_rng(0)
    tensors = torch_style_tensors(rng)
    tensors["heads.y.weight"] = rng.standard_normal((4, 5)).astype(np.float32)  # trunk gives 6
    write_safetensors(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(CheckpointError, match="heads.y.W"):
        MultiTaskNet.load(tmp_path / "bad.safetensors", heads={"y": "classify", "t": "regress"})


def test_with_heads_keeps_the_trunk_and_chosen_heads_and_adds_new_ones():
    net = small_net(seed=3)
    new = net.with_heads({"z": Regress(1)}, keep=["y"], seed=9)
    assert list(new.heads) == ["y", "z"]
    for name in ("trunk.0.W", "trunk.1.b", "heads.y.W", "heads.y.b"):
        np.testing.assert_array_equal(new.parameters()[name], net.parameters()[name])
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(new.predict(X)["y"], net.predict(X)["y"])
    with pytest.raises(ValueError, match="unknown heads"):
        net.with_heads(keep=["nope"])


def test_with_heads_keeps_the_loss_weights_of_the_kept_heads():
    net = MultiTaskNet(3, (4,), {"y": Classify(3), "t": Regress(2), "u": Regress(1)}, seed=0,
                       dtype=np.float64, loss_weights={"y": 0.25, "t": 3.0, "u": 0.5})
    new = net.with_heads({"z": Regress(1)}, keep=["y", "u"], seed=1)
    assert new.loss_weights == {"y": 0.25, "u": 0.5, "z": 1.0}  # a new head weighs 1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    targets = {"y": rng.integers(0, 3, 6), "u": rng.standard_normal(6), "z": rng.standard_normal(6)}
    task = new.task_losses(X, targets)
    assert new.loss_and_gradients(X, targets)[0] == pytest.approx(
        0.25 * task["y"] + 0.5 * task["u"] + task["z"], rel=1e-12)


def test_frozen_trunk_is_bit_identical_after_fine_tuning_new_heads():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    new = small_net().with_heads({"z": Classify(2)}, seed=1)
    trunk = {k: v.copy() for k, v in new.parameters().items() if k.startswith("trunk")}
    head = new.parameters()["heads.z.W"].copy()
    new.fit(X, {"z": (X[:, 0] > 0).astype(int)}, epochs=5, lr=0.1, momentum=0.9,
            weight_decay=0.01, freeze=["trunk"])
    for k, v in trunk.items():
        assert np.array_equal(new.parameters()[k], v), k
    assert not np.array_equal(new.parameters()["heads.z.W"], head)
    moved = small_net().with_heads({"z": Classify(2)}, seed=1)
    moved.fit(X, {"z": (X[:, 0] > 0).astype(int)}, epochs=5, lr=0.1, trunk_lr=0.01)
    assert not np.array_equal(moved.parameters()["trunk.0.W"], trunk["trunk.0.W"])



def test_export_loads_into_torch_and_gives_the_same_trunk_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = MultiTaskNet(3, (8, 6), {"y": Classify(3), "t": Regress(1)}, seed=0)
    net.save(tmp_path / "net.safetensors")
    state = safetensors_torch.load_file(str(tmp_path / "net.safetensors"))
    trunk = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.ReLU())
    trunk.load_state_dict({"0.weight": state["trunk.0.weight"], "0.bias": state["trunk.0.bias"],
                           "2.weight": state["trunk.1.weight"], "2.bias": state["trunk.1.bias"]})
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    features = net.trunk_features(X)
    with torch.no_grad():
        expected = trunk(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_a_pytorch_trained_mlp_loads_into_tinymtl(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    modules = {"trunk.0": torch.nn.Linear(4, 7), "heads.y": torch.nn.Linear(7, 3), "heads.t": torch.nn.Linear(7, 2)}
    state = {f"{name}.{k}": v.detach().contiguous() for name, m in modules.items() for k, v in m.state_dict().items()}
    safetensors_torch.save_file(state, str(tmp_path / "torch.safetensors"))
    net = MultiTaskNet.load(tmp_path / "torch.safetensors", heads={"y": "classify", "t": "regress"})
    X = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    with torch.no_grad():
        h = torch.relu(modules["trunk.0"](torch.from_numpy(X)))
        probs = torch.softmax(modules["heads.y"](h), dim=1).numpy()
        values = modules["heads.t"](h).numpy()
    out = net.predict(X)
    np.testing.assert_allclose(out["y"], probs, atol=1e-5)
    np.testing.assert_allclose(out["t"], values, atol=1e-5)


def test_a_corrupt_description_is_refused_before_anything_is_allocated(tmp_path):
    from tinymtl.checkpoint import network_meta
    net = small_net()
    meta = network_meta(net)
    meta["n_inputs"] = 10**12  # would need terabytes if built
    save_npz(tmp_path / "huge.npz", dict(net.parameters()), {"network": meta})
    with pytest.raises(CheckpointError, match=r"trunk.0.W has shape \(3, 4\), the network expects"):
        MultiTaskNet.load(tmp_path / "huge.npz")


def test_a_parameter_of_another_dtype_is_refused(tmp_path):
    from tinymtl.checkpoint import network_meta
    net = small_net()  # float32
    arrays = dict(net.parameters())
    arrays["heads.y.b"] = arrays["heads.y.b"].astype(np.float16)
    save_npz(tmp_path / "f16.npz", arrays, {"network": network_meta(net)})
    with pytest.raises(CheckpointError, match="heads.y.b has dtype float16, the network's is float32"):
        MultiTaskNet.load(tmp_path / "f16.npz")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("name, value", [("trunk.0.W", np.nan), ("heads.t.b", np.inf),
                                         ("heads.y.W", -np.inf)])
def test_a_model_file_with_a_non_finite_parameter_is_refused(tmp_path, suffix, name, value):
    """A network that diverged, saved anyway (save does not check), or a corrupt file: loading
    it names the parameter, rather than handing out a network that predicts NaN."""
    net = small_net()
    net.parameters()[name][(0,) * net.parameters()[name].ndim] = value
    path = tmp_path / f"net{suffix}"
    net.save(path)
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(path)
    assert str(path) in str(err.value) and f"parameter {name} holds non-finite values" in str(err.value)


@pytest.mark.parametrize("heads", [{"y": Classify(3)}, {"y": Classify(3), "t": Regress(2)},
                                   {"a_longer_name": Regress(1)}, {"ab": Regress(1), "c": Classify(2)},
                                   {"t": Regress(1), "u": Regress(1), "v": Regress(1)}])
@pytest.mark.parametrize("hidden", [(), (4,), (4, 5)])
def test_safetensors_data_starts_8_byte_aligned(tmp_path, heads, hidden):
    """The safetensors layout pads the JSON header with spaces so that the tensor data (after
    the 8-byte length and the header) starts at a multiple of 8 bytes."""
    path = tmp_path / "net.safetensors"
    MultiTaskNet(3, hidden, heads, seed=0).save(path)
    raw = path.read_bytes()
    (n_header,) = struct.unpack("<Q", raw[:8])
    assert (8 + n_header) % 8 == 0, n_header
    assert raw[8:8 + n_header].decode().rstrip(" ").endswith("}")  # spaces are the padding
    write_safetensors(path, {"w": np.zeros(3, np.float32)}, {"k": "v" * len(heads)})
    (n_header,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert (8 + n_header) % 8 == 0, n_header


# Malformed metadata: every field a loader reads is checked before it is used, so a hand-edited
# or corrupt file is a one-line CheckpointError naming the file and the field, never a TypeError.


BAD_DESCRIPTIONS = [  # (field path in the description, bad value, words the message must hold)
    (("n_inputs",), DELETE, "network.n_inputs is missing"),
    (("n_inputs",), "3", 'network.n_inputs is "3", expected an integer >= 1'),
    (("n_inputs",), 3.0, "network.n_inputs is 3.0"),
    (("n_inputs",), True, "network.n_inputs is true"),
    (("n_inputs",), -3, "network.n_inputs is -3"),
    (("hidden",), None, "network.hidden is null, expected a list"),
    (("hidden",), "4,5", 'network.hidden is "4,5"'),
    (("hidden",), [4, -5], "network.hidden[1] is -5, expected an integer >= 1"),
    (("heads",), [], "network.heads is []"),
    (("heads",), {}, "network.heads is {}"),
    (("heads", "y"), None, "network.heads.y is null, expected an object"),
    (("heads", "y"), [3], "network.heads.y is [3]"),
    (("heads", "y", "kind"), "cluster", 'network.heads.y.kind is "cluster"'),
    (("heads", "y", "kind"), DELETE, "network.heads.y.kind is missing"),
    (("heads", "y", "n_outputs"), None, "network.heads.y.n_outputs is null"),
    (("heads", "y", "n_outputs"), 1, "network.heads.y.n_outputs is 1, expected an integer >= 2"),
    (("heads", "t", "n_outputs"), 0, "network.heads.t.n_outputs is 0, expected an integer >= 1"),
    (("heads", "y", "class_weights"), "x", 'network.heads.y.class_weights is "x"'),
    (("heads", "y", "class_weights"), [1, 2], "network.heads.y.class_weights is [1, 2], expected a list of 3"),
    (("heads", "y", "class_weights"), [1, -2, 1], "network.heads.y.class_weights is [1, -2, 1]"),
    (("heads", "t", "class_weights"), [1, 2], "network.heads.t.class_weights is [1, 2], but only classify"),
    (("heads", "y", "class_weights"), [0, 0, 0], "network.heads.y.class_weights is [0, 0, 0], expected "
                                                 "a list of 3 finite numbers >= 0, not all 0"),
    (("dtype",), None, 'network.dtype is null, expected "float32" or "float64"'),
    (("dtype",), "float16", 'network.dtype is "float16"'),
    (("dtype",), 32, "network.dtype is 32"),
    (("seed",), -1, "network.seed is -1, expected an integer >= 0 or null"),
    (("seed",), "0", 'network.seed is "0"'),
    (("loss_weights",), [], "network.loss_weights is []"),
    (("loss_weights",), {"z": 1.0}, "network.loss_weights.z names no head; the heads are y, t"),
    (("loss_weights",), {"y": "1"}, 'network.loss_weights.y is "1", expected a finite number >= 0'),
    (("loss_weights",), {"y": -1}, "network.loss_weights.y is -1"),
    (("loss_weights",), {"y": 0, "t": 0.0}, "network.loss_weights gives every task weight 0"),
    (("weighting",), [], "network.weighting is []"),
    (("weighting", "method"), "magic", 'network.weighting.method is "magic", expected one of fixed'),
    (("weighting", "method"), DELETE, "network.weighting.method is missing"),
    (("weighting", "options"), [], "network.weighting.options is []"),
    (("weighting", "options"), {"beta": 1}, "network.weighting.options.beta is not an option of fixed"),
    (("weighting", "weights"), [], "network.weighting.weights is []"),
    (("weighting", "weights"), {"y": 1.0}, "network.weighting.weights has no weight for t"),
    (("weighting", "weights", "y"), None, "network.weighting.weights.y is null"),
    (("weighting", "started"), "yes", 'network.weighting.started is "yes", expected true or false'),
]


@pytest.mark.parametrize("path, value, words", BAD_DESCRIPTIONS)
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_malformed_network_description_names_the_field(tmp_path, path, value, words, suffix):
    from tinymtl.checkpoint import network_meta, save_safetensors
    net = small_net()
    meta = {"network": with_field(network_meta(net), path, value)}
    bad = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        save_npz(bad, dict(net.parameters()), meta)
    else:
        save_safetensors(net, bad, meta)  # meta's "network" replaces the good description
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: invalid metadata: ") and words in message
    assert "\n" not in message


@pytest.mark.parametrize("method, options, words", [
    ("gradnorm", {"alpha": "1.5"}, 'network.weighting.options.alpha is "1.5", expected a finite number >= 0'),
    ("gradnorm", {"weight_lr": 0}, "network.weighting.options.weight_lr is 0, expected a finite number > 0"),
    ("gradnorm", {"temperature": 2}, "options.temperature is not an option of gradnorm (it takes alpha, weight_lr)"),
    ("dwa", {"temperature": None}, "network.weighting.options.temperature is null"),
    ("uncertainty", {"init": "random"}, 'network.weighting.options.init is "random"'),
])
def test_a_malformed_weighting_option_names_the_option(tmp_path, method, options, words):
    from tinymtl.checkpoint import network_meta
    net = MultiTaskNet(3, (4,), {"y": Classify(3), "t": Regress(1)}, seed=0, weighting=method)
    save_npz(tmp_path / "bad.npz", dict(net.parameters()),
             {"network": with_field(network_meta(net), ("weighting", "options"), options)})
    with pytest.raises(CheckpointError, match="invalid metadata") as err:
        MultiTaskNet.load(tmp_path / "bad.npz")
    assert words in str(err.value)


def test_the_checked_weighting_options_are_the_methods_own():
    from tinymtl.weighting import METHOD_CLASSES, METHODS
    assert set(METHOD_CLASSES) == set(METHODS)
    for method in METHODS:
        net = MultiTaskNet(3, (), {"y": Classify(2)}, seed=0, weighting=method)
        assert set(net.weighting.options()) == set(METHOD_CLASSES[method].OPTIONS), method


@pytest.mark.parametrize("meta, words", [
    ({"format": "1", "network": {}}, 'invalid metadata: format is "1", expected an integer >= 1'),
    ({"format": True, "network": {}}, "invalid metadata: format is true"),
    ({"format": 0, "network": {}}, "invalid metadata: format is 0"),
    ({"network": {}}, "not a tinymtl file (metadata has no format version)"),
    ([1, 2], "not a tinymtl file (metadata has no format version)"),
    ({"format": 1, "network": None}, "no network description"),
])
def test_a_malformed_npz_metadata_header_is_refused_in_one_line(tmp_path, meta, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **small_net().parameters(), __meta__=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(path)
    assert words in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("blob, words", [
    (np.array("{not json"), "__meta__ is not valid JSON"),
    (np.zeros(3), "__meta__ is a float64 array of shape (3,)"),
    (np.array(["{}", "{}"]), "expected one string of JSON"),
])
def test_a_meta_entry_that_is_not_one_json_string_is_named(tmp_path, blob, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **small_net().parameters(), __meta__=blob)
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def _rewrite_header(path, change):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    path.write_bytes(raw_safetensors(change(header), raw[8 + n:]))


def _with_tinymtl(header, text):
    return {**header, "__metadata__": {"tinymtl": text}}


@pytest.mark.parametrize("change, words", [
    (lambda h: {**h, "trunk.0.bias": [1]}, "tensor trunk.0.bias: header entry [1] is not an object"),
    (lambda h: {**h, "trunk.0.bias": {**h["trunk.0.bias"], "dtype": ["F32"]}},
     'tensor trunk.0.bias: dtype ["F32"] is not a string'),
    (lambda h: {**h, "trunk.0.bias": {**h["trunk.0.bias"], "shape": None}},
     "tensor trunk.0.bias: shape null is not a list of integers >= 0"),
    (lambda h: {**h, "trunk.0.bias": {**h["trunk.0.bias"], "shape": [-4]}},
     "tensor trunk.0.bias: shape [-4] is not a list"),
    (lambda h: {**h, "trunk.0.bias": {**h["trunk.0.bias"], "data_offsets": [0]}},
     "tensor trunk.0.bias: data_offsets [0] is not a list of two integers"),
    (lambda h: {**h, "trunk.0.bias": {k: v for k, v in h["trunk.0.bias"].items() if k != "shape"}},
     "tensor trunk.0.bias: header entry has no shape"),
    (lambda h: {**h, "__metadata__": ["tinymtl"]}, 'safetensors __metadata__ is ["tinymtl"]'),
    (lambda h: {**h, "__metadata__": {"tinymtl": 5}}, 'safetensors __metadata__ is {"tinymtl": 5}'),
    (lambda h: _with_tinymtl(h, "{"), "the tinymtl metadata is not valid JSON"),
    (lambda h: _with_tinymtl(h, "[1]"), "the tinymtl metadata is [1], not a JSON object"),
    (lambda h: _with_tinymtl(h, '{"format": 1}'), "invalid metadata: network is missing"),
    (lambda h: _with_tinymtl(h, '{"format": "1", "network": {}}'), 'invalid metadata: format is "1"'),
    (lambda h: _with_tinymtl(h, '{"format": 2, "network": {}}'), "written by a newer tinymtl (format 2)"),
])
def test_a_malformed_safetensors_header_names_the_entry(tmp_path, change, words):
    path = tmp_path / "bad.safetensors"
    small_net().save(path)
    _rewrite_header(path, change)
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("heads, words", [
    ({"y": "cluster", "t": "regress"}, 'heads["y"] is \'cluster\''),
    ({"y": Classify, "t": "regress"}, 'heads["y"] is <class'),
    ({"y": "classify", "t": "classify"}, "heads.t.weight has shape (1, 6); a classify head needs at least 2 rows"),
])
def test_wrong_head_kinds_for_a_pytorch_file_name_the_head(tmp_path, heads, words):
    write_safetensors(tmp_path / "mlp.safetensors", torch_style_tensors(np.random.default_rng(0)))
    with pytest.raises(CheckpointError) as err:
        MultiTaskNet.load(tmp_path / "mlp.safetensors", heads=heads)
    assert words in str(err.value) and "invalid metadata" not in str(err.value)
