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

Loading checks every metadata field before using it (present if required, of its JSON type, in
its range): a malformed file is one CheckpointError naming the file and the field, such as
``model.npz: invalid metadata: network.hidden[1] is -3, expected an integer >= 1``.
"""

import json
import math
import os
import stat
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .heads import Classify, Regress, head_from_kind
from .weighting import METHOD_CLASSES, METHODS

FORMAT_VERSION = 1
SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


# ------------------------------------------------------------------------------------------------
# Atomic writes


def replaceable_target(path):
    """The file a write to ``path`` replaces: ``path`` with its symbolic links followed (the link
    stays, its target gets the new content). CheckpointError if that is not a regular file
    (a folder, a device such as /dev/null, a pipe) or is read-only (no write permission for
    anyone: the owner meant to protect it)."""
    target = Path(os.path.realpath(path))
    try:
        status = target.stat()
    except FileNotFoundError:
        return target
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write: {err.strerror or err}") from None
    if stat.S_ISDIR(status.st_mode):
        raise CheckpointError(f"{path}: cannot write: it is a folder; give a file name")
    if not stat.S_ISREG(status.st_mode):
        raise CheckpointError(f"{path}: cannot write: it is not a regular file (a device, pipe or "
                              f"socket), which a model or curves file would replace")
    if not status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise CheckpointError(f"{path}: cannot write: the file is read-only; make it writable or "
                              f"choose another file")
    return target


def write_atomically(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path``.

    The target is ``replaceable_target(path)``: through a symbolic link, the file it points to.
    """
    path = replaceable_target(path)
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
                blob = npz["__meta__"]
                arrays = {name: npz[name] for name in npz.files if name != "__meta__"}
    except CheckpointError:
        raise  # already says what is wrong (it is a ValueError too: not to be wrapped below)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a model file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path}: not a readable tinymtl model file ({err})") from None
    not_npy = [name for name, a in {"__meta__": blob, **arrays}.items()
               if not isinstance(a, np.ndarray)]
    if not_npy:  # numpy.load hands out such a zip member's raw bytes
        raise CheckpointError(f"{path}: entry {not_npy[0]} is not a NumPy array (.npy)")
    if blob.ndim != 0 or blob.dtype.kind != "U":
        raise CheckpointError(f"{path}: __meta__ is a {blob.dtype} array of shape {blob.shape}, "
                              f"expected one string of JSON (a 0-d unicode array)")
    try:
        meta = json.loads(str(blob))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: __meta__ is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or "format" not in meta:
        raise CheckpointError(f"{path}: not a tinymtl file (metadata has no format version)")
    check_format(meta, path)
    return arrays, meta


# ------------------------------------------------------------------------------------------------
# Reading metadata: every field a loader uses is checked (required or not, type, range) before
# it is used. A malformed file is then a CheckpointError naming the file and the field, and a
# TypeError or KeyError while loading is a bug of ours, not hidden behind a "corrupt file".

REQUIRED = object()  # the ``default`` of a field that must be present


def shown(value):
    """A metadata value as its JSON file spells it (null, "16", [1, 2]), cut to 60 characters."""
    text = json.dumps(value, default=repr)  # repr: for a caller's value that JSON cannot hold
    return text if len(text) <= 60 else text[:56] + " ..."


def invalid_meta(source, field, problem):
    """CheckpointError('model.npz: invalid metadata: network.hidden[1] is -3, expected ...')."""
    return CheckpointError(f"{source}: invalid metadata: {field} {problem}")


def is_int(value, minimum):
    """An integer >= ``minimum``: not a bool (JSON true), not 3.0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_finite_number(value):
    """A number that is a finite float64: not a bool, NaN, Infinity or an integer beyond 1.8e308."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= sys.float_info.max  # False for NaN and the infinities


def meta_field(entry, key, source, path, expected, ok, default=REQUIRED):
    """``entry[key]`` if ``ok`` accepts it; ``default`` if the key is absent and not REQUIRED.

    ``entry`` is a dict; ``path`` names it in messages ("network.heads.y", "" at the top), and
    ``expected`` says what the field must hold ("an integer >= 1").
    """
    field = f"{path}.{key}" if path else key
    if key not in entry:
        if default is REQUIRED:
            raise invalid_meta(source, field, f"is missing; expected {expected}")
        return default
    value = entry[key]
    if not ok(value):
        raise invalid_meta(source, field, f"is {shown(value)}, expected {expected}")
    return value


def meta_list(entry, key, source, path, item, ok_item, *, min_length=0, distinct=False):
    """The list ``entry[key]``, each item accepted by ``ok_item`` (``item`` says what one is);
    a bad item is named by its index: "network.hidden[1] is -3, expected an integer >= 1".
    ``distinct`` (for items that ``ok_item`` allows only as strings or numbers) refuses repeats."""
    field = f"{path}.{key}" if path else key
    kind = {0: "a list", 1: "a non-empty list"}.get(min_length,
                                                    f"a list of at least {min_length} items")
    values = meta_field(entry, key, source, path, f"{kind}, each item {item}",
                        lambda v: isinstance(v, list) and len(v) >= min_length)
    seen = set()
    for i, value in enumerate(values):
        if not ok_item(value):
            raise invalid_meta(source, f"{field}[{i}]", f"is {shown(value)}, expected {item}")
        if distinct:
            if value in seen:
                raise invalid_meta(source, f"{field}[{i}]",
                                   f"is {shown(value)} again; the items must differ")
            seen.add(value)
    return values


