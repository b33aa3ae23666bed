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

MISSING = ("", "na", "n/a", "nan", "-nan", "+nan")  # a cell that holds one of these (any case)
# has no value; float() reads the signed NaNs too, so they must not pass as numbers


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
    return Table.from_cells(source, names, cells, lines_of_rows)


# ------------------------------------------------------------------------------------------------
# The fast path: a file of numbers, parsed without the csv module
#
# Python's float() (used by the csv path) and numpy.loadtxt both parse each cell with C's
# correctly rounded strtod, about 150-300 ns a cell. Here NumPy parses a block of rows at a time,
# every cell at once, and gets the very same doubles, bit for bit. A cell [+-]digits[.digits]
# [(e|E)[+-]digits] is an integer w (its digits, without the point) times 10**q (q = its exponent
# minus the number of digits after the point); the double to return is w * 10**q rounded once,
# to nearest (ties to even), as strtod rounds.
#
# 1. Find the cells. Every byte that is not a digit (sign, point, e, comma, newline) is a
#    "token"; in a well-formed cell they come in the order sign, point, e, exponent sign, each
#    at most once, a sign first in the cell or right after the e (``_cell_layout``).
# 2. Read digits eight at a time: eight ASCII digits are one little-endian uint64, and three
#    multiply-shift-mask steps add them up in pairs, fours and eights (``_eight_digits``).
#    Up to 19 digits fit w in a uint64 (10**19 < 2**64). Of a longer number, w is its first 19
#    significant digits, and the value lies between w * 10**q and (w + 1) * 10**q: where both
#    round to the same double, so does the value (``_leading_digits``).
# 3. Round w * 10**q to a double:
#    - Clinger's fast path: if w <= 2**53 and |q| <= 22, w and 10**|q| are exact doubles, and one
#      IEEE multiplication or division rounds their exact product or quotient once: exact.
#    - Otherwise the Eisel-Lemire algorithm (Lemire, "Number parsing at a gigabyte per second",
#      2021; Go's strconv, Rust's core and fast_float use it): 10**q = 5**q * 2**q, and a table
#      holds 5**q to 128 bits. w (shifted so its top bit is set) times that is 192 bits, of which
#      the top 64 (one 64x64 -> 128-bit product, done here with 32-bit halves), or in rare cases
#      the top 128 (a second product), fix the 54 leading bits of the true product: the 53 bits
#      of a double and the bit that says which way to round. The rest of the exponent, the
#      power of two, only shifts the result. Exactly halfway cases (q in [-4, 23], where 5**q
#      fits 64 bits) round to even. Mushtak and Lemire ("Fast number parsing without fallback",
#      2023) proved that for w < 2**64 the truncated table always rounds right; the original
#      paper's test for a product too close to call is kept all the same (such a cell goes to
#      float()).
# Cells of any other form (exponents of more than 8 digits, more than 31 leading zeros, nan, inf,
# spaces), and the rare long numbers within 10**q of a rounding boundary, go to float() one by
# one; if there are many, the whole file goes to loadtxt.

_POW10 = 10.0 ** np.arange(23)  # exact doubles
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")  # float() = strtod here
_OTHER_NUMBER = re.compile(  # as loadtxt reads them too; a signed nan is for the csv path
    r"[ \t]*(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)[ \t]*",
    re.IGNORECASE)
_BLOCK_BYTES = 196_608  # rows are parsed in blocks of about this many bytes: temporaries in cache


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
    # Plain numbers in the first row (or nearly all): parse them here; else leave them to loadtxt.
    values = (_parse_number_rows(data, body_start, len(names))
              if _mostly_plain_numbers(first_row.split(",")) else None)
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


def _mostly_plain_numbers(cells):
    """Whether every cell is a number that loadtxt reads, and at most 1 in 20 is not of the form
    [+-]digits[.digits][e[+-]digits], the form _parse_number_rows reads in bulk."""
    n_other = sum(not _PLAIN_NUMBER.fullmatch(cell) for cell in cells)
    return n_other <= len(cells) // 20 and all(_OTHER_NUMBER.fullmatch(cell) for cell in cells)


