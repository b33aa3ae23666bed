"""CSV data for the command line: reading, column typing, encoding, standardisation and splits.

A CSV file becomes a ``Table``: its header names and its columns, with the physical line each
row came from, so that any error can name the file, line, column and value. A file of numbers
only is parsed straight into float64 columns (``parse_numbers``, as fast as numpy.loadtxt or
faster); any other file is read with the csv module, every cell as stripped text (``parse_csv``).
Either way, the meaning of a column is decided by its role, the same on both paths:

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
import re
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .decimals import mostly_plain_numbers, parse_number_rows

MISSING = ("", "na", "n/a", "nan", "-nan", "+nan")  # a cell that holds one of these (any case)
# has no value; float() reads the signed NaNs too, so they must not pass as numbers
GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # "170,423", "-1,000.5": a
# number written with thousands separators, which float() cannot read
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")  # "1,5": a decimal comma ("1,500" could be either)
OTHER_DELIMITERS = {"\t": "tab", ";": "semicolon"}


# ------------------------------------------------------------------------------------------------
# Reading


class Table:
    """A CSV file by columns: ``names`` (n_columns,), ``lines`` (n_rows,) the physical line of each
    row, and ``source``, which names the file in messages.

    A column is held as stripped text (n_rows,) of str, or, when the reader parsed the whole file
    as numbers, as float64 (n_rows,) (NaN for a "nan" cell), its text read back from the file
    (``raw_text``, str or UTF-8 bytes) only if asked for: class labels and categories are text.
    """

    def __init__(self, source, names, lines, *, text=None, numbers=None, raw_text=None,
                 unit="line"):
        self.source, self.names, self.unit = str(source), list(names), unit
        self.lines = np.asarray(lines, dtype=np.int64)
        self.n_rows = len(self.lines)
        n = len(self.names)
        self._text = list(text) if text is not None else [None] * n
        self._numbers = list(numbers) if numbers is not None else [None] * n
        self._raw_text, self._raw_lines = raw_text, None  # the file, for numbers columns' text

    @classmethod
    def from_cells(cls, source, names, cells, lines, *, unit="line"):
        """A Table of text: ``cells`` (n_rows, n_columns) of stripped str."""
        return cls(source, names, lines, text=[cells[:, j] for j in range(cells.shape[1])],
                   unit=unit)

    def where(self, row, name=None):
        """'file.csv: line 7, column "x"' for row index ``row`` (0-based, data rows only)."""
        place = f"{self.source}: {self.unit} {int(self.lines[row])}"
        return place if name is None else f'{place}, column "{name}"'

    def _index(self, name):
        if name not in self.names:
            raise DataError(f'{self.source}: no column "{name}"; the columns are {", ".join(self.names)}')
        return self.names.index(name)

    def numbers(self, name):
        """Column ``name`` as float64 (n_rows,), read-only, if the reader parsed it; else None."""
        return self._numbers[self._index(name)]

    def column(self, name):
        """The cells of column ``name`` (n_rows,) as str; DataError naming the columns if absent."""
        j = self._index(name)
        if self._text[j] is None:  # a numbers column: its text, as the file spells it
            lines = self._physical_lines()
            self._text[j] = np.strings.strip(np.array(
                [lines[k - 1].split(",")[j] for k in self.lines.tolist()], dtype=str))
        return self._text[j]

    def cell(self, row, name):
        """The text of one cell, for messages."""
        j = self._index(name)
        if self._text[j] is None:
            return self._physical_lines()[int(self.lines[row]) - 1].split(",")[j].strip()
        return str(self._text[j][row])

    def _physical_lines(self):
        """Line k of the file is [k - 1] (a numbers table's file has no quotes and no lone \\r)."""
        if self._raw_lines is None:
            text = self._raw_text
            if isinstance(text, bytes):  # a numbers file, read as bytes: ASCII below its header
                text = text.decode("utf-8-sig")
            self._raw_lines = text.split("\n")
        return self._raw_lines

    @property
    def cells(self):
        """Every cell as text (n_rows, n_columns) of str."""
        return np.stack([self.column(name) for name in self.names], axis=1)

    def take(self, rows):
        """A Table of the rows with indices ``rows``, keeping their line numbers."""
        pick = lambda columns: [None if c is None else c[rows] for c in columns]
        return Table(self.source, self.names, self.lines[rows], text=pick(self._text),
                     numbers=pick(self._numbers), raw_text=self._raw_text, unit=self.unit)


def read_csv(path):
    """Read a comma-separated file with a header row into a Table; DataError if unusable."""
    try:
        with open(path, "rb") as f:
            data = f.read()  # bytes: a file of numbers is parsed without decoding it to text
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None
    table = parse_numbers(data, path)
    if table is not None:
        return table
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason})") from None
    return parse_csv(io.StringIO(text, newline=""), path)


