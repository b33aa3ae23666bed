"""Task weighting: how the tasks' mean losses L_i combine into the one loss L that backprop follows.

    fixed        L = sum_i w_i L_i, with the user's weights w_i (1 by default).
    uncertainty  Kendall, Gal & Cipolla (CVPR 2018): one learned log-variance s_i = log sigma_i^2
                 per task, a parameter of the network that trains with it:
                     L = sum_i c_i exp(-s_i) L_i + s_i / 2,
                 c_i = 1/2 for a regression task (a Gaussian likelihood: 1/(2 sigma^2) ||y - f||^2
                 + log sigma) and c_i = 1 for a classification task (a tempered softmax:
                 1/sigma^2 CE + log sigma). We keep the paper's two constants rather than the
                 common "exp(-s) L + s" shortcut because they are what the likelihoods give; for a
                 regression task the optimum is exp(s_i) = L_i, a variance, as the name says.
                     dL/ds_i = -c_i exp(-s_i) L_i + 1/2
                 By default each s_i starts at its optimum for the first training batch,
                 log(2 c_i L_i), not at the paper's 0 (``init="zero"``): see before_step.
    gradnorm     Chen et al. (ICML 2018): weights w_i adapted every step so that the norms
                 G_i = ||d(w_i L_i)/dW|| at the last shared layer W follow each task's relative
                 training speed: target_i = mean(G) * r_i^alpha, r_i = (L_i / L_i(0)) / mean_j(.).
                 w moves down the gradient of L_grad = sum_i |G_i - target_i| / mean(G)
                 (targets held constant, as in the paper; dividing by mean(G) makes it free of
                 the loss scale), taken w.r.t. log w_i:  log w_i -= lr * sign(G_i - target_i)
                 * G_i / mean(G). The paper steps w itself; stepping log w keeps every weight
                 positive and the step bounded when the tasks' gradients differ by orders of
                 magnitude (then a plain step on w overshoots and oscillates). Finally w is
                 renormalised to sum to the number of tasks K (of the tasks being trained: see
                 Weighting.set_active). Any finite alpha >= 0 and weight_lr > 0 work: only the
                 sign of G_i - target_i is used and G_i <= K mean(G), so
                 r_i^alpha is capped at 2K (it overflows a float once alpha log r_i > 709.78:
                 alpha 1024 at r_i = 2), and the step in log w is renormalised with a shift, as
                 in log-sum-exp (exp(log w_i) overflows for a step beyond 709.78).
    dwa          Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019): per epoch,
                 w_i(t) = K exp(r_i / T) / sum_j exp(r_j / T), r_i = L_i(t-1) / L_i(t-2),
                 with K tasks and temperature T; w_i = 1 for the first two epochs. Computed
                 as exp((r_i - max_j r_j) / T), which neither overflows for a tiny T (the
                 weights approach K on the slowest task) nor for a huge one (they approach 1).
    pcgrad       Gradient surgery (Yu et al., NeurIPS 2020): each task's gradient on the shared
                 trunk is computed alone; where two conflict (negative dot product), one is
                 projected onto the normal plane of the other, in random order; the trunk gets
                 the sum. Heads get their own task's gradient. L = sum_i w_i L_i.

The weights multiply the fixed ``loss_weights`` of each method except uncertainty, which learns
its own. ``loss_and_gradients`` always returns the exact gradient of the current L (PCGrad's
surgery applies in training steps only, since a projected gradient is no loss's gradient).
"""

import math
import sys

import numpy as np

from .optim import is_number

METHODS = ("fixed", "uncertainty", "gradnorm", "dwa", "pcgrad")

LARGEST = sys.float_info.max        # 1.8e308
LOG_LARGEST = math.log(LARGEST)     # 709.78: math.exp(x) raises OverflowError beyond it
GRADNORM_MIN_WEIGHT = 1e-6          # GradNorm's floor on a weight, before the renormalisation


def finite_number(value):
    """One real number (``optim.is_number``), finite: not NaN or an infinity."""
    return is_number(value) and math.isfinite(float(value))


def exp_or_inf(x):
    """math.exp(x), but inf instead of an OverflowError for x > 709.78."""
    return math.exp(x) if x <= LOG_LARGEST else math.inf