def check_format(meta, source, default=REQUIRED):
    """The metadata's format version, an integer from 1 to FORMAT_VERSION."""
    version = meta_field(meta, "format", source, "", "an integer >= 1", lambda v: is_int(v, 1),
                         default)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source}: written by a newer tinymtl (format {version}); "
                              f"this version reads format {FORMAT_VERSION} and older")
    return version


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


def read_description(description, source):
    """The network a description (``network_meta``) asks for, every field checked.

    Returns {"n_inputs", "hidden" (tuple), "heads" ({name: Classify | Regress}), "dtype", "seed",
    "loss_weights", "weighting" (the stored dict, or None)}; CheckpointError naming the field.
    """
    if not isinstance(description, dict):
        raise invalid_meta(source, "network", f"is {shown(description)}, expected an object")
    path = "network"
    n_inputs = meta_field(description, "n_inputs", source, path, "an integer >= 1",
                          lambda v: is_int(v, 1))
    hidden = meta_list(description, "hidden", source, path, "an integer >= 1",
                       lambda v: is_int(v, 1))
    heads_meta = meta_field(description, "heads", source, path,
                            'an object of task name -> {"kind", "n_outputs"}, not empty',
                            lambda v: isinstance(v, dict) and len(v) > 0)
    heads = {name: _read_head(name, h, source) for name, h in heads_meta.items()}
    dtype = meta_field(description, "dtype", source, path, '"float32" or "float64"',
                       lambda v: v in ("float32", "float64"), default="float32")
    seed = meta_field(description, "seed", source, path, "an integer >= 0 or null",
                      lambda v: v is None or is_int(v, 0), default=None)
    loss_weights = meta_field(description, "loss_weights", source, path,
                              "an object of task name -> weight, or null",
                              lambda v: v is None or isinstance(v, dict), default=None)
    _check_task_weights(loss_weights or {}, heads, source, f"{path}.loss_weights")
    if loss_weights and all(loss_weights.get(name, 1) == 0 for name in heads):
        raise invalid_meta(source, f"{path}.loss_weights", "gives every task weight 0")
    weighting = meta_field(description, "weighting", source, path,
                           'an object {"method", "options", "weights"}, or null',
                           lambda v: v is None or isinstance(v, dict), default=None)
    if weighting is not None:
        _check_weighting(weighting, heads, source)
    return {"n_inputs": n_inputs, "hidden": tuple(hidden), "heads": heads, "dtype": dtype,
            "seed": seed, "loss_weights": loss_weights, "weighting": weighting}


def _read_head(name, h, source):
    path = f"network.heads.{name}"
    if not name:
        raise invalid_meta(source, "network.heads", "has a head with an empty name")
    if not isinstance(h, dict):
        raise invalid_meta(source, path, f'is {shown(h)}, expected an object {{"kind", "n_outputs"}}')
    kind = meta_field(h, "kind", source, path, '"classify" or "regress"',
                      lambda v: v in ("classify", "regress"))
    least = 2 if kind == "classify" else 1
    n_outputs = meta_field(h, "n_outputs", source, path, f"an integer >= {least}",
                           lambda v: is_int(v, least))
    class_weights = None
    if kind == "classify":
        class_weights = meta_field(
            h, "class_weights", source, path,
            f"a list of {n_outputs} finite numbers >= 0, not all 0, or null",
            lambda v: v is None or (isinstance(v, list) and len(v) == n_outputs
                                    and all(is_finite_number(w) and w >= 0 for w in v)
                                    and any(w > 0 for w in v)),
            default=None)
    elif h.get("class_weights") is not None:
        raise invalid_meta(source, f"{path}.class_weights",
                           f"is {shown(h['class_weights'])}, but only classify heads have class weights")
    return head_from_kind(kind, n_outputs, class_weights)


def _check_task_weights(weights, heads, source, field, *, every=False):
    """{task: finite number >= 0}, naming heads only (and all of them if ``every``)."""
    for name, weight in weights.items():
        if name not in heads:
            raise invalid_meta(source, f"{field}.{name}",
                               f"names no head; the heads are {', '.join(heads)}")
        if not is_finite_number(weight) or weight < 0:
            raise invalid_meta(source, f"{field}.{name}",
                               f"is {shown(weight)}, expected a finite number >= 0")
    missing = [name for name in heads if name not in weights]
    if every and missing:
        raise invalid_meta(source, field, f"has no weight for {', '.join(missing)}")


