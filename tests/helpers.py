"""Shared test fixtures: random networks and batches with random (non-zero) biases."""

import json

import numpy as np

import tinymtl


def random_net(rng, n_inputs, hidden, heads, dtype=np.float64):
    net = tinymtl.MultiTaskNet(n_inputs, hidden, heads, rng=rng, dtype=dtype)
    for name, p in net.parameters().items():
        if name.endswith(".b"):  # zero biases would put ReLU inputs on the kink
            p[...] = rng.normal(0, 0.5, p.shape)
    return net


def kink_margin(net, X):
    """The smallest |pre-activation| of any trunk ReLU on the rows of X: central differences
    with a step h are only valid where no parameter nudge of h moves one across its kink at 0."""
    margin, h = np.inf, np.asarray(X, dtype=np.float64)
    for dense in net.trunk:
        z = h @ dense.params["W"] + dense.params["b"]
        margin = min(margin, float(np.abs(z).min()))
        h = np.maximum(z, 0)
    return margin


def random_targets(rng, heads, n_rows, missing=0.0):
    targets = {}
    for name, head in heads.items():
        if head.kind == "classify":
            t = rng.integers(0, head.n_classes, n_rows)
            t[rng.random(n_rows) < missing] = -1
        else:
            t = rng.standard_normal((n_rows, head.n_outputs))
            t[rng.random(t.shape) < missing] = np.nan
        targets[name] = t
    return targets


# A family of related tasks: every target is a function of the same hidden features
# h = tanh(x @ M) of four inputs, so a trunk trained on one target helps learn the others.
RELATED_MAP = np.random.default_rng(12345).standard_normal((4, 4))


def related_tasks_table(n_rows, *, seed):
    """{column: values}: features a, b, c, d; source targets kind (up/down), size; target
    targets grade (lo/hi), score, each a simple function of the shared hidden features."""
    x = np.random.default_rng(seed).standard_normal((n_rows, 4))
    h = np.tanh(x @ RELATED_MAP)
    return {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3],
            "kind": np.where(h[:, 0] + h[:, 1] > 0, "up", "down"), "size": 3 * h[:, 2] + 10,
            "grade": np.where(h[:, 1] - h[:, 2] > 0, "hi", "lo"), "score": 100 * (h[:, 0] - h[:, 3]) + 50}


def write_related_csv(path, n_rows, columns, *, seed):
    """Write the columns named (in that order) of ``related_tasks_table`` to a CSV file."""
    table = related_tasks_table(n_rows, seed=seed)
    lines = [",".join(columns)]
    for i in range(n_rows):
        lines.append(",".join(v if isinstance(v, str) else f"{v:.6g}"
                              for v in (table[name][i] for name in columns)))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


DELETE = object()  # as the value of ``with_field``: remove the field


def with_field(meta, path, value):
    """A copy of ``meta`` (through JSON, as a file holds it) with the field at ``path`` (a tuple
    of keys) set to ``value``, or removed when ``value`` is DELETE: a malformed file's metadata."""
    meta = json.loads(json.dumps(meta))
    entry = meta
    for key in path[:-1]:
        entry = entry[key]
    if value is DELETE:
        del entry[path[-1]]
    else:
        entry[path[-1]] = value
    return meta
