"""CSV data for the command line: reading, column typing, encoding, standardisation and splits.

A CSV file becomes a ``Table``: its header names and every cell as stripped text, with the
physical line each row came from, so that any error can name the file, line, column and value.
Nothing is converted until a column's role is known:

- a *numeric* feature column is standardised, ``(x - mean) / scale``, with the training split's
  statistics;
- a *categorical* feature column (text, or a numeric-looking column named by ``--categorical``)
  becomes one 0/1 input per category (one-hot), its categories stored with the model;
- a *classification* target becomes class indices, -1 where the cell is missing;
- a *regression* target becomes numbers, NaN where the cell is missing, standardised for training
  and unstandardised at prediction, so users see their own units.

Every conversion is vectorised over whole columns: preprocessing runs once, before training.
"""

import csv
import importlib.resources
import io
import math
from dataclasses import dataclass

import numpy as np

from .errors import DataError

MISSING = ("", "na", "n/a", "nan")  # a cell that holds one of these (any case) has no value


# ------------------------------------------------------------------------------------------------
# Reading


class Table:
    """A CSV file as text: ``names`` (n_columns,), ``cells`` (n_rows, n_columns) of stripped str,
    ``lines`` (n_rows,) the physical line of each row; ``source`` names the file in messages."""

    def __init__(self, source, names, cells, lines, *, unit="line"):
        self.source, self.names = str(source), list(names)
        self.cells, self.lines, self.unit = cells, np.asarray(lines, dtype=np.int64), unit
        self.n_rows = cells.shape[0]

    def where(self, row, name=None):
        """'file.csv: line 7, column "x"' for row index ``row`` (0-based, data rows only)."""
        place = f"{self.source}: {self.unit} {int(self.lines[row])}"
        return place if name is None else f'{place}, column "{name}"'

    def column(self, name):
        """The cells of column ``name`` (n_rows,) as str; DataError naming the columns if absent."""
        if name not in self.names:
            raise DataError(f'{self.source}: no column "{name}"; the columns are {", ".join(self.names)}')
        return self.cells[:, self.names.index(name)]

    def take(self, rows):
        """A Table of the rows with indices ``rows``, keeping their line numbers."""
        return Table(self.source, self.names, self.cells[rows], self.lines[rows], unit=self.unit)


def read_csv(path):
    """Read a comma-separated file with a header row into a Table; DataError if unusable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return parse_csv(f, path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None


def read_bundled(name="iris.csv"):
    """Read a CSV file shipped in ``tinymtl/data`` (the Iris data by default)."""
    text = importlib.resources.files("tinymtl").joinpath("data", name).read_text(encoding="utf-8")
    return parse_csv(io.StringIO(text, newline=""), f"bundled {name}")


def parse_csv(lines, source):
    """Parse CSV text (an iterable of lines) with a header row into a Table.

    Blank lines are skipped; every other row must have as many fields as the header.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise DataError(f"{source}: the file is empty; expected a header row of column names")
        names = [cell.strip() for cell in header]
        for i, name in enumerate(names):
            if not name:
                raise DataError(f"{source}: line {reader.line_num}: column {i + 1} of the header has no name")
            if name in names[:i]:
                raise DataError(f'{source}: line {reader.line_num}: column name "{name}" appears twice')
        rows, lines_of_rows = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(names):
                raise DataError(f"{source}: line {reader.line_num}: {len(row)} fields, expected "
                                f"{len(names)} as in the header ({','.join(names)})")
            rows.append(row)
            lines_of_rows.append(reader.line_num)
    except csv.Error as err:
        raise DataError(f"{source}: line {reader.line_num}: malformed CSV ({err})") from None
    if not rows:
        raise DataError(f"{source}: the header has no data rows below it")
    cells = np.strings.strip(np.array(rows, dtype=str))  # (n_rows, n_columns)
    return Table(source, names, cells, lines_of_rows)


def table_from_values(values, names, source="command line"):
    """A Table from rows given as comma-separated strings, such as ``"5.1,3.5,1.4"``.

    Each string must hold one value per name; errors name the value row (1-based).
    """
    rows = []
    for i, text in enumerate(values, start=1):
        row = next(csv.reader([text]), [])
        if len(row) != len(names):
            raise DataError(f"{source}: value row {i} ({text!r}) has {len(row)} values, expected "
                            f"{len(names)}: {','.join(names)}")
        rows.append(row)
    if not rows:
        raise DataError(f"{source}: no value rows given")
    cells = np.strings.strip(np.array(rows, dtype=str).reshape(len(rows), len(names)))
    return Table(source, names, cells, range(1, len(rows) + 1), unit="value row")


