"""Gradient checking: compare backprop's gradients with central differences.

    dL/dp[i] ~= (L(p[i] + h) - L(p[i] - h)) / (2h)

Run in float64, where a correct backward pass agrees to about 1e-9 at h = 1e-6 and a bug shows
up as 1e-3 or worse. The tests use these functions; ``python -m tinymtl.gradcheck`` prints them
for a small network, so you can watch backprop being checked.
"""

import argparse
import sys

import numpy as np

PASS_BELOW = 1e-7


def numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar function ``f()`` w.r.t. the array ``x``, which ``f`` reads.

    ``x`` is perturbed in place, one element at a time, and restored; it may be a view.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(analytic, numeric):
    """One number per array: norm(a - n) / max(norm(a) + norm(n), 1e-12).

    Norm-wise, because an element-wise ratio explodes on exact zeros (dead ReLU units).
    """
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12))


def check_network(net, X, targets, h=1e-6):
    """{parameter name: (analytic, numeric, relative error)} for every array of ``parameters()``."""
    _, analytic = net.loss_and_gradients(X, targets)  # copies, safe from the reruns below
    params = net.parameters()
    results = {}
    for name, p in params.items():
        numeric = numerical_gradient(lambda: net.loss_and_gradients(X, targets)[0], p, h)
        results[name] = (analytic[name], numeric, relative_error(analytic[name], numeric))
    return results


def _parse_head(text):
    from .heads import Classify, Regress

    name, sep, spec = text.partition("=")
    kind, _, count = spec.partition(":")
    try:
        n = int(count)
        head = {"classify": Classify, "regress": Regress}[kind](n)
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected NAME=classify:K or NAME=regress:K (K >= 1, classify K >= 2), got {text!r}")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=KIND:K, got {text!r}")
    return name, head


def main(argv=None):
    from .heads import Classify, Regress
    from .network import MultiTaskNet

    from .cli import Parser, hidden_sizes  # one-line usage errors, as every command has

    parser = Parser(
        prog="python -m tinymtl.gradcheck",
        description="Check backprop against central differences on a small random float64 network.")
    parser.add_argument("--hidden", type=hidden_sizes, default=(5, 4),
                        help="trunk hidden sizes, comma-separated; empty or none for no hidden layer")
    parser.add_argument("--head", type=_parse_head, action="append", dest="heads",
                        help="a task head NAME=classify:K or NAME=regress:K (repeatable; "
                             "default: species=classify:3 and petal_width=regress:1)")
    parser.add_argument("--inputs", type=int, default=3, help="number of input features")
    parser.add_argument("--rows", type=int, default=7, help="rows in the random batch")
    parser.add_argument("--seed", type=int, default=0, help="random seed for weights and data")
    parser.add_argument("--step", type=float, default=1e-6, help="finite-difference step h")
    parser.add_argument("--show", type=int, default=3, help="entries to print per parameter")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.rows < 1 or args.step <= 0:
        parser.error("--inputs and --rows must be >= 1 and --step > 0")
    heads = dict(args.heads or [("species", Classify(3)), ("petal_width", Regress(1))])

    rng = np.random.default_rng(args.seed)
    net = MultiTaskNet(args.inputs, args.hidden, heads, rng=rng, dtype=np.float64)
    for p in net.parameters().values():  # random biases keep ReLU inputs off the kink
        if p.ndim == 1:
            p[...] = rng.normal(0, 0.5, p.shape)
    X = rng.standard_normal((args.rows, args.inputs))
    targets = {name: (rng.integers(0, head.n_outputs, args.rows) if head.kind == "classify"
                      else rng.standard_normal((args.rows, head.n_outputs)))
               for name, head in heads.items()}

    print(f"network: {args.inputs} inputs, hidden {list(args.hidden)}, heads "
          + ", ".join(f"{n} ({h.kind}, {h.n_outputs})" for n, h in heads.items())
          + f"; float64, {args.rows} rows, h = {args.step:g}")
    worst = 0.0
    for name, (analytic, numeric, error) in check_network(net, X, targets, args.step).items():
        worst = max(worst, error)
        verdict = "ok" if error < PASS_BELOW else "FAIL"
        print(f"{name:<24} shape {str(analytic.shape):<10} relative error {error:.2e}  {verdict}")
        for i in list(np.ndindex(analytic.shape))[:args.show]:
            print(f"    {str(i):<10} backprop {analytic[i]: .10f}   central difference {numeric[i]: .10f}")
    print(f"worst relative error {worst:.2e} (pass below {PASS_BELOW:g})")
    return 0 if worst < PASS_BELOW else 1


if __name__ == "__main__":
    sys.exit(main())
