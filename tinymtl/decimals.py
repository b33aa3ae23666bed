"""Numbers in CSV rows, parsed a block of rows at a time in NumPy, exactly as float() parses them.

Python's float() (used by the csv path) and numpy.loadtxt both parse each cell with C's
correctly rounded strtod, about 150-300 ns a cell. Here NumPy parses a block of rows at a time,
every cell at once, and gets the very same doubles, bit for bit. A cell [+-]digits[.digits]
[(e|E)[+-]digits] is an integer w (its digits, without the point) times 10**q (q = its exponent
minus the number of digits after the point); the double to return is w * 10**q rounded once,
to nearest (ties to even), as strtod rounds.

1. Find the cells. Every byte that is not a digit (sign, point, e, comma, newline) is a
   "token"; in a well-formed cell they come in the order sign, point, e, exponent sign, each
   at most once, a sign first in the cell or right after the e (``_cell_layout``).
2. Read digits eight at a time: eight ASCII digits are one little-endian uint64, and three
   multiply-shift-mask steps add them up in pairs, fours and eights (``_eight_digits``).
   Up to 19 digits fit w in a uint64 (10**19 < 2**64). Of a longer number, w is its first 19
   significant digits, and the value lies between w * 10**q and (w + 1) * 10**q: where both
   round to the same double, so does the value (``_leading_digits``).
3. Round w * 10**q to a double:
   - Clinger's fast path: if w <= 2**53 and |q| <= 22, w and 10**|q| are exact doubles, and one
     IEEE multiplication or division rounds their exact product or quotient once: exact.
   - Otherwise the Eisel-Lemire algorithm (Lemire, "Number parsing at a gigabyte per second",
     2021; Go's strconv, Rust's core and fast_float use it): 10**q = 5**q * 2**q, and a table
     holds 5**q to 128 bits. w (shifted so its top bit is set) times that is 192 bits, of which
     the top 64 (one 64x64 -> 128-bit product, done here with 32-bit halves), or in rare cases
     the top 128 (a second product), fix the 54 leading bits of the true product: the 53 bits
     of a double and the bit that says which way to round. The rest of the exponent, the
     power of two, only shifts the result. Exactly halfway cases (q in [-4, 23], where 5**q
     fits 64 bits) round to even. Mushtak and Lemire ("Fast number parsing without fallback",
     2023) proved that for w < 2**64 the truncated table always rounds right; the original
     paper's test for a product too close to call is kept all the same (such a cell goes to
     float()).
Cells of any other form (exponents of more than 8 digits, more than 31 leading zeros, nan, inf,
spaces), and the rare long numbers within 10**q of a rounding boundary, go to float() one by
one; if there are many, the whole file goes to loadtxt.
"""

import re

import numpy as np

_POW10 = 10.0 ** np.arange(23)  # exact doubles
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")  # float() = strtod here
OTHER_NUMBER = re.compile(  # as loadtxt reads them too; a signed nan is for the csv path
    r"[ \t]*(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)[ \t]*",
    re.IGNORECASE)
_BLOCK_BYTES = 196_608  # rows are parsed in blocks of about this many bytes: temporaries in cache


def mostly_plain_numbers(cells):
    """Whether every cell is a number that loadtxt reads, and at most 1 in 20 is not of the form
    [+-]digits[.digits][e[+-]digits], the form parse_number_rows reads in bulk."""
    n_other = sum(not PLAIN_NUMBER.fullmatch(cell) for cell in cells)
    return n_other <= len(cells) // 20 and all(OTHER_NUMBER.fullmatch(cell) for cell in cells)


def _keep_freed_memory():
    """Ask glibc's malloc to keep the memory the blocks free, instead of returning it at once.

    Each block allocates and frees a few MB of temporaries. glibc's malloc gives free memory at
    the top of the heap back to the system once it exceeds its trim threshold (128 KB at first),
    so every block would fault its pages in again: 200,000 page faults for a 100 MB file, a
    third of the time. Freeing one 8 MB array (mmapped, being large) raises the threshold to
    16 MB for good (glibc's dynamic mmap threshold). Elsewhere this costs nothing and does nothing.
    """
    np.empty(8 << 20, dtype=np.uint8)


def parse_number_rows(data, start, n_columns):
    """The rows of numbers in data[start:] (bytes) -> values (n_rows, n_columns) float64, or None
    if a row has another number of fields, a line is blank, a cell is not a number loadtxt
    reads (nan, inf and spaces are; a signed nan is not) or 1 cell in 20 is not plain."""
    _keep_freed_memory()
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
            if not OTHER_NUMBER.fullmatch(cell):
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
    w, q = np.zeros(len(odd), dtype=np.uint64), np.zeros(len(odd), dtype=np.int64)  # 0: odd cells
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