# ------------------------------------------------------------------------------------------------
# Reading cells as numbers


def is_missing(cells):
    """Boolean mask (n,) of the cells that hold no value: empty, NA, N/A or NaN (any case)."""
    short = np.strings.str_len(cells) <= 3  # lower-casing every cell would be slow
    missing = np.zeros(cells.shape, dtype=bool)
    missing[short] = np.isin(np.strings.lower(cells[short]), MISSING)
    return missing


def _numeric_mask(cells):
    """Boolean mask (n,) of the cells that read as numbers (Python's float syntax)."""
    def reads(cell):
        try:
            float(cell)
        except ValueError:
            return False
        return True
    return np.fromiter((reads(c) for c in cells), dtype=bool, count=len(cells))


def to_numbers(cells):
    """cells (n,) of str -> (values (n,) float64, ok (n,) bool): NaN and False where unreadable."""
    try:
        return cells.astype(np.float64), np.ones(cells.shape, dtype=bool)  # the fast path
    except ValueError:
        ok = _numeric_mask(cells)
        values = np.full(cells.shape, np.nan)
        values[ok] = cells[ok].astype(np.float64)
        return values, ok


def numeric_column(table, name, *, what):
    """Column ``name`` as float64 (n_rows,), NaN for missing cells; ``what`` names its role.

    A cell that is neither a number nor missing, or is infinite, is a DataError naming its place.
    """
    cells = table.column(name)
    missing = is_missing(cells)
    values, ok = to_numbers(np.where(missing, "nan", cells))
    bad = ~ok
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{table.where(row, name)}: cannot read {str(cells[row])!r} as a number "
                        f"({what} columns must be numeric)")
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataError(f"{table.where(row, name)}: {str(cells[row])!r} is infinite; "
                        f"{what} values must be finite")
    return values


def _check_no_missing(table, name, cells):
    missing = is_missing(cells)
    if missing.any():
        row = int(np.argmax(missing))
        shown = str(cells[row]) or "an empty cell"
        raise DataError(f"{table.where(row, name)}: missing feature value ({shown}); "
                        f"only target columns may have missing cells")


def feature_kind(table, name, categorical=False):
    """('numeric', values (n,) float64) or ('categorical', None) for feature column ``name``.

    All cells numbers: numeric; none: categorical (text); a mix is taken for a typo and is a
    DataError naming the first cell of the minority kind, unless ``categorical`` is set.
    Missing and infinite values are DataErrors naming their place.
    """
    cells = table.column(name)
    _check_no_missing(table, name, cells)
    if categorical:
        return "categorical", None
    values, ok = to_numbers(cells)
    n_numbers = int(ok.sum())
    if n_numbers == len(cells):
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.argmax(infinite))
            raise DataError(f"{table.where(row, name)}: {str(cells[row])!r} is infinite; "
                            f"feature values must be finite")
        return "numeric", values
    if n_numbers == 0:
        return "categorical", None
    odd = ~ok if n_numbers * 2 >= len(cells) else ok
    row = int(np.argmax(odd))
    if n_numbers * 2 >= len(cells):
        problem = f"{str(cells[row])!r} is not a number, but {n_numbers} of {len(cells)} values are"
    else:
        problem = (f"{str(cells[row])!r} is a number, but {len(cells) - n_numbers} of "
                   f"{len(cells)} values are text")
    raise DataError(f"{table.where(row, name)}: {problem}; fix the value, or pass "
                    f"--categorical {name} to treat every value as a category")


# ------------------------------------------------------------------------------------------------
# Features: standardised numbers and one-hot categories


def mean_and_scale(values):
    """Statistics for standardising ``values`` (n,) float64: the mean and the standard deviation
    (1.0 for a constant column, so that it encodes as zeros instead of dividing by zero)."""
    mean, scale = float(values.mean()), float(values.std())
    return mean, (scale if scale > 0 and math.isfinite(scale) else 1.0)


def lookup(known, cells):
    """Position of each cell (n,) in the list ``known``, and a mask of the cells found in it."""
    order = np.argsort(np.array(known, dtype=str))
    ordered = np.array(known, dtype=str)[order]
    pos = np.searchsorted(ordered, cells)
    pos[pos == len(ordered)] = 0
    return order[pos], ordered[pos] == cells


