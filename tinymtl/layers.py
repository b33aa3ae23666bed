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

    The bias trick: W and b are stored as one matrix ``Wb`` = [W; b] of shape (n_in + 1, n_out)
    (``params["W"]`` and ``params["b"]`` are views of its rows). An input with one more column,
    of ones, x1 = [x, 1], then gives x1 @ Wb = x @ W + 1 * b: one matrix product computes the
    whole layer, and in backward one product x1.T @ grad_out gives dL/dW and dL/db at once. The
    training loop keeps that column of ones in its activation buffers; prediction passes plain x.
    """

    def __init__(self, n_in, n_out, *, rng, dtype=np.float32):
        std = math.sqrt(2.0 / n_in)  # He initialisation for ReLU; a Python float keeps float32
        self.n_in, self.n_out = n_in, n_out
        self.Wb = np.zeros((n_in + 1, n_out), dtype=dtype)  # rows 0..n_in-1: W; last row: b = 0
        self.Wb[:n_in] = rng.standard_normal((n_in, n_out), dtype=dtype) * std
        self.grad_Wb = np.zeros_like(self.Wb)
        self.x, self.ones_column = None, False  # cache: the input, needed for dL/dW
        self.bind(self.Wb, self.grad_Wb)

    def bind(self, Wb, grad_Wb):
        """Use ``Wb`` and ``grad_Wb`` (n_in + 1, n_out), such as views into the network's flat
        parameter vector, as this layer's storage."""
        self.Wb, self.grad_Wb = Wb, grad_Wb
        self.params = {"W": Wb[:-1], "b": Wb[-1]}
        self.grads = {"W": grad_Wb[:-1], "b": grad_Wb[-1]}

    def forward(self, x, out=None, *, ones_column=False):
        """x (batch, n_in) -> out (batch, n_out).

        ``ones_column=True``: x is x1 (batch, n_in + 1), whose last column holds ones (the bias
        trick), and out = x1 @ Wb.
        """
        expected = self.n_in + 1 if ones_column else self.n_in
        if x.ndim != 2 or x.shape[1] != expected:
            raise ValueError(f"Dense({self.n_in}, {self.n_out}) expects inputs (batch, {expected})"
                             f"{' ending in a column of ones' if ones_column else ''}, got {x.shape}")
        self.x, self.ones_column = x, ones_column
        if ones_column:
            return np.matmul(x, self.Wb, out=out)
        out = np.matmul(x, self.params["W"], out=out)
        out += self.params["b"]  # broadcast over the batch
        return out

    def apply(self, x):
        """x (n, n_in) -> x @ W + b (n, n_out), keeping no cache: for prediction, where no
        backward follows (the cache would keep the prediction's input alive)."""
        out = np.matmul(x, self.params["W"])
        out += self.params["b"]  # broadcast over the rows
        return out

    def backward(self, grad_out, out=None, *, need_grad_x=True):
        """grad_out (batch, n_out) is dL/d(out); returns grad_x = dL/dx (batch, n_in).

        dL/dW = x.T @ grad_out       (n_in, n_out): each weight sums its effect over the batch
        dL/db = ones @ grad_out      (n_out,): b is a weight on a constant input of 1, so its
                                     gradient is the same product with x = 1 (a sum over the
                                     batch); with the bias trick both are x1.T @ grad_out
        dL/dx = grad_out @ W.T       (batch, n_in)

        ``need_grad_x=False`` skips the last product (the first layer's input is the data).
        """
        if self.ones_column:
            np.matmul(self.x.T, grad_out, out=self.grad_Wb)
        else:
            np.matmul(self.x.T, grad_out, out=self.grads["W"])
            np.add.reduce(grad_out, axis=0, out=self.grads["b"])
        if not need_grad_x:
            return None
        return np.matmul(grad_out, self.params["W"].T, out=out)


class ReLU:
    """out = max(x, 0), element-wise, written as out = x * slope with slope = 1 where x > 0, else 0.

    Shapes: x, out and slope (batch, n). The slope is also d(out)/dx, so it is the cache.
    """

    def __init__(self):
        self.slope = None  # cache: 1.0 where x > 0, 0.0 elsewhere

    def forward(self, x, out=None, slope=None, positive=None):
        """x (batch, n) -> out (batch, n): x where x > 0, else 0. The slope (1 where x > 0, else
        0) is d(out)/dx, kept for backward.

        ``slope`` (x's shape and dtype) and ``positive`` (x's shape, bool) are optional buffers.
        The comparison writes booleans, which are then copied as 0.0 and 1.0 into the slope:
        asking the comparison for floats directly would make NumPy cast through a scratch buffer.
        """
        positive = np.greater(x, 0, out=positive)
        self.slope = np.empty_like(x) if slope is None else slope
        np.copyto(self.slope, positive)  # True -> 1.0, False -> 0.0
        # x * slope: 3.5 us on (128, 256), where np.maximum(x, 0) takes 13 us in cache; so three
        # fast passes cost about what that one would, and leave the slope that backward needs
        return np.multiply(x, self.slope, out=out)

    @staticmethod
    def apply(x, out=None):
        """x (batch, n) -> max(x, 0), keeping no slope: for prediction, where no backward follows.

        One pass, where forward makes three: on prediction's large arrays, which do not fit in
        cache, memory traffic decides."""
        return np.maximum(x, 0, out=out)

    def backward(self, grad_out, out=None):
        """grad_out (batch, n) -> grad_x (batch, n): grad_out where x > 0, else 0.

        Writes a new array (or ``out``) and never edits ``grad_out``, which the caller may still need.
        """
        return np.multiply(grad_out, self.slope, out=out)