def read_bundled(name="iris.csv"):
    """Read a CSV file shipped in ``tinymtl/data`` (the Iris data by default)."""
    text = importlib.resources.files("tinymtl").joinpath("data", name).read_text(encoding="utf-8")
    return parse_text(text, f"bundled {name}")


def parse_text(text, source):
    """Parse the text of a CSV file with a header row into a Table.

    A file of numbers only takes a fast path (``parse_numbers``); any other file, and any file the
    fast path does not accept, is read by ``parse_csv``, which also writes every error message.
    """
    table = parse_numbers(text, source)
    return table if table is not None else parse_csv(io.StringIO(text, newline=""), source)


def parse_csv(lines, source):
    """Parse CSV text (an iterable of lines) with a header row into a Table of text.

    Blank lines are skipped; every other row must have as many fields as the header.
    """
    header_text = []  # (line number, text) of the first line that is not blank: the header

    def remembered(lines):
        for number, line in enumerate(lines, start=1):
            if not header_text and line.strip():
                header_text.append((number, line))
            yield line

    # strict: a quote left open is an error, not a field that swallows the rest of the file
    reader = csv.reader(remembered(lines), strict=True)
    first_line = 1  # of the record being read: a quoted field may span lines
    rows, lines_of_rows = [], []
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            first_line = reader.line_num + 1
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise DataError(f"{source}: the file is empty; expected a header row of column names")
        names = [cell.strip() for cell in header]
        for i, name in enumerate(names):
            if not name:
                raise DataError(f"{source}: line {reader.line_num}: column {i + 1} of the header has no name")
            if name in names[:i]:
                raise DataError(f'{source}: line {reader.line_num}: column name "{name}" appears twice')
        header_line = reader.line_num
        first_line = header_line + 1  # of the next record: a quoted field may span lines
        for row in reader:
            start, first_line = first_line, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if not rows:
                _check_delimiter(names, row, f"{source}: line {header_line}")
            if len(row) != len(names):
                runs_on = (f"; its quoted field runs on to line {reader.line_num} (a quote left "
                           f"open?)" if reader.line_num > start else "")
                raise DataError(f"{source}: line {start}: {len(row)} fields, expected "
                                f"{len(names)} as in the header ({','.join(names)}){runs_on}")
            rows.append(row)
            lines_of_rows.append(start)
    except csv.Error as err:
        number, text = header_text[0] if header_text else (1, "")
        early = not rows  # in the header or the first row: where another delimiter shows
        for delimiter, word in OTHER_DELIMITERS.items():  # quoted cells, split by ; or a tab
            if early and "," not in text and delimiter in text:
                raise _delimiter_error(f"{source}: line {number}", word, "the header has no commas "
                                       f"but {_count(text.count(delimiter), word)}") from None
        if reader.line_num > first_line:  # the record ran on over lines: a quote left open?
            raise DataError(f"{source}: line {first_line}: malformed CSV ({err}) in a quoted field "
                            f"that runs on to line {reader.line_num}; is a quote left open?") from None
        raise DataError(f"{source}: line {reader.line_num}: malformed CSV ({err})") from None
    if not rows:
        raise DataError(f"{source}: the header has no data rows below it")
    cells = np.strings.strip(np.array(rows, dtype=str))  # (n_rows, n_columns)
    return Table.from_cells(source, names, cells, lines_of_rows)