def normalised_exp(logs, total):
    """{task: log w_i} -> {task: w_i} scaled to sum to ``total``, through a shift by the largest
    log w_i as in log-sum-exp: exp(log w_i) itself may overflow. Each log w_i is finite or -inf.
    """
    top = max(logs.values())
    exps = {name: math.exp(value - top) for name, value in logs.items()}
    scale = total / sum(exps.values())  # the largest is exp(0) = 1, so the sum is >= 1
    return {name: e * scale for name, e in exps.items()}


class Weighting:
    """Fixed weights; the base of every method.

    ``weights`` are the current w_i (Python floats). Subclasses adapt them or add parameters.
    """

    method = "fixed"
    parameter_names = ()  # names of the (1,)-shaped parameters this method adds to the network
    # option -> (what it must be, check): the method's settings, checked by the constructor
    # and when a model file is read (tinymtl.checkpoint)
    OPTIONS = {}

    @classmethod
    def check_option(cls, name, value):
        """ValueError unless ``value`` is what option ``name`` of this method must be."""
        expected, check = cls.OPTIONS[name]
        if not check(value):
            raise ValueError(f"{cls.method} {name} must be {expected}, got {value!r}")

    def __init__(self, heads, loss_weights):
        self.heads = heads
        self.loss_weights = dict(loss_weights)
        self.weights = dict(loss_weights)
        self.active = list(heads)  # the tasks being trained; see set_active

    def set_active(self, names):
        """Adapt only the weights of the tasks ``names``: fit names the tasks with a label in its
        data. A task without one (a head kept by transfer learning, say) has a loss of 0 and no
        gradient; counted in, it would take a share of GradNorm's and DWA's weights, which sum
        to the number of tasks, and uncertainty weighting would learn a variance for nothing.
        Its weight stays as it is."""
        names = set(names)
        self.active = [name for name in self.heads if name in names]

    def bind(self, params, grads):
        """Receive the live arrays of this method's parameters (none for most methods)."""

    def combine(self, losses):
        """{task: L_i} -> (L, {task: dL/dL_i}); writes the gradients of any own parameters."""
        total = sum(self.weights[name] * loss for name, loss in losses.items())
        return total, dict(self.weights)

    def before_step(self, losses):
        """Called with a training step's {task: L_i} before they are combined."""

    def after_step(self, net, losses, grad_logits):
        """Called after each training step's backward pass (GradNorm adapts here)."""

    def end_epoch(self, epoch_losses):
        """Called with {task: mean training loss} after each epoch (DWA adapts here)."""

    def current_weights(self):
        """{task: effective weight of L_i in L}, for progress output and model files."""
        return dict(self.weights)

    def describe(self):
        """JSON-able description stored in model files: method, options, current weights."""
        return {"method": self.method, "options": self.options(), "weights": self.current_weights()}

    def options(self):
        return {}

    def restore(self, description):
        """Take back adapted weights saved by ``describe`` (learned parameters load as arrays)."""


class Uncertainty(Weighting):
    method = "uncertainty"
    OPTIONS = {"init": ('"first_batch" or "zero"', lambda v: v in ("first_batch", "zero"))}

    def __init__(self, heads, loss_weights, init="first_batch"):
        super().__init__(heads, loss_weights)
        self.check_option("init", init)
        self.init = init
        self.started = init == "zero"  # with "first_batch", the first training step sets s_i
        self.parameter_names = tuple(f"weighting.{name}.log_var" for name in heads)
        self.factor = {name: 0.5 if head.kind == "regress" else 1.0 for name, head in heads.items()}
        self.log_var = self.grad_log_var = None

    def before_step(self, losses):
        """On the first training step, start each s_i at its optimum for that batch's loss:
        dL/ds_i = 0 at exp(s_i) = 2 c_i L_i, so every task starts with c_i exp(-s_i) L_i = 1/2.

        The paper starts at s_i = 0 (``init="zero"``). With plain SGD that fails when the losses
        differ in scale: dL/ds_i = 1/2 - c_i L_i, so a loss of 1e6 throws s_i to about lr * 5e5
        in one step (s = 3228 after an epoch at lr 1e-3 in benchmarks/weighting.py), where the
        task's weight is 0 for good, since s_i then falls by only lr / 2 a step.
        """
        if self.started:
            return
        for name, loss in losses.items():
            if loss > 0:
                self.log_var[name][0] = math.log(2 * self.factor[name] * loss)
        self.started = True

    def bind(self, params, grads):
        self.log_var = {name: params[f"weighting.{name}.log_var"] for name in self.heads}
        self.grad_log_var = {name: grads[f"weighting.{name}.log_var"] for name in self.heads}

    def combine(self, losses):
        total, scales = 0.0, {}
        for name, loss in losses.items():
            if name not in self.active:  # no label: no loss, and s_i is left alone
                scales[name] = 0.0
                self.grad_log_var[name][0] = 0.0
                continue
            s = float(self.log_var[name][0])
            # c_i exp(-s_i); inf for s_i < -709.78 (a diverging s_i), which makes L infinite, so
            # a training step stops with TrainingDiverged instead of an OverflowError
            scale = self.factor[name] * exp_or_inf(-s)
            total += scale * loss + 0.5 * s
            scales[name] = scale
            self.grad_log_var[name][0] = -scale * loss + 0.5  # dL/ds_i
        return total, scales

    def current_weights(self):
        return {name: self.factor[name] * exp_or_inf(-float(self.log_var[name][0]))
                for name in self.heads}

    def options(self):
        return {"init": self.init}

    def describe(self):
        return {**super().describe(), "started": self.started}

    def restore(self, description):
        self.started = bool(description.get("started", True))


