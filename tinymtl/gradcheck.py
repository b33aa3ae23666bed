"""Gradient checking: compare backprop's gradients with central differences.

    dL/dp[i] ~= (L(p[i] + h) - L(p[i] - h)) / (2h)

Run in float64, where a correct backward pass agrees to about 1e-9 at h = 1e-6 and a bug shows
up as 1e-3 or worse. The tests use these functions; ``python -m tinymtl.gradcheck`` prints them
for a small network, so you can watch backprop being checked.
"""

import argparse
import math
import sys

import numpy as np

PASS_BELOW = 1e-7


def numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar function ``f()`` w.r.t. the array ``x``, which ``f`` reads.

    ``x`` is perturbed in place, one element at a time, and restored; it may be a view. ``h``
    must be a finite number > 0 (ValueError otherwise): a NaN or infinite step makes every
    difference NaN.
    """
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(f"gradient check step h must be a finite number > 0, got {h!r}")
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


def worst_error(results):
    """The largest relative error in ``check_network``'s results; NaN if any of them is NaN.

    NaN-aware on purpose: Python's ``max(0.0, nan)`` is 0.0, which would report a check whose
    numbers broke (a NaN central difference) as a pass. ``worst_error(results) < PASS_BELOW``
    is False for NaN, so such a check fails.
    """
    return float(np.max([error for _, _, error in results.values()], initial=0.0))


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


def build_parser():
    from .cli import Parser, fraction, hidden_sizes, non_negative_int, positive_int

    parser = Parser(  # one-line usage errors and the option types every command uses
        prog="python -m tinymtl.gradcheck",
        description="Check backprop against central differences on a small random float64 network.")
    parser.add_argument("--hidden", type=hidden_sizes, default="5,4",
                        help="trunk hidden sizes, comma-separated; empty or none for no hidden layer")
    parser.add_argument("--head", type=_parse_head, action="append", dest="heads",
                        help="a task head NAME=classify:K or NAME=regress:K (repeatable; "
                             "default: species=classify:3 and petal_width=regress:1)")
    parser.add_argument("--inputs", type=positive_int, default=3, help="number of input features")
    parser.add_argument("--rows", type=positive_int, default=7, help="rows in the random batch")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed for weights and data")
    parser.add_argument("--step", type=fraction, default=1e-6,
                        help="finite-difference step h, between 0 and 1 (exclusive): the "
                             "parameters are of order 1, so a larger step is no small change")
    parser.add_argument("--show", type=non_negative_int, default=3,
                        help="entries to print per parameter; 0 prints none")
    return parser


def gradcheck(args, *, stdout=None):
    """Build the random network ``args`` describes, check it, print the table; returns the exit
    code: 0 if every array passes, 1 if any fails."""
    from .errors import OptionError
    from .heads import Classify, Regress
    from .network import MultiTaskNet

    stdout = stdout or sys.stdout
    heads = args.heads or [("species", Classify(3)), ("petal_width", Regress(1))]
    names = [name for name, _ in heads]
    repeated = [name for i, name in enumerate(names) if name in names[:i]]
    if repeated:
        raise OptionError(f"--head {repeated[0]} is given more than once; give each head its own name")
    heads = dict(heads)

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
          + f"; float64, {args.rows} rows, h = {args.step:g}", file=stdout)
    results = check_network(net, X, targets, args.step)
    for name, (analytic, numeric, error) in results.items():
        verdict = "ok" if error < PASS_BELOW else "FAIL"  # a NaN error fails
        print(f"{name:<24} shape {str(analytic.shape):<10} relative error {error:.2e}  {verdict}",
              file=stdout)
        for i in list(np.ndindex(analytic.shape))[:args.show]:
            print(f"    {str(i):<10} backprop {analytic[i]: .10f}   central difference "
                  f"{numeric[i]: .10f}", file=stdout)
    worst = worst_error(results)
    print(f"worst relative error {worst:.2e} (pass below {PASS_BELOW:g})", file=stdout)
    return 0 if worst < PASS_BELOW else 1


def main(argv=None):
    from . import cli  # cli imports the data modules: not needed by the library functions above

    return cli.run(build_parser(), argv, gradcheck)


if __name__ == "__main__":
    sys.exit(main())
