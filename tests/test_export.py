"""python -m tinymtl.export, and PyTorch reading what tinymtl writes and the other way round.

The PyTorch tests skip without torch or safetensors; the hand-built-file tests always run.
"""

import json

import numpy as np
import pytest

import tinymtl
from helpers import write_related_csv
from tinymtl import export, train
from tinymtl.checkpoint import read_safetensors, write_safetensors
from tinymtl.data import read_csv
from tinymtl.model import Model

SENTINEL = b"an existing file that must survive"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model path, CSV path): a command-line model with a text feature, two tasks."""
    folder = tmp_path_factory.mktemp("trained")
    csv = write_related_csv(folder / "data.csv", 200, ["a", "b", "c", "d", "kind", "size"], seed=0)
    text = (folder / "data.csv").read_text().splitlines()
    colours = ["colour"] + [["red", "green", "blue"][i % 3] for i in range(len(text) - 1)]
    (folder / "data.csv").write_text("\n".join(f"{line},{c}" for line, c in zip(text, colours)) + "\n")
    path = folder / "model.npz"
    assert train.main(["--csv", csv, "--classify", "kind", "--regress", "size", "--hidden", "8,6",
                       "--epochs", "5", "--quiet", "--out", str(path)]) == 0
    return path, csv


def test_export_writes_torch_names_and_layouts_and_the_model_metadata(trained, tmp_path, capsys):
    path, csv = trained
    out = tmp_path / "model.safetensors"
    assert export.main(["--model", str(path), "--format", "safetensors", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "trunk.0.weight (8, 7) float32" in stdout and "heads.size.bias (1,) float32" in stdout
    tensors, metadata = read_safetensors(out)
    assert list(tensors) == ["trunk.0.weight", "trunk.0.bias", "trunk.1.weight", "trunk.1.bias",
                             "heads.kind.weight", "heads.kind.bias", "heads.size.weight", "heads.size.bias"]
    model = Model.load(path)
    params = model.network.parameters()
    np.testing.assert_array_equal(tensors["trunk.1.weight"], params["trunk.1.W"].T)  # (out, in)
    np.testing.assert_array_equal(tensors["heads.kind.weight"], params["heads.kind.W"].T)
    meta = json.loads(metadata["tinymtl"])
    assert meta["kind"] == "tinymtl.model" and meta["features"] == model.features.to_meta()
    exported = Model.load(out)
    table = read_csv(csv)
    for name, values in model.predict(model.inputs(table)).items():
        assert np.array_equal(exported.predict(exported.inputs(table))[name], values)


def test_export_back_to_npz_is_byte_for_byte_the_same_parameters(trained, tmp_path):
    path, _ = trained
    assert export.main(["--model", str(path), str(tmp_path / "m.safetensors")]) == 0  # format by suffix
    assert export.main(["--model", str(tmp_path / "m.safetensors"), str(tmp_path / "back.npz")]) == 0
    before, after = Model.load(path), Model.load(tmp_path / "back.npz")
    for name, p in before.network.parameters().items():
        assert after.network.parameters()[name].tobytes() == p.tobytes()
    assert after.features.to_meta() == before.features.to_meta() and after.training == before.training


def test_export_of_a_bare_network_file(tmp_path):
    net = tinymtl.MultiTaskNet(3, (4,), {"y": tinymtl.Classify(2)}, seed=1)
    net.save(tmp_path / "net.npz")
    assert export.main(["--model", str(tmp_path / "net.npz"), str(tmp_path / "net.safetensors")]) == 0
    loaded = tinymtl.MultiTaskNet.load(tmp_path / "net.safetensors")
    np.testing.assert_array_equal(loaded.parameters()["trunk.0.W"], net.parameters()["trunk.0.W"])


def test_the_console_script_is_declared():
    from pathlib import Path
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '\ntinymtl-export = "tinymtl.export:main"\n' in text


BAD_EXPORTS = [
    # (arguments, exit code, words)
    (["--model", "MISSING", "OUT.safetensors"], 1, ["no such file"]),
    (["--model", "CSV", "OUT.safetensors"], 1, ["neither npz nor safetensors"]),
    (["--model", "TORCH", "OUT.npz"], 1, ["without tinymtl metadata", "MultiTaskNet.load"]),
    (["--model", "MODEL", "--format", "npz", "OUT.safetensors"], 2, ["--format npz", ".safetensors"]),
    (["--model", "MODEL", "OUT.bin"], 2, ["give --format"]),
    (["--model", "MODEL", "--format", "onnx", "OUT.bin"], 2, ["--format", "onnx"]),
    (["--model", "MODEL", "--format", "safetensors", "NODIR/x.safetensors"], 1, ["cannot write"]),
]


@pytest.mark.parametrize("argv, code, words", BAD_EXPORTS)
def test_bad_exports_are_one_line_and_touch_nothing(argv, code, words, trained, tmp_path, capsys):
    argv = list(argv)
    write_safetensors(tmp_path / "torch.safetensors", {"trunk.0.weight": np.ones((2, 3), np.float32)})
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    names = {"MISSING": tmp_path / "nope.npz", "CSV": tmp_path / "data.csv", "MODEL": trained[0],
             "TORCH": tmp_path / "torch.safetensors"}
    outs = []
    for i, arg in enumerate(argv):
        if arg in names:
            argv[i] = str(names[arg])
        elif arg.startswith(("OUT", "NODIR")):
            argv[i] = str(tmp_path / arg.replace("NODIR", "no/such/dir"))
            if arg.startswith("OUT"):
                (tmp_path / arg).write_bytes(SENTINEL)
                outs.append(tmp_path / arg)
    assert export.main(argv) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    for out in outs:
        assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["torch.safetensors", "data.csv",
                                                                  *(o.name for o in outs)])


def test_an_upper_case_suffix_names_the_format(trained, tmp_path):
    assert export.main(["--model", str(trained[0]), str(tmp_path / "M.SAFETENSORS")]) == 0
    assert (tmp_path / "M.SAFETENSORS").read_bytes()[8:9] == b"{"


def test_export_onto_its_own_model_file_is_refused(trained, tmp_path, capsys):
    model = tmp_path / "m.npz"
    model.write_bytes(trained[0].read_bytes())
    assert export.main(["--model", str(model), "--format", "npz", str(model)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "OUT" in err and "same file as --model" in err
    assert model.read_bytes() == trained[0].read_bytes()


# ------------------------------------------------------------------------------------------------
# PyTorch (must show 3): skipped without torch and safetensors


def test_an_exported_model_runs_in_torch_with_the_same_outputs(trained, tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path, csv = trained
    assert export.main(["--model", str(path), "--format", "safetensors", str(tmp_path / "m.safetensors")]) == 0
    state = safetensors_torch.load_file(str(tmp_path / "m.safetensors"))
    trunk = torch.nn.Sequential(torch.nn.Linear(7, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.ReLU())
    trunk.load_state_dict({"0.weight": state["trunk.0.weight"], "0.bias": state["trunk.0.bias"],
                           "2.weight": state["trunk.1.weight"], "2.bias": state["trunk.1.bias"]})
    kind, size = torch.nn.Linear(6, 2), torch.nn.Linear(6, 1)
    kind.load_state_dict({"weight": state["heads.kind.weight"], "bias": state["heads.kind.bias"]})
    size.load_state_dict({"weight": state["heads.size.weight"], "bias": state["heads.size.bias"]})
    model = Model.load(path)
    X = model.inputs(read_csv(csv))  # (200, 7) float32, as the trunk sees the CSV
    with torch.no_grad():
        features = trunk(torch.from_numpy(X))
        probabilities = torch.softmax(kind(features), dim=1).numpy()
        values = size(features).numpy()
    np.testing.assert_allclose(model.network.trunk_features(X), features.numpy(), rtol=0, atol=1e-5)
    out = model.network.predict(X)
    np.testing.assert_allclose(out["kind"], probabilities, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["size"], values, rtol=0, atol=1e-5)


def torch_trained_mlp(torch, X, y):
    """A 4 -> 10 -> 6 trunk with a 2-class head, trained by PyTorch for a few hundred steps."""
    torch.manual_seed(0)
    modules = torch.nn.ModuleDict({"trunk0": torch.nn.Linear(4, 10), "trunk1": torch.nn.Linear(10, 6),
                                   "head": torch.nn.Linear(6, 2)})

    def trunk(x):
        return torch.relu(modules["trunk1"](torch.relu(modules["trunk0"](x))))

    optimizer = torch.optim.SGD(modules.parameters(), lr=0.1, momentum=0.9)
    x, target = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(modules["head"](trunk(x)), target)
        loss.backward()
        optimizer.step()
    return modules, trunk


def test_a_torch_trained_mlp_loads_into_tinymtl_and_trains_on(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    csv = write_related_csv(tmp_path / "data.csv", 200, ["a", "b", "c", "d", "kind", "grade"], seed=9)
    table = read_csv(csv)
    X = np.stack([table.column(n).astype(np.float32) for n in "abcd"], axis=1)
    y = (table.column("kind") == "up").astype(np.int64)
    modules, trunk = torch_trained_mlp(torch, X, y)
    state = {"trunk.0.weight": modules["trunk0"].weight, "trunk.0.bias": modules["trunk0"].bias,
             "trunk.1.weight": modules["trunk1"].weight, "trunk.1.bias": modules["trunk1"].bias,
             "heads.kind.weight": modules["head"].weight, "heads.kind.bias": modules["head"].bias}
    safetensors_torch.save_file({k: v.detach().contiguous() for k, v in state.items()},
                                str(tmp_path / "torch.safetensors"))
    with torch.no_grad():
        features = trunk(torch.from_numpy(X))
        probabilities = torch.softmax(modules["head"](features), dim=1).numpy()
        features = features.numpy()
    # The Python API: the whole network, head kinds from the caller.
    net = tinymtl.MultiTaskNet.load(tmp_path / "torch.safetensors", heads={"kind": "classify"})
    np.testing.assert_allclose(net.trunk_features(X), features, rtol=0, atol=1e-5)
    np.testing.assert_allclose(net.predict(X)["kind"], probabilities, rtol=0, atol=1e-5)
    assert np.mean(net.predict(X)["kind"].argmax(axis=1) == y) >= 0.9  # it did learn in torch
    # The command line: the trunk, frozen, under a new head; inputs fed as they are.
    out = tmp_path / "new.npz"
    assert train.main(["--csv", csv, "--classify", "grade", "--features", "a,b,c,d", "--from",
                       str(tmp_path / "torch.safetensors"), "--freeze-trunk", "--epochs", "10",
                       "--quiet", "--out", str(out)]) == 0
    model = Model.load(out)
    np.testing.assert_allclose(model.network.trunk_features(model.inputs(table)), features, rtol=0, atol=1e-5)