class GradNorm(Weighting):
    method = "gradnorm"
    OPTIONS = {"alpha": ("a finite number >= 0", lambda v: finite_number(v) and v >= 0),
               "weight_lr": ("a finite number > 0", lambda v: finite_number(v) and v > 0)}

    def __init__(self, heads, loss_weights, alpha=1.5, weight_lr=0.025):
        super().__init__(heads, loss_weights)
        self.check_option("alpha", alpha)
        self.check_option("weight_lr", weight_lr)
        self.alpha, self.weight_lr = float(alpha), float(weight_lr)
        self.weights = {name: 1.0 for name in heads}  # adapted; loss_weights scale on top
        self.initial_losses = None

    def combine(self, losses):
        total = sum(self.loss_weights[n] * self.weights[n] * loss for n, loss in losses.items())
        return total, {n: self.loss_weights[n] * self.weights[n] for n in losses}

    def after_step(self, net, losses, grad_logits):
        names = self.active
        if not names:
            return
        if self.initial_losses is None:
            self.initial_losses = {}
        for n in names:  # L_i(0): a task's first trained loss
            self.initial_losses.setdefault(n, max(losses[n], 1e-12))
        norms = net.task_gradient_norms(grad_logits)  # ||d(scale_i L_i)/dW|| at the last shared layer
        # norms were taken with this step's scales: divide them out to get ||dL_i/dW|| (for a
        # sparsely labelled task they still hold its step weight: the push the task really gets)
        scales = {n: self.loss_weights[n] * self.weights[n] for n in names}
        unit = {n: norms[n] / scales[n] if scales[n] > 0 else 0.0 for n in names}
        G = {n: self.weights[n] * unit[n] for n in names}
        mean_G = sum(G.values()) / len(names)
        if mean_G <= 0 or not math.isfinite(mean_G):
            return
        ratio = {n: losses[n] / self.initial_losses[n] for n in names}
        mean_ratio = sum(ratio.values()) / len(names)
        log_w = {n: math.log(w) if w > 0 else -math.inf for n, w in self.weights.items() if n in names}
        for n in names:
            rate = ratio[n] / mean_ratio if mean_ratio > 0 else 1.0  # r_i, in [0, K]
            # target_i = mean(G) r_i^alpha. Only the sign of G_i - target_i counts, and
            # G_i <= sum(G) = K mean(G), so r_i^alpha is capped at 2K, where it cannot overflow
            if rate <= 1:
                power = rate ** self.alpha  # in [0, 1]; 0 ** 0 is 1
            else:
                power = math.exp(min(self.alpha * math.log(rate), math.log(2 * len(names))))
            target = mean_G * power
            if G[n] != target:  # d L_grad / d log w_i = sign(G_i - target_i) * G_i / mean(G)
                grad_log_w = math.copysign(G[n], G[n] - target) / mean_G
                # |step| <= weight_lr * K, which can pass the largest float: clip it there
                step = max(-LARGEST, min(self.weight_lr * grad_log_w, LARGEST))
                log_w[n] = max(log_w[n] - step, math.log(GRADNORM_MIN_WEIGHT))
        self.weights.update(normalised_exp(log_w, len(names)))  # the K trained tasks' sum to K

    def current_weights(self):
        return {n: self.loss_weights[n] * self.weights[n] for n in self.heads}

    def options(self):
        return {"alpha": self.alpha, "weight_lr": self.weight_lr}

    def restore(self, description):
        self.weights = {n: float(w) / self.loss_weights[n] if self.loss_weights[n] else 1.0
                        for n, w in description["weights"].items()}


