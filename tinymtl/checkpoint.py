"""Saving and loading networks: npz + JSON metadata (never pickle), and safetensors.

npz files hold one array per parameter (the names of ``MultiTaskNet.parameters()``) and a
``__meta__`` entry: JSON of plain Python values in a 0-d unicode array, which ``numpy.load``
reads with ``allow_pickle=False``. The metadata's ``"network"`` entry describes the architecture;
the command line's model files add their preprocessing beside it.

safetensors files follow the published layout (an 8-byte little-endian header length, a JSON
header of dtype, shape and byte offsets, then the raw little-endian bytes) and PyTorch's names and
layouts: ``trunk.{i}.weight`` (n_out, n_in), ``trunk.{i}.bias``, ``heads.{task}.weight``,
``heads.{task}.bias``. tinymtl stores W as (n_in, n_out), so weights are transposed on the way in
and out, in ``to_torch_layout`` and ``from_torch_layout`` only.

Every write goes to a temporary file in the same folder, then replaces the target in one rename:
a crash or an error leaves an existing file whole.
"""

import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .heads import Classify, Regress, head_from_kind

FORMAT_VERSION = 1
SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


# ------------------------------------------------------------------------------------------------
# Atomic writes


def write_atomically(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write: {err.strerror or err}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------------------------------------
# npz + JSON


def save_npz(path, arrays, meta):
    """Write ``arrays`` ({name: ndarray}) and ``meta`` (JSON-able dict) to ``path`` atomically."""
    if "__meta__" in arrays:
        raise ValueError('"__meta__" is reserved for the metadata')
    blob = np.array(json.dumps({"format": FORMAT_VERSION, **meta}))
    contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    write_atomically(path, lambda f: np.savez(f, **contiguous, __meta__=blob))


def load_npz(path):
    """Read an npz file written by ``save_npz``: returns ({name: ndarray}, meta)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):  # the signatures an npz (zip) starts with
                raise CheckpointError(f"{path}: not a readable tinymtl model file (neither npz nor "
                                      f"safetensors)")
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:  # we close f, always
                if "__meta__" not in npz.files:
                    raise CheckpointError(f"{path}: not a tinymtl file (no __meta__ entry)")
                meta = json.loads(str(npz["__meta__"]))
                arrays = {name: npz[name] for name in npz.files if name != "__meta__"}
    except CheckpointError:
        raise  # already says what is wrong (it is a ValueError too: not to be wrapped below)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a model file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path}: not a readable tinymtl model file ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("format"), int):
        raise CheckpointError(f"{path}: not a tinymtl file (metadata has no format version)")
    if meta["format"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer tinymtl (format {meta['format']}); "
                              f"this version reads format {FORMAT_VERSION} and older")
    return arrays, meta


# ------------------------------------------------------------------------------------------------
# Networks


def network_meta(net):
    """The JSON description from which ``network_from_arrays`` rebuilds ``net``."""
    heads = {}
    for name, head in net.heads.items():
        heads[name] = {"kind": head.kind, "n_outputs": head.n_outputs}
        if getattr(head, "class_weights", None) is not None:
            heads[name]["class_weights"] = list(head.class_weights)
    return {"n_inputs": net.n_inputs, "hidden": list(net.hidden), "heads": heads,
            "dtype": net.dtype.name, "seed": net.seed, "loss_weights": dict(net.loss_weights),
            "weighting": net.weighting.describe()}


def network_from_arrays(description, arrays, source):
    """Build a MultiTaskNet from its description and parameter arrays, checking every one."""
    from .network import MultiTaskNet

    _check_shapes_before_building(description, arrays, source)
    try:
        heads = {name: head_from_kind(h["kind"], h["n_outputs"], h.get("class_weights"))
                 for name, h in description["heads"].items()}
        weighting = description.get("weighting") or {"method": "fixed"}
        net = MultiTaskNet(description["n_inputs"], tuple(description["hidden"]), heads,
                           seed=description.get("seed") or 0, dtype=description.get("dtype", "float32"),
                           loss_weights=description.get("loss_weights"),
                           weighting=weighting["method"], weighting_options=weighting.get("options"))
        if "weights" in weighting:
            net.weighting.restore(weighting)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{source}: invalid network description ({err})") from None
    set_parameters(net, arrays, source)
    return net


def _check_shapes_before_building(description, arrays, source):
    """Compare the description's layer sizes with the stored arrays before allocating anything,
    so a corrupt description (say n_inputs = 10**12) is an error, not a huge allocation."""
    try:
        widths = [description["n_inputs"], *description["hidden"]]
        outputs = {name: h["n_outputs"] for name, h in description["heads"].items()}
    except (KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{source}: invalid network description (no {err})") from None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
               for n in (*widths, *outputs.values())):
        raise CheckpointError(f"{source}: invalid network description: layer sizes "
                              f"{widths} and head outputs {outputs} must be integers >= 1")
    expected = {}
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        expected[f"trunk.{i}.W"], expected[f"trunk.{i}.b"] = (n_in, n_out), (n_out,)
    for name, n_out in outputs.items():
        expected[f"heads.{name}.W"], expected[f"heads.{name}.b"] = (widths[-1], n_out), (n_out,)
    for name, shape in expected.items():
        if name not in arrays:
            raise CheckpointError(f"{source}: parameter {name} is missing")
        if tuple(arrays[name].shape) != shape:
            raise CheckpointError(f"{source}: parameter {name} has shape {tuple(arrays[name].shape)}, "
                                  f"the network expects {shape}")


def set_parameters(net, arrays, source, *, names=None):
    """Copy ``arrays`` into the network's parameters, after checking every name, shape and dtype.

    ``names`` limits the copy to those parameters (all of the network's by default); arrays
    beyond them are an error, so nothing in a file is silently ignored.
    """
    params = net.parameters()
    names = list(params) if names is None else list(names)
    missing = [n for n in names if n not in arrays]
    unexpected = [n for n in arrays if n not in names]
    if missing or unexpected:
        raise CheckpointError(f"{source}: parameters do not match the network: "
                              f"missing {missing}, unexpected {unexpected}")
    for name in names:
        array = arrays[name]
        if array.shape != params[name].shape:
            raise CheckpointError(f"{source}: parameter {name} has shape {array.shape}, "
                                  f"the network expects {params[name].shape}")
        if array.dtype != params[name].dtype:
            raise CheckpointError(f"{source}: parameter {name} has dtype {array.dtype}, "
                                  f"the network's is {params[name].dtype}")
        if not np.isfinite(array).all():
            raise CheckpointError(f"{source}: parameter {name} holds non-finite values")
    for name in names:
        params[name][...] = arrays[name]


def save_network(net, path, extra_meta=None):
    """Save the bare network (parameters + architecture) to an npz file, atomically."""
    save_npz(path, net.parameters(), {"kind": "tinymtl.network", "network": network_meta(net),
                                      **(extra_meta or {})})


def load_network(path, heads=None):
    """Load a network from an npz file (``save_network`` or a command-line model) or safetensors.

    For a safetensors file without tinymtl metadata, ``heads`` gives each head's kind:
    ``{"y": "classify", "t": "regress"}`` (sizes come from the tensors).
    """
    path = Path(path)
    if _is_safetensors(path):
        return network_from_safetensors(path, heads)
    arrays, meta = load_npz(path)
    if not isinstance(meta.get("network"), dict):
        raise CheckpointError(f"{path}: not a tinymtl network file (no network description)")
    return network_from_arrays(meta["network"], arrays, path)


# ------------------------------------------------------------------------------------------------
# safetensors, with PyTorch's names and layouts


def to_torch_layout(net):
    """{safetensors name: array} with torch.nn.Linear's (out, in) weights."""
    tensors = {}
    for name, array in net.parameters().items():
        group, key = name.rsplit(".", 1)
        if key == "W":
            tensors[f"{group}.weight"] = np.ascontiguousarray(array.T)  # (n_in, n_out) -> (out, in)
        elif key == "b":
            tensors[f"{group}.bias"] = np.ascontiguousarray(array)
        else:
            tensors[name] = np.ascontiguousarray(array)  # e.g. weighting.{task}.log_var
    return tensors


def from_torch_layout(tensors):
    """The inverse of ``to_torch_layout``: {tinymtl parameter name: array}."""
    arrays = {}
    for name, array in tensors.items():
        group, _, key = name.rpartition(".")
        if key == "weight" and array.ndim == 2:
            arrays[f"{group}.W"] = array.T
        elif key == "bias":
            arrays[f"{group}.b"] = array
        else:
            arrays[name] = array  # weighting parameters; anything else is reported as unexpected
    return arrays


def write_safetensors(path, tensors, metadata=None):
    """Write {name: float32/float64 array} and {str: str} metadata in the safetensors layout."""
    header, offset, chunks = {}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        code = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64"}.get(array.dtype)
        if code is None:
            raise ValueError(f"tensor {name}: dtype {array.dtype} is not supported (float32, float64)")
        data = array.tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in chunks:
            f.write(data)

    write_atomically(path, write)


def read_safetensors(path):
    """Read a safetensors file: returns ({name: ndarray}, metadata dict of str -> str)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) < 8:
        raise CheckpointError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    (n_header,) = struct.unpack("<Q", raw[:8])
    if n_header > len(raw) - 8:
        raise CheckpointError(f"{path}: safetensors header claims {n_header} bytes, "
                              f"the file has {len(raw) - 8} after the length")
    try:
        header = json.loads(raw[8:8 + n_header])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n_header:]
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name}: malformed header entry {info!r}") from None
        if code not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{path}: tensor {name} has dtype {code}; supported: F32, F64")
        dtype = SAFETENSORS_DTYPES[code]
        if not all(isinstance(v, int) and v >= 0 for v in (*shape, begin, end)):
            raise CheckpointError(f"{path}: tensor {name}: shape and offsets must be integers >= 0")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected or end > len(data) or begin > end:
            raise CheckpointError(f"{path}: tensor {name}: offsets [{begin}, {end}] do not hold "
                                  f"{shape} {code} ({expected} bytes) within {len(data)} data bytes")
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise CheckpointError(f"{path}: tensor {name}: offsets overlap or leave a gap at byte {position}")
        position = end
    if position != len(data):
        raise CheckpointError(f"{path}: {len(data) - position} bytes after the last tensor")
    return tensors, metadata


def _is_safetensors(path):
    """A safetensors file starts with a header length followed by '{'; an npz with 'PK'."""
    try:
        with open(path, "rb") as f:
            start = f.read(9)
    except OSError:
        return False
    return len(start) == 9 and start[8:9] == b"{"


def save_safetensors(net, path, extra_meta=None):
    """Export the network with PyTorch's names and layouts; tinymtl's metadata in __metadata__."""
    meta = {"format": FORMAT_VERSION, "kind": "tinymtl.network", "network": network_meta(net),
            **(extra_meta or {})}
    write_safetensors(path, to_torch_layout(net), {"tinymtl": json.dumps(meta)})


def _tinymtl_meta(metadata, path):
    """The tinymtl metadata dict of a safetensors file, or None if it has none (a PyTorch file)."""
    if "tinymtl" not in metadata:
        return None
    try:
        meta = json.loads(metadata["tinymtl"])
        meta["network"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"{path}: the tinymtl metadata is not readable") from None
    if not isinstance(meta.get("format", FORMAT_VERSION), int):
        raise CheckpointError(f"{path}: the tinymtl metadata has no valid format version")
    if meta.get("format", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer tinymtl (format {meta['format']})")
    return meta


def network_from_safetensors(path, heads=None):
    """Build a network from a safetensors file (tinymtl's own, or a PyTorch MLP's)."""
    tensors, metadata = read_safetensors(path)
    meta = _tinymtl_meta(metadata, path)
    if meta is not None:
        return network_from_arrays(meta["network"], from_torch_layout(tensors), path)
    return network_from_arrays(_describe_torch_tensors(tensors, heads, path),
                               from_torch_layout(tensors), path)


def load_contents(path):
    """(arrays named as ``parameters()``, metadata dict or None) of an npz or safetensors file.

    The metadata is None only for a safetensors file without tinymtl metadata (a PyTorch file);
    its arrays are then named after its tensors (``trunk.0.weight`` -> ``trunk.0.W``, transposed).
    Nothing is checked against a network here: ``network_from_arrays`` does that.
    """
    path = Path(path)
    if _is_safetensors(path):
        tensors, metadata = read_safetensors(path)
        return from_torch_layout(tensors), _tinymtl_meta(metadata, path)
    return load_npz(path)


def _describe_torch_tensors(tensors, heads, path):
    """Infer the architecture of a plain PyTorch MLP from its tensor names and shapes."""
    depth = 0
    while f"trunk.{depth}.weight" in tensors:
        depth += 1
    widths = []
    for i in range(depth):
        shape = tensors[f"trunk.{i}.weight"].shape
        if len(shape) != 2 or (widths and shape[1] != widths[-1]):
            raise CheckpointError(f"{path}: tensor trunk.{i}.weight has shape {shape}, expected "
                                  f"(n_out, {widths[-1] if widths else 'n_in'})")
        if not widths:
            widths.append(shape[1])
        widths.append(shape[0])
    file_heads = sorted({name.split(".")[1] for name in tensors
                         if name.startswith("heads.") and name.count(".") >= 2})
    if not heads:
        raise CheckpointError(f"{path}: no tinymtl metadata; give the head kinds, e.g. "
                              f"heads={{{', '.join(repr(h) + ': ' + repr('classify') for h in file_heads)}}}")
    description_heads = {}
    for name, kind in heads.items():
        weight = tensors.get(f"heads.{name}.weight")
        if weight is None or weight.ndim != 2:
            raise CheckpointError(f"{path}: missing tensor heads.{name}.weight "
                                  f"(heads in the file: {file_heads})")
        if isinstance(kind, (Classify, Regress)):
            kind = kind.kind
        description_heads[name] = {"kind": kind, "n_outputs": int(weight.shape[0])}
        if not widths:
            widths.append(int(weight.shape[1]))
    dtypes = {t.dtype.name for t in tensors.values()}
    return {"n_inputs": int(widths[0]), "hidden": [int(w) for w in widths[1:]],
            "heads": description_heads, "dtype": "float64" if dtypes == {"float64"} else "float32",
            "seed": 0}