@dataclass
class NumericFeature:
    """A numeric column, standardised: input = (x - mean) / scale."""

    name: str
    mean: float
    scale: float
    kind = "numeric"
    width = 1

    def encode(self, table, out):
        _check_no_missing(table, self.name, table.column(self.name))
        values = numeric_column(table, self.name, what="feature")
        out[:, 0] = (values - self.mean) / self.scale

    def to_meta(self):
        return {"name": self.name, "kind": self.kind, "mean": self.mean, "scale": self.scale}


@dataclass
class CategoricalFeature:
    """A text (or --categorical) column, one-hot encoded: one 0/1 input per category."""

    name: str
    categories: list  # sorted str
    kind = "categorical"

    @property
    def width(self):
        return len(self.categories)

    def encode(self, table, out):
        cells = table.column(self.name)
        _check_no_missing(table, self.name, cells)
        codes, found = lookup(self.categories, cells)  # (n,) index of each cell's category
        unknown = ~found
        if unknown.any():
            row = int(np.argmax(unknown))
            shown = ", ".join(self.categories[:20]) + (", ..." if len(self.categories) > 20 else "")
            raise DataError(f"{table.where(row, self.name)}: category {str(cells[row])!r} was not "
                            f"seen in training; known categories: {shown}")
        out[...] = 0
        out[np.arange(len(cells)), codes] = 1

    def to_meta(self):
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}


class Features:
    """The network's inputs: an ordered list of encoded feature columns."""

    def __init__(self, columns):
        self.columns = list(columns)
        self.names = [c.name for c in self.columns]
        self.n_inputs = sum(c.width for c in self.columns)

    @classmethod
    def fit(cls, table, names, *, categorical=(), rows=None):
        """Type each column in ``names``, and take statistics from ``rows`` (all rows if None)."""
        columns = []
        for name in names:
            kind, values = feature_kind(table, name, categorical=name in categorical)
            if kind == "numeric":
                mean, scale = mean_and_scale(values if rows is None else values[rows])
                columns.append(NumericFeature(name, mean, scale))
            else:
                columns.append(CategoricalFeature(name, sorted(set(table.column(name).tolist()))))
        if not columns:
            raise DataError(f"{table.source}: no feature columns left after the targets")
        return cls(columns)

    def encode(self, table, dtype=np.float32):
        """Table -> inputs X (n_rows, n_inputs) of ``dtype``, columns found by name."""
        out = np.empty((table.n_rows, self.n_inputs), dtype=np.float64)
        start = 0
        for column in self.columns:
            column.encode(table, out[:, start:start + column.width])
            start += column.width
        return out.astype(dtype)

    def to_meta(self):
        return [c.to_meta() for c in self.columns]

    @classmethod
    def from_meta(cls, entries):
        columns = []
        for entry in entries:
            if entry["kind"] == "numeric":
                columns.append(NumericFeature(str(entry["name"]), float(entry["mean"]),
                                              float(entry["scale"])))
            elif entry["kind"] == "categorical":
                columns.append(CategoricalFeature(str(entry["name"]),
                                                  [str(c) for c in entry["categories"]]))
            else:
                raise ValueError(f"unknown feature kind {entry['kind']!r}")
        return cls(columns)


# ------------------------------------------------------------------------------------------------
# Targets


@dataclass
class ClassTarget:
    """A classification target: class labels (text) <-> indices 0..n_classes-1, -1 = no label."""

    name: str
    classes: list
    kind = "classify"

    @classmethod
    def fit(cls, table, name):
        """Classes of column ``name``: sorted numerically if all are numbers, else as text."""
        cells = table.column(name)
        labels = sorted(set(cells[~is_missing(cells)].tolist()))
        try:
            labels.sort(key=float)
        except ValueError:
            pass
        if len(labels) < 2:
            found = f'only the class "{labels[0]}"' if labels else "no labels"
            raise DataError(f'{table.source}: classification target "{name}" has {found}; '
                            f"it needs at least two classes")
        return cls(name, labels)

    def encode(self, table):
        """Column -> class indices (n_rows,) int64, -1 where missing; DataError for a new class."""
        cells = table.column(self.name)
        missing = is_missing(cells)
        codes, found = lookup(self.classes, cells)
        unknown = ~found & ~missing
        if unknown.any():
            row = int(np.argmax(unknown))
            raise DataError(f"{table.where(row, self.name)}: class {str(cells[row])!r} was not "
                            f"seen in training; known classes: {', '.join(self.classes)}")
        return np.where(missing, -1, codes).astype(np.int64)

    def to_meta(self):
        return {"kind": self.kind, "classes": list(self.classes)}


