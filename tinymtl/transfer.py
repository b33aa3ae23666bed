"""Transfer learning from the command line: ``python -m tinymtl.train --from MODEL``.

    python -m tinymtl.train --csv new.csv --classify y --from model.npz --freeze-trunk
    python -m tinymtl.train --csv new.csv --classify y --from model.npz --trunk-lr 0.001 --keep-heads

The new model starts from the source model's trunk, with fresh heads for the new targets. The
trunk learned on the source's inputs, so the new model keeps the source's feature encoding and
standardisation; the new CSV's feature columns must be the source's, by name (any order). With
``--keep-heads`` the source's heads stay, with their classes and target scaling: a kept head that
is not a target of the new data is frozen (it has no labels there), so on a frozen trunk it
predicts exactly as before; a kept head that *is* a new target (same kind and classes) goes on
training on the new labels. New regression targets get their own scaling.

A file without preprocessing metadata (a PyTorch safetensors file, or a network saved by
``MultiTaskNet.save``) has no feature names: ``--features`` must then name the trunk's input
columns in the trunk's input order, and their values go to the trunk as they are in the CSV, with
no standardisation (tinymtl cannot know what the other framework did; preprocess the CSV alike).
"""

import numpy as np

from . import checkpoint, cli
from .data import ClassTarget, Features, NumericFeature
from .errors import CheckpointError, DataError, OptionError
from .heads import Classify, Regress
from .model import KIND, Model
from .network import MultiTaskNet


def add_transfer_options(parser):
    """--from, --freeze-trunk, --trunk-lr, --keep-heads."""
    group = parser.add_argument_group(
        "transfer learning", "start from a trained model's trunk; the new targets get new heads")
    group.add_argument("--from", dest="source", metavar="MODEL",
                       help="model file to start from (written by tinymtl.train or tinymtl.export, "
                            "npz or safetensors); its trunk sets the hidden layers and the features. "
                            "A file without tinymtl metadata (PyTorch) needs --features: the "
                            "trunk's input columns in order, fed unstandardised")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--freeze-trunk", action="store_true",
                      help="train only the heads: the trunk's parameters stay bit-identical")
    mode.add_argument("--trunk-lr", type=cli.positive_float, metavar="LR",
                      help="fine-tune the trunk with this learning rate (per unit of gradient), "
                           "usually below --lr; without it the trunk trains at --lr")
    group.add_argument("--keep-heads", action="store_true",
                       help="keep the source model's heads (classes and target scaling included)")


def check_options(args):
    """OptionError (exit 2) for a transfer option without --from."""
    if args.source is None:
        used = [option for option, value in (("--freeze-trunk", args.freeze_trunk),
                                             ("--trunk-lr", args.trunk_lr),
                                             ("--keep-heads", args.keep_heads)) if value]
        if used:
            raise OptionError(f"{used[0]} needs --from MODEL (the model whose trunk to reuse)")
    if args.freeze_trunk and getattr(args, "weighting", None) == "pcgrad":
        raise OptionError("--weighting pcgrad projects the tasks' gradients on the shared trunk, "
                          "which --freeze-trunk keeps still: it would train as --weighting fixed")


def start_from(args, dataset, *, rng):
    """The model to train on ``dataset`` when ``--from`` is given, and how to train it.

    Returns (model, fit options {"freeze", "trunk_lr"} for ``MultiTaskNet.fit``, a record of
    the transfer for the model's training metadata). ``rng`` initialises the new heads.
    """
    arrays, meta = checkpoint.load_contents(args.source)
    if meta is not None and meta.get("kind") == KIND:
        source = Model.from_file_contents(arrays, meta, args.source)
        _check_hidden(args, source.network.hidden)
        if args.categorical:
            raise OptionError(f"--categorical {args.categorical[0]}: with --from the source model "
                              f"fixes each feature's encoding")
        if args.features is None and all(name in dataset.table.names and name not in dataset.tasks
                                          for name in source.features.names):
            dataset.feature_names = list(source.features.names)  # the CSV's other columns: unused
        _check_feature_names(dataset, source.features, args.source)
        kept = list(source.tasks) if args.keep_heads else []
        model = _with_new_tasks(source, dataset, kept, rng=rng)
    else:
        network = _bare_network(arrays, meta, args.source)
        _check_hidden(args, network.hidden)
        if args.keep_heads:
            raise OptionError(f"--keep-heads: {args.source} has no task metadata (classes, target "
                              f"scaling); only a model written by tinymtl.train or tinymtl.export "
                              f"can keep its heads")
        features = _raw_features(args, dataset, network.n_inputs)
        new = {name: _head_for(task) for name, task in dataset.tasks.items()}
        model, kept = Model(network.with_heads(new, rng=rng, weighting="fixed"), features,
                            dataset.tasks), []
    unlabelled = [name for name in kept if name not in dataset.tasks]
    freeze = (["trunk"] if args.freeze_trunk else []) + unlabelled  # they keep their predictions
    record = {"from": str(args.source), "trunk": "frozen" if args.freeze_trunk else "fine-tuned",
              "trunk_lr": args.trunk_lr, "kept_heads": kept}
    return model, {"freeze": freeze, "trunk_lr": args.trunk_lr}, record


def targets_for(model, dataset_targets, n_rows):
    """The network's targets for every head: kept heads that are not in the data get no labels
    (class -1, value NaN), so they contribute no loss and no gradient."""

    targets = dict(dataset_targets)
    for name, task in model.tasks.items():
        if name not in targets:
            targets[name] = (np.full(n_rows, -1, np.int64) if task.kind == "classify"
                             else np.full(n_rows, np.nan))
    return {name: targets[name] for name in model.tasks}


