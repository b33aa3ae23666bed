"""The command-line model: a MultiTaskNet plus the preprocessing that turns CSV columns into its
inputs and its outputs back into the user's classes and units.

A model file is one ``.npz`` (``checkpoint.save_npz``): the network's parameters under their
``parameters()`` names and a JSON ``__meta__`` entry:

    {"format": 1, "kind": "tinymtl.model",
     "network":  {"n_inputs", "hidden", "heads" (with class weights), "dtype", "seed",
                  "loss_weights", "weighting": {"method", "options", "weights"}},
     "features": [{"name", "kind": "numeric", "mean", "scale"}
                  | {"name", "kind": "categorical", "categories": [...]}, ...],
     "tasks":    {name: {"kind": "classify", "classes": [...]}
                  | {"kind": "regress", "mean", "scale"}},
     "training": {options, seed, rows, source}, "metrics": {task: {...}}}

It loads with ``numpy.load(path, allow_pickle=False)``. ``save_safetensors`` writes the same model
as safetensors (``python -m tinymtl.export``): the tensors under PyTorch's names and layouts and
this metadata, as JSON, in the header's ``__metadata__["tinymtl"]``; ``load`` reads either.
"""

import json

import numpy as np

from . import checkpoint, metrics
from .data import Features, target_from_meta
from .errors import CheckpointError, DataError
from .heads import Classify, Regress
from .network import MultiTaskNet

KIND = "tinymtl.model"