class DWA(Weighting):
    method = "dwa"
    OPTIONS = {"temperature": ("a finite number > 0", lambda v: finite_number(v) and v > 0)}

    def __init__(self, heads, loss_weights, temperature=2.0):
        super().__init__(heads, loss_weights)
        self.check_option("temperature", temperature)
        self.temperature = float(temperature)
        self.adapted = {name: 1.0 for name in heads}
        self.history = []  # the last two epochs' {task: mean loss}

    def combine(self, losses):
        total = sum(self.loss_weights[n] * self.adapted[n] * loss for n, loss in losses.items())
        return total, {n: self.loss_weights[n] * self.adapted[n] for n in losses}

    def end_epoch(self, epoch_losses):
        self.history = [*self.history[-1:], dict(epoch_losses)]
        if len(self.history) < 2:
            return
        before, last = self.history
        # a rate overflows to inf after a loss of 1e-320 (float64 can get there): clip it, so
        # that r_i - max_j r_j stays a number
        rates = {n: min(last[n] / before[n], LARGEST) if before[n] > 0 else 1.0 for n in self.active}
        if not rates:
            return
        top = max(rates.values())  # shift before exp, as in log-sum-exp: the weights are unchanged
        exps = {n: math.exp((rate - top) / self.temperature) for n, rate in rates.items()}
        total = sum(exps.values())
        self.adapted.update({n: len(exps) * e / total for n, e in exps.items()})  # sum to K

    def current_weights(self):
        return {n: self.loss_weights[n] * self.adapted[n] for n in self.heads}

    def options(self):
        return {"temperature": self.temperature}

    def restore(self, description):
        self.adapted = {n: float(w) / self.loss_weights[n] if self.loss_weights[n] else 1.0
                        for n, w in description["weights"].items()}


class PCGrad(Weighting):
    method = "pcgrad"
    surgery = True

    def __init__(self, heads, loss_weights, *, rng):
        """``rng``: a numpy Generator, which draws the order of each step's projections."""
        super().__init__(heads, loss_weights)
        self.rng = rng


def project_conflicts(task_grads, rng):
    """PCGrad on a list of flat gradient vectors; returns the sum of the projected gradients.

    For each task i, in turn against the other tasks j in random order:
        if g_i . g_j < 0:   g_i <- g_i - (g_i . g_j) / ||g_j||^2 * g_j
    The dot products use the original g_j, as in the paper's algorithm.
    """
    projected = [g.copy() for g in task_grads]
    for i, g in enumerate(projected):
        for j in rng.permutation(len(task_grads)):
            if j == i:
                continue
            other = task_grads[j]
            dot = float(g @ other)
            norm2 = float(other @ other)
            if dot < 0 and norm2 > 0:
                g -= (dot / norm2) * other
    return np.sum(projected, axis=0)


METHOD_CLASSES = {"fixed": Weighting, "uncertainty": Uncertainty, "gradnorm": GradNorm,
                  "dwa": DWA, "pcgrad": PCGrad}


def make_weighting(method, heads, loss_weights, options=None, rng=None):
    """The Weighting for ``method`` (one of METHODS) with its ``options``; ``rng`` (a numpy
    Generator) is PCGrad's, for the order of its projections."""
    method_class = METHOD_CLASSES.get(method) if isinstance(method, str) else None
    if method_class is None:
        raise ValueError(f"weighting must be one of {', '.join(METHODS)}, got {method!r}")
    options = dict(options or {})
    allowed = list(method_class.OPTIONS)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"weighting {method!r} takes no options, got {unknown}" if not allowed else
                         f"weighting {method!r} takes the options {allowed}, got unknown {unknown}")
    if method_class is PCGrad:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"weighting 'pcgrad' needs rng, a numpy.random.Generator, got {rng!r}")
        return PCGrad(heads, loss_weights, rng=rng)
    return method_class(heads, loss_weights, **options)