# ------------------------------------------------------------------------------------------------
# Helpers


def _head_for(task):
    return Classify(len(task.classes)) if task.kind == "classify" else Regress(1)


def _check_hidden(args, source_hidden):
    if args.hidden is not None and tuple(args.hidden) != tuple(source_hidden):
        raise OptionError(f"--hidden {','.join(map(str, args.hidden)) or 'none'}: with --from the "
                          f"hidden layers are the source trunk's "
                          f"({','.join(map(str, source_hidden)) or 'none'}); leave --hidden out")


def _check_feature_names(dataset, features, source):
    """DataError listing the missing and unexpected columns unless the data's feature columns
    are the source's (in any order)."""
    missing = [name for name in features.names if name not in dataset.feature_names]
    unexpected = [name for name in dataset.feature_names if name not in features.names]
    if missing or unexpected:
        hint = " (choose the columns with --features)" if unexpected else ""
        raise DataError(f"{dataset.table.source}: the feature columns do not match the trunk of "
                        f"{source} ({', '.join(features.names)}): missing "
                        f"[{', '.join(missing)}], unexpected [{', '.join(unexpected)}]{hint}")


def _with_new_tasks(source, dataset, kept, *, rng):
    """A Model with the source's trunk, features and the heads named in ``kept``, plus a fresh
    head for every target of ``dataset`` that is not a kept head."""
    for name in kept:
        if name in dataset.tasks:
            _check_same_task(name, source.tasks[name], dataset.tasks[name], dataset.table.source)
    new = {name: _head_for(task) for name, task in dataset.tasks.items() if name not in kept}
    # fixed weighting, whatever the source trained with: train's rebalanced() then weighs the
    # tasks as this run asks
    network = source.network.with_heads(new, keep=kept, rng=rng, weighting="fixed")
    tasks = {name: source.tasks[name] if name in kept else dataset.tasks[name]
             for name in network.heads}
    return Model(network, source.features, tasks)


def _check_same_task(name, old, new, where):
    """A kept head trained on new labels must be the same kind of task with the same classes."""
    if old.kind != new.kind or (isinstance(old, ClassTarget) and old.classes != new.classes):
        def describe(task):
            return f"classes {task.classes}" if task.kind == "classify" else "regress"
        raise DataError(f"{where}: target {name} does not match the kept head {name} of the "
                        f"source model ({describe(new)} here, {describe(old)} there); "
                        f"rename the column or leave out --keep-heads")


def _bare_network(arrays, meta, source):
    """The network of a file without preprocessing metadata: a tinymtl network file (its heads
    as described) or a PyTorch safetensors file (its trunk only: ``trunk.{i}.weight/bias``)."""
    if meta is not None:
        if not isinstance(meta.get("network"), dict):
            raise CheckpointError(f"{source}: not a tinymtl model file (no network description)")
        return checkpoint.network_from_arrays(meta["network"], arrays, source)
    trunk = {name: a for name, a in arrays.items() if name.startswith("trunk.")}
    others = [name for name in arrays if not name.startswith(("trunk.", "heads."))]
    if others or not trunk:
        found = sorted(_torch_name(name) for name in arrays)
        raise CheckpointError(f"{source}: expected tensors trunk.{{i}}.weight and trunk.{{i}}.bias "
                              f"(and heads.{{task}}.*), found {', '.join(found) or 'none'}")
    depth = 0
    while f"trunk.{depth}.W" in trunk:  # a 2-d trunk.{depth}.weight, transposed to (n_in, n_out)
        depth += 1
    if depth == 0:
        raise CheckpointError(f"{source}: no 2-d tensor trunk.0.weight (the first trunk layer); "
                              f"found {', '.join(sorted(_torch_name(name) for name in trunk))}")
    widths = [trunk["trunk.0.W"].shape[0]]  # n_inputs, then the width of every layer
    for i in range(depth):
        W = trunk[f"trunk.{i}.W"]
        if W.shape[0] != widths[-1]:
            raise CheckpointError(f"{source}: tensor trunk.{i}.weight has shape {W.shape[::-1]}, "
                                  f"expected (n_out, {widths[-1]})")
        widths.append(W.shape[1])
    dtype = "float64" if all(a.dtype.name == "float64" for a in trunk.values()) else "float32"
    # One placeholder head: the caller replaces every head with with_heads.
    network = MultiTaskNet(widths[0], widths[1:], {"placeholder": Regress(1)}, dtype=dtype)
    names = [name for name in network.parameters() if name.startswith("trunk.")]
    checkpoint.set_parameters(network, trunk, source, names=names)  # names every missing or odd tensor
    return network


def _torch_name(name):
    """The file's own name of an array renamed by ``checkpoint.from_torch_layout``."""
    for short, full in ((".W", ".weight"), (".b", ".bias")):
        if name.endswith(short):
            return name[:-len(short)] + full
    return name


def _raw_features(args, dataset, n_inputs):
    """For a source without feature names: --features, in the trunk's input order, fed as they are."""
    if args.features is None:
        raise OptionError(f"{args.source} holds no feature names or preprocessing (it was not "
                          f"written by tinymtl.train or tinymtl.export): name the trunk's "
                          f"{n_inputs} input columns, in order, with --features")
    if args.categorical:
        raise OptionError(f"--categorical {args.categorical[0]}: {args.source} has no category "
                          f"lists; its inputs must be numeric columns")
    if len(dataset.feature_names) != n_inputs:
        raise DataError(f"--features names {len(dataset.feature_names)} columns, but the trunk of "
                        f"{args.source} takes {n_inputs} inputs")
    return Features([NumericFeature(name, 0.0, 1.0) for name in dataset.feature_names])
