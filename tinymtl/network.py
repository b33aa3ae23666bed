"""MultiTaskNet: a shared trunk of Dense + ReLU layers and any number of named task heads.

    x --Dense-ReLU-...-Dense-ReLU--> features --Dense--> logits of every head, side by side
                                                          |-- species:     softmax cross-entropy
                                                          |-- petal_width: mean squared error

The heads share one Dense layer: its weight matrix holds every head's columns, so one matrix
product serves every task, and each head reads (and writes the gradient of) its own columns.
Because every head reads the same features, the gradient reaching the trunk is the *sum* of the
heads' gradients: that sum is what makes the network multi-task.

Every parameter lives in one flat vector (and every gradient in another), and the arrays that
``parameters()`` returns are views of it. The optimizer can then update the whole network in one
operation, and a group of layers (the trunk, the heads) is one contiguous slice.
"""

import math
import numbers

import numpy as np

from . import checkpoint, parallel
from .errors import DataError, TrainingDiverged
from .heads import Classify, Regress, has_label
from .layers import Dense, ReLU
from .losses import Scratch
from .optim import SGD, ParamGroup, lr_factor
from .weighting import finite_number, make_weighting, project_conflicts


class _Workspace:
    """The arrays of one batch size's forward and backward pass, made once and reused.

    A training step writes every activation and activation gradient into these, so after the
    first batch of each size it allocates nothing. ``inputs`` holds a batch of inputs followed
    by a column of ones (the bias trick: see ``Dense``), for ``train_step``; it is made on first
    use, since ``fit`` reads its batches from ``_Gathered`` instead.

    For hidden layer i, ``hidden[i]`` holds h_i, again followed by a column of ones (the ReLU
    runs over the whole array in place, and keeps a 1 as 1), and ``z[i]`` is the view of its
    other columns, where the Dense layer writes; ``slope[i]`` holds the ReLU's slope and
    ``positive[i]`` its comparison; ``grad_hidden[i]`` holds dL/dh_i, whose last column (the
    gradient for the constant 1, never used) stays 0, and ``grad_z[i]`` is the view of its other
    columns, which the ReLU's backward turns into dL/dz_i.

    ``logits`` and ``grad_logits`` hold every head's columns side by side, stored class by class:
    they are (n_logits, batch) arrays seen through their transpose (batch, n_logits), so each
    head's columns are one contiguous block and its loss runs on contiguous memory without a
    copy. ``scratch`` holds each head's loss temporaries.

    ``within``: a workspace for more rows, whose row-major arrays this one uses the first rows
    of (an epoch's last, shorter batch then costs no memory of its own).
    """

    def __init__(self, n_rows, n_inputs, hidden, heads, dtype, within=None):
        def array(name, width, kind=dtype, make=np.empty):  # (n_rows, width); (n_rows,) for None
            if within is not None:
                return within.arrays[name][:n_rows]
            made = self.arrays[name] = make((n_rows,) if width is None else (n_rows, width), kind)
            return made

        def with_ones(name, width):
            made = array(name, width + 1)
            made[:, -1] = 1
            return made

        self.arrays = {}  # name -> the row-major arrays, for a workspace within this one
        self.n_rows, self.n_inputs, self.dtype = n_rows, n_inputs, dtype
        self._inputs = None
        self.hidden = [with_ones(f"hidden.{i}", width) for i, width in enumerate(hidden)]
        self.z = [h[:, :-1] for h in self.hidden]
        self.slope = [array(f"slope.{i}", width + 1) for i, width in enumerate(hidden)]
        self.positive = [array(f"positive.{i}", width + 1, np.bool_)
                         for i, width in enumerate(hidden)]
        self.grad_hidden = [array(f"grad_hidden.{i}", width + 1, make=np.zeros)
                            for i, width in enumerate(hidden)]
        self.grad_z = [g[:, :-1] for g in self.grad_hidden]
        n_logits = sum(head.n_outputs for head in heads.values())
        self.logits = np.empty((n_logits, n_rows), dtype).T  # class by class: not shareable
        self.grad_logits = np.empty((n_logits, n_rows), dtype).T
        self.scratch = {name: Scratch() for name in heads}
        self.task_scratch = Scratch()  # for the per-task gradients of GradNorm and PCGrad

    @property
    def inputs(self):
        """(n_rows, n_inputs + 1): a batch's inputs, then a column of ones; made on first use."""
        if self._inputs is None:
            self._inputs = np.empty((self.n_rows, self.n_inputs + 1), self.dtype)
            self._inputs[:, -1] = 1
        return self._inputs