def _all_numbers(cells):
    """Whether float() reads every cell (around spaces too)."""
    try:
        for cell in cells:
            float(cell)
    except ValueError:
        return False
    return True


def _parse_number_rows(data, start, n_columns):
    """The rows of numbers in data[start:] (bytes) -> values (n_rows, n_columns) float64, or None
    if a row has another number of fields, a line is blank, a cell is not a number loadtxt
    reads (nan, inf and spaces are; a signed nan is not) or 1 cell in 20 is not plain."""
    # Each block allocates and frees a few MB of temporaries. glibc's malloc gives free memory at
    # the top of the heap back to the system once it exceeds its trim threshold (128 KB at first),
    # so every block would fault its pages in again: 200,000 page faults for a 100 MB file, a
    # third of the time. Freeing one 8 MB array (mmapped, being large) raises the threshold to
    # 16 MB for good (glibc's dynamic mmap threshold); elsewhere this line costs nothing.
    np.empty(8 << 20, dtype=np.uint8)
    blocks, n_cells, n_odd = [], 0, 0
    all_bytes = np.frombuffer(data, dtype=np.uint8)  # not a copy
    end = len(data)
    while end > start and data[end - 1] == ord("\n"):
        end -= 1  # blank lines at the end of the file, and the last newline
    while start < end:
        stop = (data.rfind(b"\n", start, min(start + _BLOCK_BYTES, end)) + 1
                or data.find(b"\n", start + _BLOCK_BYTES, end) + 1 or end)  # whole rows
        block = all_bytes[start:stop]
        if stop == end:  # the last row
            block = np.append(block, np.uint8(ord("\n")))
        parsed = _parse_number_block(block, n_columns)
        if parsed is None:
            return None
        values, odd, odd_spans = parsed
        n_cells, n_odd = n_cells + len(values), n_odd + len(odd)
        if n_odd > n_cells // 20:
            return None  # many cells of other forms: loadtxt is faster than float() one by one
        for i, (cell_start, cell_end) in zip(odd.tolist(), odd_spans.tolist()):
            cell = data[start + cell_start:start + cell_end].decode("latin-1")  # byte = character
            if not _OTHER_NUMBER.fullmatch(cell):
                return None  # an empty cell, text, "-nan"...: loadtxt or the csv path decides
            values[i] = float(cell)
        blocks.append(values)
        start = stop
    return np.concatenate(blocks).reshape(-1, n_columns) if blocks else None


# The order of the non-digit bytes ("tokens") in a cell; a sign right after an e is EXP_SIGN.
_SIGN, _POINT, _EXP, _EXP_SIGN, _SEPARATOR, _OTHER = range(6)
_TOKEN_RANK = np.full(256, _OTHER, dtype=np.int8)
_TOKEN_RANK[[ord("+"), ord("-")]] = _SIGN
_TOKEN_RANK[ord(".")] = _POINT
_TOKEN_RANK[[ord("e"), ord("E")]] = _EXP
_TOKEN_RANK[[ord(","), ord("\n")]] = _SEPARATOR
_PAD = 32  # bytes of "0" around a block, so that a cell has 32 bytes before and after it