@dataclass
class RegressTarget:
    """A regression target, standardised for training: t = (y - mean) / scale, NaN = no label."""

    name: str
    mean: float
    scale: float
    kind = "regress"

    @classmethod
    def fit(cls, table, name, rows=None, *, scale=True):
        """Statistics of column ``name`` over ``rows`` (all rows if None); with ``scale=False``
        the target is left in the user's units (mean 0, scale 1), as --no-target-scaling asks."""
        values = numeric_column(table, name, what="regression target")
        if rows is not None:
            values = values[rows]
        labelled = values[~np.isnan(values)]
        if labelled.size == 0:
            raise DataError(f'{table.source}: regression target "{name}" has no values '
                            f"{'in the training rows' if rows is not None else ''}".rstrip())
        if not scale:
            return cls(name, 0.0, 1.0)
        return cls(name, *mean_and_scale(labelled))

    def encode(self, table):
        """Column -> values (n_rows,) float64 in the user's units, NaN where missing."""
        return numeric_column(table, self.name, what="regression target")

    def standardise(self, values):
        return (values - self.mean) / self.scale

    def unstandardise(self, t):
        return t * self.scale + self.mean

    def to_meta(self):
        return {"kind": self.kind, "mean": self.mean, "scale": self.scale}


def target_from_meta(name, entry):
    if entry["kind"] == "classify":
        return ClassTarget(name, [str(c) for c in entry["classes"]])
    if entry["kind"] == "regress":
        return RegressTarget(name, float(entry["mean"]), float(entry["scale"]))
    raise ValueError(f"unknown task kind {entry['kind']!r}")


# ------------------------------------------------------------------------------------------------
# Splits


def split_rows(n_rows, val_fraction, *, rng, strata=None, source="the data"):
    """Indices (train, val), each sorted, with round(val_fraction * n_rows) validation rows.

    With ``strata`` (n_rows,) of class indices (-1 = no label), every class, and the unlabelled
    rows as one more group, gives its share to the validation split (largest remainders first),
    so the class proportions of both splits follow the data's.
    """
    n_val = round(val_fraction * n_rows)
    if n_val < 1 or n_rows - n_val < 1:
        raise DataError(f"{source}: too few rows ({n_rows}) for --val-fraction {val_fraction:g}: "
                        f"need at least one training and one validation row")
    if strata is None:
        strata = np.zeros(n_rows, dtype=np.int64)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    shares = np.array([val_fraction * len(g) for g in groups])
    counts = np.floor(shares).astype(np.int64)
    extra = n_val - int(counts.sum())
    by_remainder = np.argsort(-(shares - counts), kind="stable")
    counts[by_remainder[:extra]] += 1
    val = np.concatenate([rng.permutation(g)[:c] for g, c in zip(groups, counts)])
    is_val = np.zeros(n_rows, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def take_targets(targets, rows):
    """{task: array} -> the same rows of every task's targets."""
    return {name: t[rows] for name, t in targets.items()}


def fold_rows(n_rows, n_folds, *, rng, strata=None, source="the data"):
    """A list of ``n_folds`` (train, test) index pairs, each sorted: every row is a test row in
    exactly one fold (k-fold cross-validation).

    With ``strata`` (n_rows,) of class indices (-1 = no label), each class is dealt out over the
    folds in turn after a random shuffle, so every fold keeps the class proportions and the fold
    sizes differ by at most one.
    """
    if n_folds < 2 or n_folds > n_rows:
        raise DataError(f"{source}: cannot make {n_folds} folds of {n_rows} rows: need 2 to "
                        f"{n_rows} folds")
    if strata is None:
        strata = np.zeros(n_rows, dtype=np.int64)
    fold_of = np.empty(n_rows, dtype=np.int64)
    dealt = 0
    for s in np.unique(strata):
        group = rng.permutation(np.flatnonzero(strata == s))
        fold_of[group] = (dealt + np.arange(len(group))) % n_folds  # continue where the last class ended
        dealt += len(group)
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(n_folds)]