def _check_weighting(weighting, heads, source):
    """The stored ``Weighting.describe()``: a known method, its own options, a weight per task."""
    path = "network.weighting"
    method = meta_field(weighting, "method", source, path, f"one of {', '.join(METHODS)}",
                        lambda v: v in METHODS)
    options = meta_field(weighting, "options", source, path, "an object, or null",
                         lambda v: v is None or isinstance(v, dict), default=None)
    takes = METHOD_CLASSES[method].OPTIONS  # (what is expected, check) per option
    for key in options or {}:
        if key not in takes:
            raise invalid_meta(source, f"{path}.options.{key}",
                               f"is not an option of {method} (it takes {', '.join(takes) or 'none'})")
        meta_field(options, key, source, f"{path}.options", *takes[key])
    if "weights" in weighting:
        weights = meta_field(weighting, "weights", source, path, "an object of task name -> weight",
                             lambda v: isinstance(v, dict))
        _check_task_weights(weights, heads, source, f"{path}.weights", every=True)
    meta_field(weighting, "started", source, path, "true or false", lambda v: isinstance(v, bool),
               default=True)


def network_from_arrays(description, arrays, source):
    """Build a MultiTaskNet from its description and parameter arrays, checking every one."""
    from .network import MultiTaskNet

    spec = read_description(description, source)
    _check_shapes_before_building(spec, arrays, source)
    weighting = spec["weighting"] or {"method": "fixed"}
    net = MultiTaskNet(spec["n_inputs"], spec["hidden"], spec["heads"], seed=spec["seed"] or 0,
                       dtype=spec["dtype"], loss_weights=spec["loss_weights"],
                       weighting=weighting["method"], weighting_options=weighting.get("options"))
    if "weights" in weighting:
        net.weighting.restore(weighting)
    set_parameters(net, arrays, source)
    return net


def _check_shapes_before_building(spec, arrays, source):
    """Compare the layer sizes of ``read_description``'s ``spec`` with the stored arrays before
    allocating anything, so a corrupt description (say n_inputs = 10**12) is an error, not a huge
    allocation."""
    widths = [spec["n_inputs"], *spec["hidden"]]
    outputs = {name: head.n_outputs for name, head in spec["heads"].items()}
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
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: safetensors __metadata__ is {shown(metadata)}, expected "
                              f"an object of strings")
    data = memoryview(raw)[8 + n_header:]
    tensors, spans = {}, []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise CheckpointError(f"{path}: tensor {name}: header entry {shown(info)} is not an "
                                  f"object with dtype, shape and data_offsets")
        missing = [key for key in ("dtype", "shape", "data_offsets") if key not in info]
        if missing:
            raise CheckpointError(f"{path}: tensor {name}: header entry has no {missing[0]}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str):
            raise CheckpointError(f"{path}: tensor {name}: dtype {shown(code)} is not a string "
                                  f'such as "F32"')
        if code not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{path}: tensor {name} has dtype {code}; supported: F32, F64")
        dtype = SAFETENSORS_DTYPES[code]
        if not isinstance(shape, list) or not all(is_int(n, 0) for n in shape):
            raise CheckpointError(f"{path}: tensor {name}: shape {shown(shape)} is not a list of "
                                  f"integers >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_int(n, 0) for n in offsets)):
            raise CheckpointError(f"{path}: tensor {name}: data_offsets {shown(offsets)} is not "
                                  f"a list of two integers >= 0")
        shape, (begin, end) = tuple(shape), offsets
        expected = math.prod(shape) * dtype.itemsize  # a Python int: cannot overflow
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
        meta = json.loads(metadata["tinymtl"])  # a str: read_safetensors checked
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the tinymtl metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the tinymtl metadata is {shown(meta)}, not a JSON object")
    check_format(meta, path, default=FORMAT_VERSION)
    meta_field(meta, "network", path, "", "an object", lambda v: isinstance(v, dict))
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
        if len(shape) != 2 or (widths and shape[1] != widths[-1]) or 0 in shape:
            raise CheckpointError(f"{path}: tensor trunk.{i}.weight has shape {shape}, expected "
                                  f"(n_out, {widths[-1] if widths else 'n_in'}), neither 0")
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
        if kind not in ("classify", "regress"):
            raise CheckpointError(f'{path}: heads["{name}"] is {kind!r}; expected "classify", '
                                  f'"regress", Classify(k) or Regress(k)')
        least = 2 if kind == "classify" else 1
        if weight.shape[0] < least or weight.shape[1] < 1:
            raise CheckpointError(f"{path}: tensor heads.{name}.weight has shape {weight.shape}; "
                                  f"a {kind} head needs at least {least} rows and 1 column")
        description_heads[name] = {"kind": kind, "n_outputs": int(weight.shape[0])}
        if not widths:
            widths.append(int(weight.shape[1]))
    dtypes = {t.dtype.name for t in tensors.values()}
    return {"n_inputs": int(widths[0]), "hidden": [int(w) for w in widths[1:]],
            "heads": description_heads, "dtype": "float64" if dtypes == {"float64"} else "float32",
            "seed": 0}