def _parse_number_block(data, n_columns):
    """Whole rows of numbers, data (n_bytes,) uint8 ending in a newline -> (values (n_cells,)
    float64, odd (k,) int64 the cells left to float(), spans (k, 2) int64 their [first, end) in
    ``data``), or None if a row has another number of fields than ``n_columns``."""
    at = _cell_layout(data, n_columns)
    if at is None:
        return None
    odd = at.pop("odd")  # (n_cells,) bool
    padded = np.full(_PAD + len(data) + _PAD, ord("0"), dtype=np.uint8)  # so that every cell has
    padded[_PAD:-_PAD] = data                                             # 32 bytes around it
    at = {part: positions + _PAD for part, positions in at.items()}  # positions in ``padded``
    n_whole = at["point"] - at["digits"]                  # digits before the point (or the e)
    n_frac = np.maximum(at["exp"] - at["point"] - 1, 0)   # digits after it
    n_exp = np.maximum(at["end"] - at["exp_sign"] - 1, 0)
    odd |= (n_whole + n_frac == 0) | ((at["exp"] < at["end"]) & (n_exp == 0)) | (n_exp > 8)
    exponent = np.zeros(len(odd), dtype=np.int64)
    with_exp = np.flatnonzero(at["exp"] < at["end"])  # often none, or all
    if len(with_exp):
        e = _read_digits(padded, at["end"][with_exp], np.minimum(n_exp[with_exp], 8)).view(np.int64)
        exponent[with_exp] = np.where(padded[at["exp_sign"][with_exp]] == ord("-"), -e, e)
    w, q = np.empty(len(odd), dtype=np.uint64), np.empty(len(odd), dtype=np.int64)
    short = n_whole + n_frac <= 19  # then w < 10**19 < 2**64: one uint64 holds it
    cells = slice(None) if short.all() else np.flatnonzero(short)  # (a slice: no copies)
    whole = _read_digits(padded, at["point"][cells], n_whole[cells])
    frac = _read_digits(padded, at["exp"][cells], n_frac[cells])
    w[cells] = whole * _POW10_INT[n_frac[cells]] + frac
    q[cells] = exponent[cells] - n_frac[cells]
    long = np.flatnonzero(~short & ~odd)  # leading zeros, or more than 19 significant digits
    if len(long):
        w[long], q[long], cut, readable = _leading_digits(
            padded, at["digits"][long], at["point"][long], at["exp"][long], exponent[long])
        odd[long[~readable]] = True
        cut = long[cut & readable]
    values = _nearest_double(w, q, odd)
    if len(long) and len(cut):  # w * 10**q <= value < (w + 1) * 10**q: if both ends round to the
        above = _nearest_double(w[cut] + np.uint64(1), q[cut], odd[cut])  # same double, so does
        odd[cut[above.view(np.uint64) != values[cut].view(np.uint64)]] = True  # the value
    values = np.where(padded[at["first"]] == ord("-"), -values, values)  # -0.0 for "-0"
    odd_cells = np.flatnonzero(odd)
    spans = np.stack([at["first"][odd_cells], at["end"][odd_cells]], axis=1) - _PAD
    return values, odd_cells, spans


def _cell_layout(data, n_columns):
    """Where the parts of the cells of ``data`` (n_bytes,) uint8 are, as a dict of (n_cells,)
    int64 positions: "first" (the first byte), "digits" (the first digit), "point", "exp" (the
    e), "exp_sign" and "end" (the comma or newline after the cell). A part the cell lacks sits
    where the next one begins: "point" at "exp", "exp" at "end", "exp_sign" at "exp". "odd"
    (n_cells,) bool marks the cells that are not [+-]digits[.digits][e[+-]digits] in that order.
    None if a row has another number of cells than ``n_columns``, or a line is blank."""
    tokens = np.flatnonzero((data - np.uint8(ord("0"))) > 9)  # (T,) every byte but a digit
    chars = data[tokens]
    rank = _TOKEN_RANK[chars]
    is_sign = rank == _SIGN
    before = np.empty_like(rank)  # the rank of the token before
    before[0] = _SEPARATOR
    before[1:] = rank[:-1]
    rank += (_EXP_SIGN - _SIGN) * (is_sign & (before == _EXP))
    before[1:] = rank[:-1]
    gap = np.empty_like(tokens)  # 1 + the number of digits between a token and the one before
    gap[0] = tokens[0] + 1
    np.subtract(tokens[1:], tokens[:-1], out=gap[1:])
    # Ranks rise within a cell, and a sign comes first or right after the e. _OTHER ranks above
    # the separator, so a cell holding any other byte is out of order too.
    in_order = ((rank > before) | (before == _SEPARATOR)) & (~is_sign | (gap == 1))
    is_separator = rank == _SEPARATOR
    separators = np.flatnonzero(is_separator)
    if len(separators) % n_columns:
        return None
    line_ends = (chars[separators] == ord("\n")).reshape(-1, n_columns)
    if not line_ends[:, -1].all() or line_ends[:, :-1].any():
        return None
    cell_of = np.cumsum(is_separator) - is_separator  # (T,) the cell of each token
    odd = np.zeros(len(separators), dtype=bool)
    odd[cell_of[~in_order]] = True
    end = tokens[separators]
    first = np.empty_like(end)
    first[0] = 0
    first[1:] = end[:-1] + 1

    def where_is(rank_of_part, default):  # a cell has each part at most once, or is odd
        found = np.flatnonzero(rank == rank_of_part)
        positions = default.copy()
        positions[cell_of[found]] = tokens[found]
        return positions

    leading = data[first]
    digits = first + ((leading == ord("-")) | (leading == ord("+")))
    exp = where_is(_EXP, end)
    return {"first": first, "digits": digits, "point": where_is(_POINT, exp), "exp": exp,
            "exp_sign": where_is(_EXP_SIGN, exp), "end": end, "odd": odd}