class Model:
    """A network with its features (inputs) and tasks (targets), keyed by task name."""

    def __init__(self, network, features, tasks, *, training=None, metrics=None):
        self.network, self.features, self.tasks = network, features, dict(tasks)
        self.training, self.metrics = dict(training or {}), dict(metrics or {})

    @classmethod
    def build(cls, features, tasks, *, hidden, rng, dtype=np.float32, class_weights=None,
              loss_weights=None, weighting="fixed", weighting_options=None):
        """A fresh network for ``features`` (Features) and ``tasks`` ({name: target}).

        ``class_weights`` ({task: one weight per class}), ``loss_weights``, ``weighting`` and
        ``weighting_options`` go to the heads and the network as they are.
        """
        class_weights = class_weights or {}
        heads = {name: (Classify(len(t.classes), class_weights.get(name)) if t.kind == "classify"
                        else Regress(1))
                 for name, t in tasks.items()}
        network = MultiTaskNet(features.n_inputs, hidden, heads, rng=rng, dtype=dtype,
                               loss_weights=loss_weights, weighting=weighting,
                               weighting_options=weighting_options)
        return cls(network, features, tasks)

    # ----------------------------------------------------------------------------------------
    # Data in, predictions out

    def inputs(self, table):
        """Table -> X (n_rows, n_inputs) as the network sees it (standardised, one-hot)."""
        return self.features.encode(table, self.network.dtype)

    def labels(self, table, names=None):
        """{task: labels in the user's terms}: class indices (-1 missing), values (NaN missing)."""
        return {name: self.tasks[name].encode(table) for name in (names or self.tasks)}

    def targets(self, labels):
        """The network's targets from ``labels``: regression values standardised."""
        return {name: (self.tasks[name].standardise(y) if self.tasks[name].kind == "regress" else y)
                for name, y in labels.items()}

    def check_targets_fit(self, table, targets):
        """Raise DataError naming the cell (file, line, column) of ``table`` whose regression
        target, as ``targets()`` gave it, the network's dtype cannot hold (the network itself
        could name only the task)."""
        for name, t in targets.items():
            if self.tasks[name].kind == "regress":
                self.tasks[name].check_fits(table, t, self.network.dtype)

    def predict(self, X, where=None):
        """X (n, n_inputs) -> {task: probabilities (n, n_classes) or values (n,) in user units}.

        An input far beyond the training data can overflow the network, whose outputs are then
        inf or NaN. With ``where`` (row index -> "file: line N", such as ``Table.where``) that is
        a DataError naming the first such row; without it the outputs are returned as they are.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, not warned about
            out = {name: (self.tasks[name].unstandardise(y[:, 0])
                          if self.tasks[name].kind == "regress" else y)
                   for name, y in self.network.predict(X).items()}
        if where is not None:
            for name, y in out.items():
                bad = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
                if bad.any():
                    row = int(np.argmax(bad))
                    raise DataError(f"{where(row)}: the {name} output is not finite (inf or NaN): "
                                    f"{self._far_input(X[row])}")
        return out

    def _far_input(self, x):
        """Which input of the encoded row ``x`` (n_inputs,) lies farthest from the training data."""
        farthest, offset = None, 0
        for column in self.features.columns:
            if column.kind == "numeric" and (farthest is None or abs(x[offset]) > farthest[1]):
                farthest = (column.name, abs(float(x[offset])))
            offset += column.width
        if farthest is None or not farthest[1] > 10:
            return "the inputs drive the network beyond the range of its numbers"
        return (f"column {farthest[0]!r} is {farthest[1]:.3g} training standard deviations from "
                f"its training mean, far beyond the data the model was trained on")

    def evaluate(self, X, labels, where=None):
        """{task: metrics} for the tasks in ``labels`` ({task: labels as from ``labels``});
        ``where``: see ``predict``."""
        predictions = self.predict(X, where)
        results = {}
        for name, y in labels.items():
            if self.tasks[name].kind == "classify":
                results[name] = metrics.classification_metrics(y, predictions[name])
            else:
                results[name] = metrics.regression_metrics(y, predictions[name])
        return results

    # ----------------------------------------------------------------------------------------
    # Saving and loading

    def to_file_contents(self):
        """(arrays, meta) as ``save`` writes them."""
        meta = {"kind": KIND, "network": checkpoint.network_meta(self.network),
                "features": self.features.to_meta(),
                "tasks": {name: t.to_meta() for name, t in self.tasks.items()},
                "training": self.training, "metrics": self.metrics}
        return {name: p.copy() for name, p in self.network.parameters().items()}, meta

    @classmethod
    def from_file_contents(cls, arrays, meta, source):
        """The inverse of ``to_file_contents``; CheckpointError naming ``source`` if it is not
        a command-line model or does not hold together."""
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{source}: not a tinymtl command-line model (kind "
                                  f"{meta.get('kind')!r}, expected {KIND!r})")
        description = checkpoint.meta_field(meta, "network", source, "", "an object", _object)
        network = checkpoint.network_from_arrays(description, arrays, source)
        features = Features.from_meta(_checked_features(meta, source))
        tasks = {name: target_from_meta(name, entry)
                 for name, entry in _checked_tasks(meta, source).items()}
        training = checkpoint.meta_field(meta, "training", source, "", "an object, or null",
                                         _object_or_null, default=None)
        metrics = checkpoint.meta_field(meta, "metrics", source, "", "an object, or null",
                                        _object_or_null, default=None)
        if features.n_inputs != network.n_inputs or list(tasks) != list(network.heads):
            raise CheckpointError(f"{source}: the features ({features.n_inputs} inputs) or tasks "
                                  f"({list(tasks)}) do not match the network ({network.n_inputs} "
                                  f"inputs, heads {list(network.heads)})")
        for name, task in tasks.items():
            expected = len(task.classes) if task.kind == "classify" else 1
            head = network.heads[name]
            if head.kind != task.kind or head.n_outputs != expected:
                raise CheckpointError(f"{source}: task {name} is {task.kind} with {expected} "
                                      f"outputs, but its head is {head.kind} with {head.n_outputs}")
        return cls(network, features, tasks, training=training, metrics=metrics)

    def reloaded(self):
        """A copy made exactly as ``load`` would make it from the saved file, without the disk:
        the arrays are copied and the metadata goes through JSON."""
        arrays, meta = self.to_file_contents()
        return Model.from_file_contents(arrays, json.loads(json.dumps(meta)), "model")

    def save(self, path):
        """Write the model to ``path`` atomically: an existing file is replaced whole or kept.
        npz, or safetensors for a name ending in ``.safetensors`` (any case), as
        ``MultiTaskNet.save``."""
        if str(path).lower().endswith(".safetensors"):
            self.save_safetensors(path)
            return
        arrays, meta = self.to_file_contents()
        checkpoint.save_npz(path, arrays, meta)

    def save_safetensors(self, path):
        """Write the model as safetensors (PyTorch's tensor names and layouts, see
        ``checkpoint``), the metadata in the header's ``__metadata__["tinymtl"]``; atomically."""
        _, meta = self.to_file_contents()
        checkpoint.save_safetensors(self.network, path, meta)

    @classmethod
    def load(cls, path):
        """Load a model written by ``save`` or ``save_safetensors`` (the file's content decides)."""
        arrays, meta = checkpoint.load_contents(path)
        if meta is None:
            raise CheckpointError(f"{path}: a safetensors file without tinymtl metadata, not a "
                                  f"model written by tinymtl.train or tinymtl.export")
        return cls.from_file_contents(arrays, meta, path)


