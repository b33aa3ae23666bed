"""Layers: forward and backward side by side.

Every layer keeps what its backward pass needs from its forward pass (its *cache*) on ``self``.
``forward`` and ``backward`` accept an optional ``out=`` array so the training loop can run in
buffers made once; without it they allocate, which is what prediction and tests do.

Shapes use the words ``batch``, ``n_in``, ``n_out``.
"""

import math

import numpy as np


class Dense:
    """A fully connected layer: ``out = x @ W + b``.

    Shapes: x (batch, n_in), W (n_in, n_out), b (n_out,), out (batch, n_out).

    ``params`` and ``grads`` are dicts with the same keys ("W", "b"); an optimizer needs nothing
    else. ``backward`` overwrites ``grads``, so there is no gradient to zero between steps.
    """

    def __init__(self, n_in, n_out, *, rng, dtype=np.float32):
        std = math.sqrt(2.0 / n_in)  # He initialisation for ReLU; a Python float keeps float32
        self.params = {"W": rng.standard_normal((n_in, n_out), dtype=dtype) * std,
                       "b": np.zeros(n_out, dtype=dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.x = None  # cache: the input, needed for dL/dW
        self.ones = np.ones(0, dtype=dtype)  # (batch,) of 1.0, grown on demand: see backward

    def forward(self, x, out=None):
        """x (batch, n_in) -> out (batch, n_out)."""
        self.x = x
        out = np.matmul(x, self.params["W"], out=out)
        out += self.params["b"]  # broadcast over the batch
        return out

    def backward(self, grad_out, out=None, *, need_grad_x=True):
        """grad_out (batch, n_out) is dL/d(out); returns grad_x = dL/dx (batch, n_in).

        dL/dW = x.T @ grad_out       (n_in, n_out): each weight sums its effect over the batch
        dL/db = ones @ grad_out      (n_out,): b is a weight on a constant input of 1, so its
                                     gradient is the same product with x = 1 (a sum over the
                                     batch; as a BLAS product it is twice as fast as np.sum)
        dL/dx = grad_out @ W.T       (batch, n_in)

        ``need_grad_x=False`` skips the last product (the first layer's input is the data).
        """
        n_rows = grad_out.shape[0]
        if self.ones.shape[0] < n_rows:
            self.ones = np.ones(n_rows, dtype=grad_out.dtype)
        np.matmul(self.x.T, grad_out, out=self.grads["W"])
        np.matmul(self.ones[:n_rows], grad_out, out=self.grads["b"])
        if not need_grad_x:
            return None
        return np.matmul(grad_out, self.params["W"].T, out=out)


class ReLU:
    """out = max(x, 0), element-wise, written as out = x * slope with slope = 1 where x > 0, else 0.

    Shapes: x, out and slope (batch, n). The slope is also d(out)/dx, so it is the cache.
    """

    def __init__(self):
        self.slope = None  # cache: 1.0 where x > 0, 0.0 elsewhere

    def forward(self, x, out=None, slope=None):
        """x (batch, n) -> out (batch, n). ``slope`` is an optional buffer of x's shape and dtype."""
        if slope is None:
            slope = np.empty_like(x)
        self.slope = np.greater(x, 0, out=slope, casting="unsafe")  # True -> 1.0, False -> 0.0
        return np.multiply(x, self.slope, out=out)  # 3.5 us on (128, 256), np.maximum(x, 0) 13 us

    def backward(self, grad_out, out=None):
        """grad_out (batch, n) -> grad_x (batch, n): grad_out where x > 0, else 0.

        Writes a new array (or ``out``) and never edits ``grad_out``, which the caller may still need.
        """
        return np.multiply(grad_out, self.slope, out=out)