def _leading_digits(padded, digits, point, exp, exponent):
    """For k cells of more than 19 digits, with positions digits, point, exp (k,) as in
    ``_cell_layout`` and exponent (k,) int64 the value after the e -> (w (k,) uint64, the first
    19 significant digits (leading zeros do not count); q (k,) int64; cut (k,) bool, where more
    digits follow: w * 10**q is then below the value, by less than 10**q; readable (k,) bool,
    False where more than 31 leading zeros hide the first significant digit)."""
    ahead = _bytes_before(padded, digits + 32, 32)  # (k, 32) the bytes from each first digit
    nonzero = ahead - np.uint8(ord("1")) <= 8        # "1" to "9" (the others wrap around)
    first = nonzero.argmax(axis=1)                   # the first, or 0 if none
    found = nonzero[np.arange(len(first)), first]
    readable = found | (exp - digits <= 32)  # no nonzero digit in 32 bytes: unreadable, or 0
    start = np.where(found, np.minimum(digits + first, exp), exp)  # the first significant digit
    n_before = np.clip(point - start, 0, 19)                       # taken before the point
    after = np.maximum(start, point + 1)
    n_after = np.clip(exp - after, 0, 19 - n_before)               # and after it
    w = (_read_digits(padded, start + n_before, n_before) * _POW10_INT[n_after]
         + _read_digits(padded, after + n_after, n_after))
    last = np.where(n_after > 0, after + n_after, start + n_before)  # just after the last taken
    q = exponent + point - last + (last > point)  # the power of ten of the last digit taken
    n_significant = exp - start - ((start < point) & (point < exp))
    return w, q, n_significant > n_before + n_after, readable


# Reading digits: eight ASCII digits at a time, as one little-endian uint64 (first digit lowest)

_POW10_INT = np.array([10 ** k for k in range(20)], dtype=np.uint64)
_LOW32 = np.uint64(0xFFFF_FFFF)


def _last_bytes_masks(n_words):
    """(8 * n_words + 1, n_words) uint64: row n keeps the last n of 8 * n_words bytes read as
    n_words little-endian words."""
    width = 8 * n_words
    masks = np.zeros((width + 1, n_words), dtype=np.uint64)
    for n in range(width + 1):
        keep = ((1 << (8 * n)) - 1) << (8 * (width - n))  # the high bytes are the last ones
        masks[n] = [(keep >> (64 * k)) & 0xFFFF_FFFF_FFFF_FFFF for k in range(n_words)]
    return masks


_LAST_BYTES = {n_words: _last_bytes_masks(n_words) for n_words in (1, 2, 3)}