class _Gathered:
    """The rows of a few batches, gathered in one go: an epoch's rows come a chunk at a time.

    Gathering every row of an epoch at once would copy the whole data set; gathering each batch
    alone costs a handful of NumPy calls per step. A chunk of whole batches, about
    ``GATHER_BYTES`` of memory, pays those calls once for several steps. ``inputs`` holds the
    gathered inputs followed by a column of ones (the bias trick: see ``Dense``), so a batch is
    a slice of consecutive rows, a view: nothing is copied per step. ``x`` receives the rows
    first (``take`` writes only into a whole contiguous array; into ``inputs``' first columns
    it would gather through a scratch buffer), ``targets`` each task's targets.
    """

    GATHER_BYTES = 256 * 1024

    def __init__(self, n_rows, n_inputs, heads, dtype):
        self.n_rows = n_rows
        self.x = np.empty((n_rows, n_inputs), dtype)
        self.inputs = np.empty((n_rows, n_inputs + 1), dtype)
        self.inputs[:, -1] = 1
        self.targets = {name: np.empty(n_rows, np.int64) if head.kind == "classify"
                        else np.empty((n_rows, head.n_outputs), dtype)
                        for name, head in heads.items()}
        self.nbytes = self.x.nbytes + self.inputs.nbytes + sum(t.nbytes for t in self.targets.values())

    @classmethod
    def rows_for(cls, batch_size, n_rows, n_inputs, heads, dtype):
        """Rows per chunk: whole batches within GATHER_BYTES (at least one), at most n_rows."""
        itemsize = np.dtype(dtype).itemsize
        row_bytes = (2 * n_inputs + 1) * itemsize + sum(
            8 if head.kind == "classify" else head.n_outputs * itemsize for head in heads.values())
        batches = max(1, cls.GATHER_BYTES // (row_bytes * batch_size))
        return min(batches * batch_size, n_rows)

    def gather(self, x, targets, rows):
        """Copy the rows ``rows`` (valid indices) of x and of each task's targets to the front."""
        n = rows.shape[0]
        # "wrap" skips the bounds check, which in "raise" mode gathers through a scratch buffer
        x.take(rows, axis=0, out=self.x[:n], mode="wrap")
        np.copyto(self.inputs[:n, :-1], self.x[:n])
        for name, t in targets.items():
            t.take(rows, axis=0, out=self.targets[name][:n], mode="wrap")


def _fully_labelled(head, target):
    """Whether every entry of a task's ``target`` holds a label (no class -1, no NaN value).

    One reduction, no array made (a training step calls it). A NaN anywhere makes the sum NaN;
    so, rarely, do sums that overflow to inf - inf: the step weight then measures the batch's
    share of labels itself and finds it whole, so a wrong False costs only time.
    """
    if head.kind == "classify":
        return bool(np.minimum.reduce(target, axis=None, initial=0) >= 0)
    with np.errstate(over="ignore"):  # a sum of large values may overflow to inf: not NaN
        return not math.isnan(np.add.reduce(target, axis=None))


def _names(names, label):
    """A tuple of names from a list of them, or from one name given alone (freeze="trunk")."""
    if isinstance(names, str):
        return (names,)
    if hasattr(names, "__iter__"):
        names = tuple(names)
        if all(isinstance(name, str) for name in names):
            return names
    raise ValueError(f"{label} must be a list of names, got {names!r}")


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class MultiTaskNet:
    """A shared trunk with named task heads, trained jointly by backprop and SGD.

    Parameters
    ----------
    n_inputs : int
        Width of the input rows.
    hidden : tuple of int
        Widths of the trunk's hidden layers; ``()`` puts the heads straight on the inputs.
    heads : dict of str -> Classify | Regress
        The tasks, by name, in the order given.
    seed : int, optional
        Seeds the random streams for initialisation and shuffling (ignored when ``rng`` is given).
    rng : numpy.random.Generator, optional
        Source of both streams instead of ``seed``.
    dtype : float32 (default) or float64
        Every parameter, activation, gradient and output has this dtype.
    loss_weights : dict of str -> float, optional
        Weight of each task's mean loss in the total (1.0 for tasks not named).
    weighting : "fixed" (default), "uncertainty", "gradnorm", "dwa" or "pcgrad"
        How the tasks' losses combine (see ``tinymtl.weighting``); ``weighting_options`` passes
        a method's settings: GradNorm's ``alpha`` and ``weight_lr``, DWA's ``temperature``.

    With fixed weights the total loss is ``sum over tasks of loss_weights[task] * task's mean loss``.
    """

    def __init__(self, n_inputs, hidden=(16, 16), heads=None, *, seed=0, rng=None,
                 dtype=np.float32, loss_weights=None, weighting="fixed", weighting_options=None):
        self.dtype = _check_dtype(dtype)
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, numbers.Integral) or n_inputs < 1:
            raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
        if isinstance(hidden, (str, bytes, numbers.Number)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden must be a sequence of layer widths such as (16, 16), or () "
                             f"for no hidden layer, got {hidden!r}")
        hidden = tuple(hidden)
        for width in hidden:
            if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
                raise ValueError(f"hidden sizes must be integers >= 1, got {hidden!r}")
        if not isinstance(heads, dict) or not heads:
            raise ValueError("heads must be a non-empty dict of task name -> Classify(k) or Regress(k)")
        for name, head in heads.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"head names must be non-empty strings, got {name!r}")
            if not isinstance(head, (Classify, Regress)):
                raise ValueError(f'heads["{name}"] must be Classify(k) or Regress(k), got {head!r}')
        self.n_inputs, self.hidden = int(n_inputs), tuple(int(w) for w in hidden)
        self.heads = dict(heads)
        self.loss_weights = self._check_loss_weights(loss_weights)
        if rng is None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
                raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
            self.seed = int(seed)
            rng = np.random.default_rng(self.seed)
        elif not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        else:
            self.seed = None
        # Independent streams: adding a head changes the initial weights, not the batch order.
        init_rng, self.shuffle_rng, surgery_rng = rng.spawn(3)
        self.weighting = make_weighting(weighting, self.heads, self.loss_weights,
                                        weighting_options, rng=surgery_rng)
        self.weighting_options = dict(weighting_options or {})

        widths = (self.n_inputs, *self.hidden)
        self.trunk = [Dense(n_in, n_out, rng=init_rng, dtype=self.dtype)
                      for n_in, n_out in zip(widths[:-1], widths[1:])]
        self.relus = [ReLU() for _ in self.trunk]
        self.columns = {}  # task name -> slice of the logits that belongs to that head
        start = 0
        for name, head in self.heads.items():
            self.columns[name] = slice(start, start + head.n_outputs)
            start += head.n_outputs
        self.n_logits = start
        self.head_layer = Dense(widths[-1], self.n_logits, rng=init_rng, dtype=self.dtype)
        self._pack_parameters()
        self._workspaces = {}  # batch size -> _Workspace
        self._gathered = None  # fit's last _Gathered, reused while its rows suffice

    # ----------------------------------------------------------------------------------------
    # Parameters

    def _pack_parameters(self):
        """Move every parameter and gradient into one flat vector each (views into it).

        Layout: [trunk layers | the heads' layer | the weighting's own parameters, if any], so
        each group is one contiguous slice: ``self.groups[name]`` is that slice.
        """
        layers = [*self.trunk, self.head_layer]
        sizes = [sum(layer.Wb.size for layer in self.trunk), self.head_layer.Wb.size,
                 len(self.weighting.parameter_names)]
        self.flat_params = np.empty(sum(sizes), dtype=self.dtype)
        self.flat_grads = np.zeros(sum(sizes), dtype=self.dtype)
        offset = 0
        for layer in layers:  # each layer's [W; b] (see Dense): W's rows, then b
            shape, size = layer.Wb.shape, layer.Wb.size
            view = self.flat_params[offset:offset + size].reshape(shape)
            view[...] = layer.Wb
            layer.bind(view, self.flat_grads[offset:offset + size].reshape(shape))
            offset += size
        self.weighting_params, self.weighting_grads = {}, {}
        for name in self.weighting.parameter_names:  # one (1,) array each, starting at 0
            self.flat_params[offset] = 0
            self.weighting_params[name] = self.flat_params[offset:offset + 1]
            self.weighting_grads[name] = self.flat_grads[offset:offset + 1]
            offset += 1
        self.weighting.bind(self.weighting_params, self.weighting_grads)
        trunk_end, heads_end = sizes[0], sizes[0] + sizes[1]
        self.groups = {"trunk": slice(0, trunk_end), "heads": slice(trunk_end, heads_end),
                       "weighting": slice(heads_end, None)}

    def _named(self, which):
        arrays = {}
        for i, layer in enumerate(self.trunk):
            for key in ("W", "b"):
                arrays[f"trunk.{i}.{key}"] = getattr(layer, which)[key]
        W, b = getattr(self.head_layer, which)["W"], getattr(self.head_layer, which)["b"]
        for name, cols in self.columns.items():
            arrays[f"heads.{name}.W"] = W[:, cols]  # (n_features, n_outputs of the head)
            arrays[f"heads.{name}.b"] = b[cols]
        arrays.update(self.weighting_params if which == "params" else self.weighting_grads)
        return arrays

    def parameters(self):
        """{name: array} of the live parameters: editing one in place changes the network.

        Names: ``trunk.{i}.W`` (n_in, n_out) and ``trunk.{i}.b`` (n_out,) for the i-th trunk layer,
        ``heads.{task}.W`` (n_features, n_outputs) and ``heads.{task}.b`` (n_outputs,) per head,
        and with uncertainty weighting ``weighting.{task}.log_var`` (1,) per task.
        """
        return self._named("params")

    def gradients(self):
        """{name: array} of the gradients of the last backward pass, keyed like ``parameters()``.

        These are live buffers that the next pass overwrites; ``loss_and_gradients`` returns copies.
        """
        return self._named("grads")

    def param_groups(self, lr, *, trunk_lr=None, freeze=()):
        """The optimizer's view of the parameters: a list of ParamGroup.

        ``freeze`` names parameter groups that must not change: "trunk" and/or task names.
        ``trunk_lr`` gives the trunk its own learning rate (for fine-tuning). The weighting's
        own parameters (uncertainty log-variances) are a group exempt from weight decay.
        """
        freeze = set(_names(freeze, "freeze"))
        unknown = freeze - {"trunk", *self.heads}
        if unknown:
            raise ValueError(f"freeze names unknown groups {sorted(unknown)}: expected 'trunk' "
                             f"or task names {list(self.heads)}")
        trunk, heads, weighting = (self.groups[k] for k in ("trunk", "heads", "weighting"))
        groups = []
        if not freeze and trunk_lr is None:  # trunk and heads: one vector, one update
            groups.append(ParamGroup([self.flat_params[:heads.stop]], [self.flat_grads[:heads.stop]], lr))
        else:
            if "trunk" not in freeze and self.flat_params[trunk].size:
                groups.append(ParamGroup([self.flat_params[trunk]], [self.flat_grads[trunk]],
                                         lr if trunk_lr is None else trunk_lr,
                                         lr_name="lr" if trunk_lr is None else "trunk_lr"))
            trainable = [name for name in self.heads if name not in freeze]
            if len(trainable) == len(self.heads):
                groups.append(ParamGroup([self.flat_params[heads]], [self.flat_grads[heads]], lr))
            elif trainable:
                params, grads = self.parameters(), self.gradients()
                keys = [f"heads.{name}.{k}" for name in trainable for k in ("W", "b")]
                groups.append(ParamGroup([params[k] for k in keys], [grads[k] for k in keys], lr))
        if self.flat_params[weighting].size:  # learned task weights: no weight decay, which
            # would add decay * s_i to dL/ds_i and change the weighting's objective
            groups.append(ParamGroup([self.flat_params[weighting]], [self.flat_grads[weighting]], lr,
                                     decay=False))
        return groups

    # ----------------------------------------------------------------------------------------
    # Forward and backward

    def _workspace(self, n_rows):
        workspace = self._workspaces.get(n_rows)
        if workspace is None:
            if len(self._workspaces) > 4:  # a full batch and a last partial one are the usual pair
                self._workspaces.clear()
            larger = [ws for ws in self._workspaces.values() if ws.n_rows > n_rows and ws.arrays]
            workspace = self._workspaces[n_rows] = _Workspace(
                n_rows, self.n_inputs, self.hidden, self.heads, self.dtype,
                within=min(larger, key=lambda ws: ws.n_rows) if larger else None)
        return workspace

    def _features(self, x):
        """x (n, n_inputs) -> the trunk's output (n, n_features), in new arrays (for prediction)."""
        h = x
        for dense, relu in zip(self.trunk, self.relus):
            z = dense.apply(h)
            h = relu.apply(z, out=z)
        return h

    def _forward(self, inputs, ws):
        """inputs (batch, n_inputs + 1), ending in a column of ones -> logits of every head side
        by side (batch, n_logits).

        Every array is written into the workspace ``ws``. Each Dense layer writes z into all but
        the last column of the next buffer, whose ones make the next layer's bias trick.
        """
        h = inputs
        for dense, relu, hidden, z, slope, positive in zip(self.trunk, self.relus, ws.hidden, ws.z,
                                                           ws.slope, ws.positive):
            dense.forward(h, out=z, ones_column=True)
            # in place: backward needs only the slope
            h = relu.forward(hidden, out=hidden, slope=slope, positive=positive)
        return self.head_layer.forward(h, out=ws.logits, ones_column=True)

    def _losses(self, logits, targets, ws, training=False, sparse=()):
        """Each head's mean loss on its own columns, their weighted total L, and dL/dlogits.

        logits (batch, n_logits) -> (L, {task: loss}, grad_logits (batch, n_logits)), the
        gradient written into ``ws.grad_logits``. The weighting turns the task losses into L and
        tells how much each one counts: dL/dlogits of a head = dL/dloss[task] * dloss[task]/dlogits.
        In a training step, the gradient of each task in ``sparse`` (tasks that may miss labels)
        is also scaled by its ``_step_weight``.
        """
        losses, head_grads = {}, {}
        for name, head in self.heads.items():
            cols = self.columns[name]
            losses[name], head_grads[name] = head.loss(logits[:, cols], targets[name],
                                                       out=ws.grad_logits[:, cols],
                                                       scratch=ws.scratch[name])
        if training:
            self.weighting.before_step(losses)
        total, scales = self.weighting.combine(losses)
        for name in sparse:
            scales[name] = scales.get(name, 1.0) * self._step_weight(name, targets[name], ws)
        for name, scale in scales.items():  # dL/dlogits of a head = scale * d(loss)/dlogits
            if scale != 1.0:
                head_grads[name] *= scale
        return total, losses, ws.grad_logits

    STEP_WEIGHT_FULL_AT = 0.5  # the labelled share of a batch from which a task's step is whole

    def _step_weight(self, name, target, ws):
        """How hard a training step pushes a task whose labels may be missing in this batch.

        The task's loss is the mean over the batch's labelled entries, so a batch with a single
        labelled row would give that row the push of a whole batch. Where labels are sparse,
        the next batches hold no label to correct it, and momentum carries the push on: with 2%
        of a target labelled, training diverged or ended with a useless model in 7 of 8 runs.
        So a task's gradient is scaled by (labelled share of the batch) / 0.5 where fewer than
        half of the batch's entries are labelled: a labelled row never pushes more than twice
        as hard as a row of a fully labelled batch. The loss itself (history, weighting, early
        stopping) stays the mean over labelled entries. Returns the factor, at most 1.
        """
        missing = ws.task_scratch.get(("missing", name), lambda: np.empty(target.shape, np.bool_))
        if self.heads[name].kind == "classify":
            np.less(target, 0, out=missing)
        else:
            np.isnan(target, out=missing)
        if missing.size == 0:  # an empty batch: nothing to weigh
            return 1.0
        share = 1.0 - int(np.count_nonzero(missing)) / missing.size
        return min(1.0, share / self.STEP_WEIGHT_FULL_AT)

    def _backward(self, grad_logits, ws):
        """Backpropagate dL/dlogits through the heads and the trunk, writing every gradient.

        The heads: each head's weights get grads = features.T @ grad_logits[:, its columns],
        and the trunk's output gets the sum over heads of grad_logits[:, cols] @ W[:, cols].T,
        which is one product, grad_logits @ W.T: every task pushes on the shared features.
        Then each trunk layer, last to first, with h_prev its input:
            grad_z      = grad_h * slope           (ReLU: 1 where z > 0, else 0)
            grads       = h_prev.T @ grad_z        (Dense: dL/dW, and dL/db by the bias trick)
            grad_h_prev = grad_z @ W.T             (passed on; not needed for the first layer)
        """
        depth = len(self.trunk)
        # dL/d(features) sums every task's contribution: the multi-task step.
        self.head_layer.backward(grad_logits, out=ws.grad_z[-1] if depth else None,
                                 need_grad_x=depth > 0)
        for i in reversed(range(depth)):
            grad_h = ws.grad_hidden[i]
            self.relus[i].backward(grad_h, out=grad_h)  # we own grad_h: it becomes dL/dz_i
            self.trunk[i].backward(ws.grad_z[i], out=ws.grad_z[i - 1] if i else None,
                                   need_grad_x=i > 0)

    def _backward_with_surgery(self, grad_logits, ws):
        """PCGrad: backpropagate each task alone, project conflicting trunk gradients, sum."""
        trunk, heads = self.groups["trunk"], self.groups["heads"]
        task_grad_logits = ws.task_scratch.get("task_grad_logits", lambda: np.empty_like(grad_logits))
        trunk_grads, head_grads = [], np.zeros_like(self.flat_grads[heads])
        for cols in self.columns.values():
            task_grad_logits[...] = 0
            task_grad_logits[:, cols] = grad_logits[:, cols]
            self._backward(task_grad_logits, ws)
            trunk_grads.append(self.flat_grads[trunk].copy())
            head_grads += self.flat_grads[heads]  # a head's columns see only its own task
        if trunk_grads[0].size:
            self.flat_grads[trunk] = project_conflicts(trunk_grads, self.weighting.rng)
        self.flat_grads[heads] = head_grads

    def task_gradient_norms(self, grad_logits):
        """{task: norm of the task's share of dL/dW} at the last shared layer W, from the caches
        of the last training forward pass (the heads' input gradient when there is no trunk).

        grad_logits (batch, n_logits) is dL/dlogits; each task's share is its own columns.
        In training, the arrays come from the batch's workspace: nothing is allocated.
        """
        n_rows, W_heads = grad_logits.shape[0], self.head_layer.params["W"]
        ws = self._workspaces.get(n_rows)
        scratch = Scratch() if ws is None else ws.task_scratch
        # dL/d(features) of one task, beside a column of 0 where the features have their ones
        grad_features = scratch.get("grad_features",
                                    lambda: np.zeros((n_rows, W_heads.shape[0] + 1), self.dtype))
        norms = {}
        for name, cols in self.columns.items():
            np.matmul(grad_logits[:, cols], W_heads[:, cols].T, out=grad_features[:, :-1])
            if self.trunk:
                last = self.trunk[-1]
                grad_features *= self.relus[-1].slope  # dL/dz of the last trunk layer
                grad_W = np.matmul(last.x[:, :last.n_in].T, grad_features[:, :-1],
                                   out=scratch.get("grad_W", lambda: np.empty(last.params["W"].shape,
                                                                              self.dtype)))
                norms[name] = math.sqrt(np.vdot(grad_W, grad_W))
            else:
                norms[name] = math.sqrt(np.vdot(grad_features, grad_features))
        return norms

    def train_step(self, x, targets, optimizer):
        """One SGD step on a batch of checked arrays; returns {task: mean loss} before the step.

        Forward, the losses and their weighted total L, backward, then the optimizer's update:
        fit's step. The gradient of a task labelled on fewer than half of the batch's entries is
        scaled down (see ``_step_weight``), so the step is on L itself when every task is
        labelled on at least half of the batch. x (batch, n_inputs). Raises TrainingDiverged,
        before touching the parameters, if L is not finite.
        """
        ws = self._workspace(x.shape[0])
        np.copyto(ws.inputs[:, :-1], x)  # the last column holds the ones
        sparse = [name for name, t in targets.items() if not _fully_labelled(self.heads[name], t)]
        return self._step(ws.inputs, targets, ws, optimizer, sparse)

    def _step(self, inputs, targets, ws, optimizer, sparse=()):
        """train_step on inputs (batch, n_inputs + 1) that already end in a column of ones.

        ``sparse``: the tasks whose labels may be missing (see ``_step_weight``); fit names the
        tasks with a missing label in its data, so that fully labelled ones cost nothing more.
        """
        total, losses, grad_logits = self._losses(self._forward(inputs, ws), targets, ws,
                                                  training=True, sparse=sparse)
        if not math.isfinite(total):
            raise TrainingDiverged(f"the loss became {total}")
        if getattr(self.weighting, "surgery", False):
            self._backward_with_surgery(grad_logits, ws)
        else:
            self._backward(grad_logits, ws)
        self.weighting.after_step(self, losses, grad_logits)
        optimizer.step()
        return losses

    # ----------------------------------------------------------------------------------------
    # Public API

    def predict(self, X):
        """X (n, n_inputs) -> {task: output}: class probabilities (n, k) or values (n, k)."""
        x = self._check_inputs(X)
        logits = self.head_layer.apply(self._features(x))
        return {name: head.output(logits[:, self.columns[name]]).copy()
                for name, head in self.heads.items()}

    def trunk_features(self, X):
        """X (n, n_inputs) -> the shared features the heads read (n, n_features): the trunk's output."""
        h = self._features(self._check_inputs(X))
        return h.copy() if h is X else h

    def loss_and_gradients(self, X, targets):
        """Total loss on (X, targets) and its gradient w.r.t. every array of ``parameters()``.

        Returns (loss: float, {name: array}) with the names of ``parameters()``; the arrays are
        copies, safe to keep.
        """
        x = self._check_inputs(X)
        targets = self._check_targets(targets, x.shape[0])
        # a workspace of its own, not kept: the training step's arithmetic on X (without the
        # step weight of sparsely labelled tasks, which scales a step, not the loss)
        ws = _Workspace(x.shape[0], self.n_inputs, self.hidden, self.heads, self.dtype)
        np.copyto(ws.inputs[:, :-1], x)
        total, _, grad_logits = self._losses(self._forward(ws.inputs, ws), targets, ws)
        self._backward(grad_logits, ws)
        return total, {k: g.copy() for k, g in self.gradients().items()}

    def task_losses(self, X, targets):
        """{task: mean loss} on (X, targets), unweighted; labelled entries only."""
        x = self._check_inputs(X)
        targets = self._check_targets(targets, x.shape[0])
        logits = self.head_layer.apply(self._features(x))
        return {name: head.loss(logits[:, self.columns[name]], targets[name])[0]
                for name, head in self.heads.items()}

    def fit(self, X, targets, *, epochs=300, batch_size=16, lr=0.01, lr_schedule="cosine",
            momentum=0.9, nesterov=False, weight_decay=0.01, rng=None, freeze=(), trunk_lr=None,
            validation=None, patience=None, callback=None, threads=None):
        """Train by mini-batch SGD; returns the per-epoch history {task: [mean training loss]}.

        The defaults are ``python -m tinymtl.train``'s (see the README for how they were chosen):
        300 epochs of batches of 16, learning rate 0.01 falling along a cosine, momentum 0.9 and
        weight decay 0.01.

        Rows are reshuffled every epoch from ``rng`` (by default the network's own shuffle stream,
        so the same seed gives the same training). ``freeze`` and ``trunk_lr``: see
        ``param_groups``; a task without any label in ``targets`` (all -1 or NaN: a head kept
        by ``with_heads``, say) is frozen too. With ``validation=(X_val, targets_val)`` the
        history also holds ``"val_<task>"`` lists. A task without any label in ``targets`` has
        NaN in its training history, and one without a label in the validation targets NaN in
        its ``"val_<task>"`` list: no loss to show. With ``patience`` as well,
        training stops when the validation loss (the sum of the tasks' unweighted mean losses)
        has not improved for ``patience`` epochs, and the best epoch's parameters are restored.
        ``callback(epoch, history)`` is called after each epoch.

        ``lr_schedule``: "constant" keeps every group's learning rate; "cosine" multiplies it by
        ``optim.lr_factor`` in each epoch, from 1 in the first epoch down to nearly 0 in the last
        (with early stopping, the schedule still spans ``epochs``).

        ``threads`` (default: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS or the
        number of cores) is how many threads BLAS may use while training (see
        ``tinymtl.parallel``).

        If the loss becomes NaN or infinite, the parameters are restored to what they were
        before ``fit`` and TrainingDiverged (a ValueError) is raised.
        """
        x = self._check_inputs(X)
        if x.shape[0] == 0:
            raise ValueError(f"fit needs at least one row of X, got shape {x.shape}")
        targets = self._check_targets(targets, x.shape[0])
        for label, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
        if patience is not None and (isinstance(patience, bool) or not isinstance(
                patience, numbers.Integral) or patience < 1):
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if patience is not None and validation is None:
            raise ValueError("patience needs validation=(X_val, targets_val)")
        threads = parallel.default_threads() if threads is None else threads
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        if validation is not None:
            x_val = self._check_inputs(validation[0], "validation X")
            if x_val.shape[0] == 0:
                raise ValueError(f"validation needs at least one row, got shape {x_val.shape}")
            targets_val = self._check_targets(validation[1], x_val.shape[0])
            val_labelled = [name for name, t in targets_val.items() if has_label(t)]
            if patience is not None and not any(map(has_label, targets_val.values())):
                raise ValueError("patience needs a validation loss to watch, but the validation "
                                 "targets hold no label of any task")
        labelled = [name for name, t in targets.items() if has_label(t)]
        if not labelled:
            raise ValueError("targets hold no label of any task: there is nothing to train on")
        # A head without a label here gets no gradient; frozen, weight decay leaves it as it was.
        unlabelled = [name for name in self.heads if name not in labelled]
        optimizer = SGD(self.param_groups(lr, trunk_lr=trunk_lr,
                                          freeze={*_names(freeze, "freeze"), *unlabelled}),
                        momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        lr_factor(lr_schedule, 1, epochs)  # a ValueError for an unknown schedule, before training
        base_lrs = [group.lr for group in optimizer.groups]
        rng = self.shuffle_rng if rng is None else rng

        history = {name: [] for name in self.heads}
        if validation is not None:
            history.update({f"val_{name}": [] for name in self.heads})
        start_params = self.flat_params.copy()
        self.weighting.set_active(labelled)
        best_params, best_loss, self.best_epoch = None, math.inf, None
        # Overflow while diverging is expected: the finite-loss check reports it, in one line.
        try:
            with parallel.blas_threads(threads), np.errstate(over="ignore", invalid="ignore"):
                for epoch in range(1, epochs + 1):
                    factor = lr_factor(lr_schedule, epoch, epochs)
                    for group, base_lr in zip(optimizer.groups, base_lrs):
                        group.lr = base_lr * factor
                    try:
                        epoch_losses = self._train_epoch(x, targets, batch_size, optimizer, rng)
                        # the last step may itself have thrown the parameters to inf or NaN
                        if not math.isfinite(np.add.reduce(self.flat_params, axis=None)):
                            raise TrainingDiverged("the parameters became infinite or NaN")
                        val_losses = validation and self.task_losses(x_val, targets_val)
                        if val_losses and not math.isfinite(sum(val_losses.values())):
                            raise TrainingDiverged("the validation loss became "
                                                   f"{sum(val_losses.values())}")
                    except TrainingDiverged as err:
                        self.flat_params[...] = start_params  # nothing half-trained is left behind
                        raise TrainingDiverged(f"training diverged in epoch {epoch}: {err}; "
                                               f"try a lower learning rate than lr={lr}") from None
                    self.weighting.end_epoch(epoch_losses)
                    for name, loss in epoch_losses.items():  # NaN: no label, no loss to show
                        history[name].append(loss if name in labelled else math.nan)
                    stop = False
                    if validation is not None:
                        for name, loss in val_losses.items():
                            history[f"val_{name}"].append(loss if name in val_labelled else math.nan)
                        if patience is not None:
                            val_total = sum(val_losses.values())
                            if val_total < best_loss:
                                best_loss, self.best_epoch = val_total, epoch
                                best_params = self.flat_params.copy()
                            stop = epoch - self.best_epoch >= patience
                    if callback is not None:  # every completed epoch, the last one included
                        callback(epoch, history)
                    if stop:
                        break
        finally:
            self.weighting.set_active(self.heads)  # outside fit, every task counts
        if best_params is not None:
            self.flat_params[...] = best_params
        if self._gathered is not None and self._gathered.nbytes > _Gathered.GATHER_BYTES:
            self._gathered = None  # a batch bigger than a chunk: do not keep its copy of the data
        return history

    def _train_epoch(self, x, targets, batch_size, optimizer, rng):
        """One pass over the rows in a fresh random order; returns {task: mean training loss}.

        The rows are gathered a chunk of batches at a time (see ``_Gathered``), so nothing of
        the data's size is copied, and each batch is a view of its chunk.
        """
        n_rows = x.shape[0]
        chunk_rows = _Gathered.rows_for(batch_size, n_rows, self.n_inputs, self.heads, self.dtype)
        gathered = self._gathered
        if gathered is None or gathered.n_rows < chunk_rows:
            gathered = self._gathered = _Gathered(chunk_rows, self.n_inputs, self.heads, self.dtype)
        order = rng.permutation(n_rows)
        sums = dict.fromkeys(self.heads, 0.0)
        sparse = [name for name, t in targets.items() if not _fully_labelled(self.heads[name], t)]
        for first in range(0, n_rows, chunk_rows):
            rows = order[first:first + chunk_rows]
            gathered.gather(x, targets, rows)
            for start in range(0, rows.shape[0], batch_size):
                stop = min(start + batch_size, rows.shape[0])
                batch_targets = {name: t[start:stop] for name, t in gathered.targets.items()}
                losses = self._step(gathered.inputs[start:stop], batch_targets,
                                     self._workspace(stop - start), optimizer, sparse)
                for name, loss in losses.items():
                    sums[name] += loss * (stop - start)
        return {name: total / n_rows for name, total in sums.items()}

    # ----------------------------------------------------------------------------------------
    # Saving, loading and transfer

    def save(self, path):
        """Save parameters and architecture: safetensors for a ``.safetensors`` path, else npz."""
        if str(path).lower().endswith(".safetensors"):
            checkpoint.save_safetensors(self, path)
        else:
            checkpoint.save_network(self, path)

    @classmethod
    def load(cls, path, heads=None):
        """Load a network saved by ``save`` (npz or safetensors), a command-line model file, or
        a PyTorch MLP saved with safetensors under tinymtl's tensor names; for a file without
        tinymtl metadata, ``heads`` names each head's kind, as in ``{"y": "classify"}``."""
        return checkpoint.load_network(path, heads)

    def with_heads(self, heads=None, *, keep=(), seed=0, rng=None, weighting=None,
                   weighting_options=None):
        """A new network with a copy of this trunk, the heads named in ``keep`` (weights copied)
        and fresh ``heads`` ({name: Classify | Regress}); dropped heads are those not kept.
        The new network combines its tasks' losses by ``weighting`` with ``weighting_options``;
        by default, by this one's method, with its options unless others are given (the
        uncertainty method's learned weights start afresh). ``seed`` or ``rng`` (a numpy
        Generator) draws the new heads' initial weights and the batch order, as in the
        constructor."""
        heads = dict(heads or {})
        keep = _names(keep, "keep")
        unknown = [name for name in keep if name not in self.heads]
        clash = [name for name in heads if name in keep]
        if unknown or clash:
            raise ValueError(f"keep names unknown heads {unknown} or heads already kept {clash}; "
                             f"this network's heads are {list(self.heads)}")
        all_heads = {**{name: self.heads[name] for name in keep}, **heads}
        if weighting is None:  # this network's method, and its options unless others are given
            weighting = self.weighting.method
            if weighting_options is None:
                weighting_options = self.weighting_options
        net = MultiTaskNet(self.n_inputs, self.hidden, all_heads, seed=seed, rng=rng, dtype=self.dtype,
                           loss_weights={n: w for n, w in self.loss_weights.items() if n in keep},
                           weighting=weighting, weighting_options=weighting_options)
        source, target = self.parameters(), net.parameters()
        for name in target:  # the trunk and the kept heads; weighting parameters start afresh
            kept_head = name.startswith("heads.") and name.split(".")[1] in keep
            if name.startswith("trunk.") or kept_head:
                target[name][...] = source[name]
        return net

    # ----------------------------------------------------------------------------------------
    # Checking what the caller gave us

    def _check_inputs(self, X, label="X"):
        x = np.asarray(X)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"{label} must have shape (n, {self.n_inputs}), got {x.shape}")
        if x.dtype.kind not in "iuf":
            raise ValueError(f"{label} must be numeric, got dtype {x.dtype}")
        with np.errstate(over="ignore"):  # a value too large for the dtype is reported below,
            x = x.astype(self.dtype, copy=False)  # converted once; float32 stays float32
            total = np.add.reduce(x, axis=None)  # and a sum of large values may overflow
        if not math.isfinite(total) and not np.isfinite(x).all():
            row, col = np.argwhere(~np.isfinite(x))[0]
            raise DataError(f"{label} holds a non-finite value {x[row, col]} at row {row}, column {col}"
                            f"{' (as ' + self.dtype.name + ')' if np.isfinite(np.asarray(X)[row, col]) else ''}")
        return x

    def _check_targets(self, targets, n_rows):
        if not isinstance(targets, dict):
            raise ValueError(f"targets must be a dict of task name -> array, got {type(targets).__name__}")
        missing = [name for name in self.heads if name not in targets]
        unknown = [name for name in targets if name not in self.heads]
        if missing or unknown:
            raise ValueError(f"targets must have exactly the tasks {list(self.heads)}: "
                             f"missing {missing}, unknown {unknown}")
        return {name: head.check_target(name, targets[name], n_rows, self.dtype)
                for name, head in self.heads.items()}

    def _check_loss_weights(self, loss_weights):
        weights = dict.fromkeys(self.heads, 1.0)
        for name, weight in (loss_weights or {}).items():
            if name not in self.heads:
                raise ValueError(f"loss_weights names unknown task {name!r}: tasks are {list(self.heads)}")
            if not (finite_number(weight) and weight >= 0):
                raise ValueError(f'loss_weights["{name}"] must be a finite number >= 0, got {weight!r}')
            weights[name] = float(weight)
        if not any(weights.values()):
            raise ValueError(f"loss_weights must give some task a weight > 0, got {loss_weights!r}: "
                             f"training would learn nothing")
        return weights
