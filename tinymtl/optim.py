"""Stochastic gradient descent: updates parameters in place.

The optimizer sees parameter *groups*: lists of parameter arrays, the matching gradient arrays,
and a learning rate per group. A frozen parameter is simply one that is in no group, so it gets
no update, no momentum and no weight decay.
"""

import math
import numbers

import numpy as np

LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule, epoch, epochs):
    """The multiple of the base learning rate for ``epoch`` (1..epochs).

    constant  1 throughout.
    cosine    0.5 (1 + cos(pi (epoch - 1) / epochs)): 1 in the first epoch, falling smoothly to
              about (pi / 2 epochs)^2 in the last (Loshchilov & Hutter's SGDR, without restarts).
              Early epochs take large steps; the last ones take small steps, so the weights that
              training ends with are not thrown about by the last batches' noise.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


def is_number(value):
    """Whether ``value`` is one real number that a float can hold: a Python or NumPy int or
    float (or Fraction), or a 0-d array of one; not a string such as "0.1", a bool, a complex
    number or an int beyond float's range."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return False
    elif not isinstance(value, numbers.Real):
        return False
    try:
        float(value)
    except OverflowError:  # an int beyond float's range
        return False
    return True


def _check_real(value, name):
    """ValueError naming option ``name`` unless ``value`` is a number (see ``is_number``)."""
    if not is_number(value):
        raise ValueError(f"{name} must be a number, got {value!r}")


class ParamGroup:
    """Parameters that share a learning rate: ``params`` and ``grads`` are lists of live arrays.

    ``decay=False`` exempts the group from weight decay (used for the learned task weights).
    ``lr_name`` is the option that set ``lr``, for error messages.
    """

    def __init__(self, params, grads, lr, *, decay=True, lr_name="lr"):
        _check_real(lr, lr_name)
        if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads)):
            raise ValueError("each parameter needs a gradient array of its own shape")
        self.params, self.grads, self.lr = list(params), list(grads), float(lr)
        self.decay, self.lr_name = bool(decay), lr_name


class SGD:
    """SGD with optional momentum, Nesterov momentum and L2 weight decay (PyTorch's convention).

        d = g + weight_decay * p
        v = momentum * v + d                      (v starts at 0)
        d = d + momentum * v   if nesterov, else  d = v     (only when momentum > 0)
        p = p - lr * d

    All arrays are written in place, so every reference to a parameter sees the update. State
    (velocity, scratch) is allocated once, here, never per step.
    """

    def __init__(self, groups, *, momentum=0.0, nesterov=False, weight_decay=0.0):
        _check_real(momentum, "momentum")
        _check_real(weight_decay, "weight_decay")
        for group in groups:
            if not (group.lr > 0 and np.isfinite(group.lr)):
                raise ValueError(f"{group.lr_name} must be a finite number > 0, got {group.lr!r}")
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if not (weight_decay >= 0 and np.isfinite(weight_decay)):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.groups = list(groups)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)
        self._update = [[np.zeros_like(p) for p in g.params] for g in self.groups]
        self._velocity = [[np.zeros_like(p) if momentum else None for p in g.params]
                          for g in self.groups]
        self._lookahead = [[np.zeros_like(p) if nesterov else None for p in g.params]
                           for g in self.groups]

    def step(self):
        """Apply one update to every parameter of every group, using the current gradients."""
        mu = self.momentum
        for group, updates, velocities, lookaheads in zip(
                self.groups, self._update, self._velocity, self._lookahead):
            decay = self.weight_decay if group.decay else 0.0
            for p, g, update, velocity, lookahead in zip(
                    group.params, group.grads, updates, velocities, lookaheads):
                direction = g
                if decay:
                    np.multiply(p, decay, out=update)
                    update += g
                    direction = update
                if mu:
                    velocity *= mu
                    velocity += direction
                    if self.nesterov:
                        np.multiply(velocity, mu, out=lookahead)
                        lookahead += direction
                        direction = lookahead
                    else:
                        direction = velocity
                np.multiply(direction, group.lr, out=update)
                p -= update