def _read_digits(padded, ends, counts):
    """The integers written by the counts[i] <= 19 digits before padded[ends[i]], for ends (n,)
    and counts (n,) int64 -> (n,) uint64."""
    n_words = -(-int(counts.max(initial=0)) // 8)  # as few as the longest needs
    if n_words == 0:
        return np.zeros(len(ends), dtype=np.uint64)
    width = 8 * n_words
    digits = _bytes_before(padded, ends, width)  # (n, width)
    digits -= np.uint8(ord("0"))                  # as digit values
    words = digits.view("<u8") & np.take(_LAST_BYTES[n_words], counts, axis=0)  # (n, n_words),
    eights = _eight_digits(words)                                 # other cells' bytes zeroed
    value = eights[:, 0]
    for k in range(1, n_words):  # < 10**19 < 2**64 for up to 19 digits
        value = value * np.uint64(10 ** 8) + eights[:, k]
    return value


def _bytes_before(padded, ends, width):
    """padded[ends[i] - width:ends[i]] for ends (n,) -> (n, width) uint8, a copy."""
    windows = np.ndarray((len(padded) - width + 1,), dtype=f"V{width}", buffer=padded, strides=(1,))
    return windows[ends - width].view(np.uint8).reshape(len(ends), width)


def _eight_digits(words):
    """words (...) uint64 of 8 digit values, first digit in the low byte -> the numbers written."""
    words = words * np.uint64(10) + (words >> np.uint64(8))  # each byte pair: 10 * first + second
    words &= np.uint64(0x00FF_00FF_00FF_00FF)
    words = words * np.uint64(100) + (words >> np.uint64(16))  # pairs of pairs
    words &= np.uint64(0x0000_FFFF_0000_FFFF)
    return (words * np.uint64(10_000) + (words >> np.uint64(32))) & _LOW32


# Rounding w * 10**q to the nearest double

_Q_MIN, _Q_MAX = -342, 308  # 10**q below: w * 10**q < 2**-1075 rounds to 0; above: infinity
_INFINITY_BITS = np.uint64(0x7FF0_0000_0000_0000)


def _nearest_double(w, q, odd):
    """The doubles nearest w * 10**q, for w (n,) uint64 and q (n,) int64 -> (n,) float64.

    Marks in ``odd`` (n,) bool the cells that fail the original Eisel-Lemire paper's test for a
    product too close to call (it is never wrong: Mushtak and Lemire 2023), for float()."""
    if ((w <= np.uint64(2 ** 53)) & (q >= -22) & (q <= 22)).all():  # Clinger: one rounding
        m = w.astype(np.float64)
        power = _POW10[np.abs(q)]
        return np.where(q < 0, m / power, m * power)
    zero, huge = (w == 0) | (q < _Q_MIN), q > _Q_MAX
    if zero.any() or huge.any():
        bits, decided = _eisel_lemire(np.maximum(w, np.uint64(1)), np.clip(q, _Q_MIN, _Q_MAX))
        bits[huge] = _INFINITY_BITS
        bits[zero] = 0
    else:
        bits, decided = _eisel_lemire(w, q)
    odd |= ~decided
    return bits.view(np.float64)


def _truncated_powers_of_five():
    """5**q for q in [_Q_MIN, _Q_MAX] to 128 bits, the top bit set: (hi (651,), lo (651,)) uint64.

    Exact for 0 <= q <= 55; else the top 128 bits, rounded down for q > 55 and up for q < 0: the
    table of fast_float, Go and Rust (first row 0xeef453d6923bd65a, 0x113faa2906a13b3f)."""
    hi, lo = [], []
    for q in range(_Q_MIN, _Q_MAX + 1):
        if q >= 0:
            p = 5 ** q
            shift = 128 - p.bit_length()
            p = p << shift if shift >= 0 else p >> -shift
        else:
            p5 = 5 ** -q
            z = p5.bit_length()
            p = (1 << (z + 127 if q >= -27 else 2 * z + 128)) // p5 + 1  # 2**b / 5**-q, rounded up
            p >>= max(p.bit_length() - 128, 0)
        hi.append(p >> 64)
        lo.append(p & 0xFFFF_FFFF_FFFF_FFFF)
    return np.array(hi, dtype=np.uint64), np.array(lo, dtype=np.uint64)


_POW5_HI, _POW5_LO = _truncated_powers_of_five()


def _full_product(a, b):
    """a * b exactly, for a, b (n,) uint64 -> (hi, lo) (n,) uint64, a * b = hi * 2**64 + lo."""
    a_lo, a_hi = a & _LOW32, a >> np.uint64(32)
    b_lo, b_hi = b & _LOW32, b >> np.uint64(32)
    lo_lo, lo_hi, hi_lo = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo  # each < 2**64: no wrap-around
    middle = (lo_lo >> np.uint64(32)) + (lo_hi & _LOW32) + (hi_lo & _LOW32)  # < 3 * 2**32
    hi = (a_hi * b_hi + (lo_hi >> np.uint64(32)) + (hi_lo >> np.uint64(32))
          + (middle >> np.uint64(32)))
    lo = (middle << np.uint64(32)) | (lo_lo & _LOW32)
    return hi, lo


def _bit_length(w):
    """The bit lengths of w (n,) uint64, 1 <= w < 2**64 - 2**10 -> (n,) int64."""
    n_bits = (w.astype(np.float64).view(np.int64) >> 52) - 1022  # the double's exponent + 1 ...
    n_bits -= (w >> (n_bits - 1).astype(np.uint64)) == 0        # ... unless w rounded up to 2**k
    return n_bits


def _eisel_lemire(w, q):
    """The doubles nearest w * 10**q, for w (n,) uint64 in [1, 2**64) and q (n,) int64 in
    [_Q_MIN, _Q_MAX] -> (bits (n,) uint64 of the doubles, decided (n,) bool)."""
    shift_w = 64 - _bit_length(w)
    w = w << shift_w.astype(np.uint64)                            # top bit set
    row = q - _Q_MIN
    hi, lo = _full_product(w, _POW5_HI[row])  # the top 128 bits of w * 5**q (192 bits)
    unsure = (hi & np.uint64(0x1FF)) == np.uint64(0x1FF)  # the 9 bits below the 55 we keep are
    if unsure.any():                                       # all ones: a carry from below could
        k = np.flatnonzero(unsure)                         # change them; add the next 64 bits
        below, _ = _full_product(w[k], _POW5_LO[row[k]])
        lo_k = lo[k] + below
        hi[k] += lo_k < below  # the carry
        lo[k] = lo_k
    decided = (lo != np.uint64(0xFFFF_FFFF_FFFF_FFFF)) | ((q >= -27) & (q <= 55))
    upper = hi >> np.uint64(63)  # 1 if the product has 128 bits, 0 if 127
    shift = upper + np.uint64(9)
    mantissa = hi >> shift  # 54 bits: the double's 53 and a rounding bit
    # floor(log2(10**q)) = (217706 * q) >> 16 for q in [_Q_MIN, _Q_MAX]; 1023 is the exponent bias
    power2 = ((217706 * q) >> 16) + (63 + 1023) + upper.view(np.int64) - shift_w
    halfway = lo <= np.uint64(1)
    if halfway.any():  # exactly between two doubles (only where 5**q is exact): round to even
        halfway &= ((q >= -4) & (q <= 23) & ((mantissa & np.uint64(3)) == np.uint64(1))
                    & ((mantissa << shift) == hi))
        mantissa &= ~halfway.astype(np.uint64)
    subnormal = power2 <= 0
    if subnormal.any():  # below 2**-1022: fewer bits, shifted further right
        k = np.flatnonzero(subnormal)
        m = mantissa[k] >> np.minimum(1 - power2[k], 63).astype(np.uint64)
        subnormal_bits = (m + (m & np.uint64(1))) >> np.uint64(1)  # 2**52: the smallest normal
    mantissa += mantissa & np.uint64(1)  # round half up, to 53 bits; a carry makes 2**53:
    mantissa >>= np.uint64(1)            # one more in the exponent, and 52 zero bits below
    power2 += (mantissa >> np.uint64(53)).view(np.int64)
    bits = (power2.view(np.uint64) << np.uint64(52)) + (mantissa & np.uint64((1 << 52) - 1))
    if subnormal.any():
        bits[k] = subnormal_bits
    bits[power2 >= 0x7FF] = _INFINITY_BITS
    return bits, decided


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
            raise DataError(f"{source}: value row {i} ({text!r}) has {len(row)} values, expected "
                            f"{len(names)}: {','.join(names)}")
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
            raise DataError(f"{table.where(row, name)}: cannot read {str(cells[row])!r} as a number "
                            f"({what} columns must be numeric)")
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
    DataError naming the first cell of the minority kind, unless ``categorical`` is set.
    Missing and infinite values are DataErrors naming their place.
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
    n_numbers = int(ok.sum())
    if n_numbers == len(cells):
        _check_finite(table, name, values, "feature")
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