def _check_delimiter(names, first_row, where):
    """DataError if the header is one column that a tab or a semicolon splits into several, and
    splits the first data row (``first_row``, its fields) into as many: another delimiter."""
    if len(names) != 1:
        return
    for delimiter, word in OTHER_DELIMITERS.items():
        n_fields = len(names[0].split(delimiter))
        if n_fields > 1 and len(",".join(first_row).split(delimiter)) == n_fields:
            raise _delimiter_error(where, word, f"the header {names[0]!r} has no commas but "
                                                f"{_count(n_fields - 1, word)}")


def _count(n, word):
    return f"{n} {word}{'s' * (n != 1)}"


def _delimiter_error(where, word, evidence):
    """The DataError for a file that looks ``word``-separated (tab, semicolon)."""
    return DataError(f"{where}: {evidence}: the file looks {word}-separated; tinymtl reads "
                     f"comma-separated files, so save it with commas between the columns")


# ------------------------------------------------------------------------------------------------
# The fast path: a file of numbers, parsed without the csv module (see tinymtl.decimals)

def parse_numbers(text, source):
    """A Table of float64 columns if ``text`` is a header line and rows of numbers, else None.

    ``text`` is str, or a file's bytes (UTF-8; a byte order mark at the start is skipped). The
    header must be the first line and every row must have its number of fields; no cell may be
    empty, missing (except "nan") or quoted. Rows become lines 2, 3, ... (blank lines are
    skipped and counted, as by ``parse_csv``). Values equal ``float(cell)`` bit for bit.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    start = 3 if data.startswith(b"\xef\xbb\xbf") and not isinstance(text, str) else 0  # the BOM
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None  # old Mac line ends: the csv path
    header_end = data.find(b"\n", start)
    row_end = data.find(b"\n", header_end + 1) if header_end >= 0 else -1
    try:
        header = data[start:header_end].decode("utf-8")
        first_row = data[header_end + 1:row_end if row_end >= 0 else len(data)].decode("ascii")
    except UnicodeDecodeError:
        return None
    if header_end < 0 or not header.strip() or '"' in first_row or not _all_numbers(first_row.split(",")):
        return None  # a text column, seen in the first row, costs no parse of the rest
    try:
        names = [name.strip() for name in next(csv.reader([header], strict=True))]
    except csv.Error:
        return None  # a quoted header over several lines
    body_start = header_end + 1  # the body is not copied out of ``data``: it can be 100 MB
    if not all(names) or len(set(names)) != len(names) or data.find(b'"', body_start) >= 0:
        return None  # the csv path says what is wrong, and reads quotes
    if len(names) == 1 and any(d in names[0] for d in OTHER_DELIMITERS):
        return None  # perhaps another delimiter: the csv path says so
    # Plain numbers in the first row (or nearly all): parse them here; else leave them to loadtxt.
    values = (parse_number_rows(data, body_start, len(names))
              if mostly_plain_numbers(first_row.split(",")) else None)
    if values is not None:
        lines = np.arange(2, len(values) + 2)
    else:
        try:
            values, lines = _parse_rows_with_loadtxt(data[body_start:].decode("utf-8"), len(names))
        except UnicodeDecodeError:
            return None
        if values is None:
            return None
    values.flags.writeable = False  # its columns are handed out as they are
    return Table(source, names, lines, numbers=[values[:, j] for j in range(len(names))],
                 raw_text=data)


def _all_numbers(cells):
    """Whether float() reads every cell (around spaces too)."""
    try:
        for cell in cells:
            float(cell)
    except ValueError:
        return False
    return True


def _parse_rows_with_loadtxt(body, n_columns):
    """Rows of numbers in any form strtod reads (spaces, exponents, nan, inf, blank lines) ->
    (values (n_rows, n_columns) float64, physical lines (n_rows,)), or (None, None)."""
    rows = body.split("\n")  # loadtxt reads a list of lines faster than a StringIO of them
    while rows and not rows[-1]:
        rows.pop()  # the newline at the end of the file
    if any(not row or row[0] in " \t" for row in rows):  # blank lines, or lines that start with
        lines = [k for k, row in enumerate(rows, start=2) if row.strip()]  # spaces: skipped, and
        rows = [rows[k - 2] for k in lines]                                # counted
    else:  # one row a line
        lines = range(2, len(rows) + 2)
    try:
        values = np.loadtxt(rows, delimiter=",", comments=None, quotechar=None, ndmin=2,
                            dtype=np.float64)
    except ValueError:
        return None, None
    if values.shape != (len(lines), n_columns):
        return None, None
    if np.isnan(values).any() and re.search(r"[+-]\s*nan", body, re.IGNORECASE):
        return None, None  # "-nan" is not a missing cell for the csv path: keep its reading
    return values, np.array(lines)


def table_from_values(values, names, source="command line"):
    """A Table from rows given as comma-separated strings, such as ``"5.1,3.5,1.4"``.

    Each string must hold one value per name; errors name the value row (1-based).
    """
    rows = []
    for i, text in enumerate(values, start=1):
        row = next(csv.reader([text]), [])
        if len(row) != len(names):
            raise DataError(f"{source}: value row {i} ({text!r}) has {len(row)} "
                            f"value{'s' * (len(row) != 1)}, expected {len(names)}: {','.join(names)}")
        rows.append(row)
    if not rows:
        raise DataError(f"{source}: no value rows given")
    cells = np.strings.strip(np.array(rows, dtype=str).reshape(len(rows), len(names)))
    return Table.from_cells(source, names, cells, range(1, len(rows) + 1), unit="value row")


# ------------------------------------------------------------------------------------------------
# Reading cells as numbers


def is_missing(cells):
    """Boolean mask (n,) of the cells that hold no value: empty, NA, N/A or NaN (any case)."""
    short = np.strings.str_len(cells) <= 4  # lower-casing every cell would be slow
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


def _comma_masks(cells):
    """Boolean masks (n,) of the cells that are numbers written with thousands separators, and
    of those written with a decimal comma instead (a cell that could be either is grouped)."""
    grouped = np.strings.find(cells, ",") >= 0  # few text cells hold a comma: test only those
    decimal = grouped.copy()
    with_comma = cells[grouped].tolist()
    grouped[grouped] = [GROUPED_NUMBER.fullmatch(c) is not None for c in with_comma]
    decimal[decimal] = [DECIMAL_COMMA.fullmatch(c) is not None for c in with_comma]
    return grouped, decimal & ~grouped


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
    values = table.numbers(name)  # parsed with the file: NaN only where a cell says "nan"
    if values is None:
        cells = table.column(name)
        missing = is_missing(cells)
        values, ok = to_numbers(np.where(missing, "nan", cells))
        bad = ~ok
        if bad.any():
            row = int(np.argmax(bad))
            hint = ("; remove the thousands separators" if GROUPED_NUMBER.fullmatch(str(cells[row]))
                    else "")
            raise DataError(f"{table.where(row, name)}: cannot read {str(cells[row])!r} as a number "
                            f"({what} columns must be numeric){hint}")
    _check_finite(table, name, values, what)
    return values


def _check_finite(table, name, values, what):
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataError(f"{table.where(row, name)}: {table.cell(row, name)!r} is infinite; "
                        f"{what} values must be finite")


def _check_no_missing(table, name):
    values = table.numbers(name)
    missing = np.isnan(values) if values is not None else is_missing(table.column(name))
    if missing.any():
        row = int(np.argmax(missing))
        shown = table.cell(row, name) or "an empty cell"
        raise DataError(f"{table.where(row, name)}: missing feature value ({shown}); "
                        f"only target columns may have missing cells")


def feature_kind(table, name, categorical=False):
    """('numeric', values (n,) float64) or ('categorical', None) for feature column ``name``.

    All cells numbers: numeric; none: categorical (text); a mix is taken for a typo and is a
    DataError naming the first cell of the minority kind, unless ``categorical`` is set. A number
    written with thousands separators ("170,423") counts as a number here, but cannot be read as
    one: a column of such numbers (and plain ones) is a DataError naming the first, since one-hot
    encoding it would silently turn amounts into categories; so is a column of numbers written
    with a decimal comma ("1,5"). Missing and infinite values are DataErrors naming their place.
    """
    _check_no_missing(table, name)
    if categorical:
        return "categorical", None
    values = table.numbers(name)
    if values is not None:
        _check_finite(table, name, values, "feature")
        return "numeric", values
    cells = table.column(name)
    values, ok = to_numbers(cells)
    if ok.all():
        _check_finite(table, name, values, "feature")
        return "numeric", values
    grouped, decimal = _comma_masks(cells)
    if (ok | grouped | decimal).all() and decimal.any():  # numbers, in a decimal-comma locale
        row = int(np.argmax(decimal))
        raise DataError(f"{table.where(row, name)}: {str(cells[row])!r} looks like a number with a "
                        f"decimal comma ({int(decimal.sum())} of {len(cells)} values); write "
                        f"decimals with a point, or pass --categorical {name} if the values are "
                        f"categories")
    numberlike = ok | grouped
    n_numbers = int(numberlike.sum())
    if n_numbers == len(cells):  # numbers, some or all with thousands separators
        row = int(np.argmax(grouped))
        raise DataError(f"{table.where(row, name)}: {str(cells[row])!r} looks like a number with "
                        f"thousands separators ({int(grouped.sum())} of {len(cells)} values have "
                        f"them); remove the separators, or pass --categorical {name} if the values "
                        f"are categories")
    if n_numbers == 0:
        return "categorical", None
    odd = ~numberlike if n_numbers * 2 >= len(cells) else numberlike
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
    largest = float(np.abs(values).max()) if values.size else 0.0
    unit = largest if 0 < largest < math.inf else 1.0  # so that sums of squares cannot overflow
    mean, scale = float((values / unit).mean()) * unit, float((values / unit).std()) * unit
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
        _check_no_missing(table, self.name)
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
        _check_no_missing(table, self.name)
        cells = table.column(self.name)
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
        start, owner = 0, []  # owner[j]: the column that input j encodes
        for column in self.columns:
            column.encode(table, out[:, start:start + column.width])
            start += column.width
            owner += [column.name] * column.width
        with np.errstate(over="ignore"):
            encoded = out.astype(dtype)
        if not np.isfinite(encoded).all():
            row, j = np.argwhere(~np.isfinite(encoded))[0]
            raise DataError(f"{table.where(row, owner[j])}: a value too large to use "
                            f"(standardised, it is {out[row, j]:.3g}, beyond {np.dtype(dtype).name})")
        return encoded

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

    def check_fits(self, table, t, dtype):
        """DataError naming the cell (file, line, column) of the first network target in ``t``
        ((n_rows,) float64, ``standardise`` of this column of ``table``) that ``dtype`` cannot
        hold: converted to float32, 1e39 becomes inf."""
        with np.errstate(over="ignore"):  # the overflow is what we look for
            beyond = np.isinf(t.astype(dtype))  # as the network will convert it; NaN stays NaN
        if not beyond.any():
            return
        row = int(np.argmax(beyond))
        where, cell, kind = table.where(row, self.name), table.cell(row, self.name), np.dtype(dtype)
        if self.mean == 0 and self.scale == 1:  # not standardised (--no-target-scaling)
            raise DataError(f"{where}: {cell!r} is beyond the range of {kind.name} "
                            f"({np.finfo(kind).max:.3g}), the network's dtype; rescale the column "
                            f"or leave target scaling on")
        raise DataError(f"{where}: a value too large to use ({cell!r}; standardised, it is "
                        f"{t[row]:.3g}, beyond {kind.name})")

    def unstandardise(self, t):
        """Network outputs -> the user's units, of the outputs' dtype; in float64 where the
        units lie beyond that dtype's range (a target in the 1e40s overflows float32)."""
        t = np.asarray(t)
        values = t.astype(np.float64) * self.scale + self.mean
        fits = np.all(np.abs(values[np.isfinite(values)]) <= np.finfo(t.dtype).max)
        return values.astype(t.dtype) if fits else values

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