# ------------------------------------------------------------------------------------------------
# Checking the preprocessing metadata (the module docstring's "features" and "tasks") field by
# field, before ``Features.from_meta`` and ``target_from_meta`` read it


def _object(value):
    return isinstance(value, dict)


def _object_or_null(value):
    return value is None or isinstance(value, dict)


def _string(value):
    return isinstance(value, str)


def _positive(value):
    return checkpoint.is_finite_number(value) and value > 0


def _checked_features(meta, source):
    """meta["features"], every entry checked; CheckpointError naming the field otherwise."""
    field = checkpoint.meta_field
    entries = checkpoint.meta_list(meta, "features", source, "", 'an object {"name", "kind", ...}',
                                   _object, min_length=1)
    names = set()
    for i, entry in enumerate(entries):
        path = f"features[{i}]"
        name = field(entry, "name", source, path, "a non-empty string",
                     lambda v: isinstance(v, str) and v != "")
        if name in names:
            raise checkpoint.invalid_meta(source, f"{path}.name", f"is {checkpoint.shown(name)} "
                                                                  f"again; feature names must differ")
        names.add(name)
        kind = field(entry, "kind", source, path, '"numeric" or "categorical"',
                     lambda v: v in ("numeric", "categorical"))
        if kind == "numeric":
            field(entry, "mean", source, path, "a finite number", checkpoint.is_finite_number)
            field(entry, "scale", source, path, "a finite number > 0", _positive)
        else:
            checkpoint.meta_list(entry, "categories", source, path, "a string", _string,
                                 min_length=1, distinct=True)
    return entries


def _checked_tasks(meta, source):
    """meta["tasks"], every entry checked; CheckpointError naming the field otherwise."""
    field = checkpoint.meta_field
    entries = field(meta, "tasks", source, "", "an object of task name -> task, not empty",
                    lambda v: _object(v) and len(v) > 0)
    for name, entry in entries.items():
        path = f"tasks.{name}"
        if not isinstance(entry, dict):
            raise checkpoint.invalid_meta(source, path, f"is {checkpoint.shown(entry)}, expected "
                                                        f'an object {{"kind", ...}}')
        kind = field(entry, "kind", source, path, '"classify" or "regress"',
                     lambda v: v in ("classify", "regress"))
        if kind == "classify":
            checkpoint.meta_list(entry, "classes", source, path, "a string", _string,
                                 min_length=2, distinct=True)
        else:
            field(entry, "mean", source, path, "a finite number", checkpoint.is_finite_number)
            field(entry, "scale", source, path, "a finite number > 0", _positive)
    return entries
