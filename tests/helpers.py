"""Shared test fixtures: random networks and batches with random (non-zero) biases."""

import numpy as np

import tinymtl


def random_net(rng, n_inputs, hidden, heads, dtype=np.float64):
    net = tinymtl.MultiTaskNet(n_inputs, hidden, heads, rng=rng, dtype=dtype)
    for name, p in net.parameters().items():
        if name.endswith(".b"):  # zero biases would put ReLU inputs on the kink
            p[...] = rng.normal(0, 0.5, p.shape)
    return net


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
