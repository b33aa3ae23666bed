import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from tinymtl import Classify, MultiTaskNet, Regress
from tinymtl.checkpoint import read_safetensors, save_npz, write_safetensors
from tinymtl.errors import CheckpointError


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
