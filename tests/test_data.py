import io
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinymtl import DataError
from tinymtl.data import (ClassTarget, Features, RegressTarget, feature_kind, numeric_column, parse_csv,
                          parse_text, read_bundled, read_csv, split_rows, table_from_values)


def table(text, source="t.csv"):
    return parse_csv(io.StringIO(text, newline=""), source)


def test_bundled_iris_has_150_flowers_and_five_columns():
    iris = read_bundled()
    assert iris.n_rows == 150
    assert iris.names == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert sorted(set(iris.column("species").tolist())) == ["setosa", "versicolor", "virginica"]


def test_missing_cells_are_empty_na_or_nan_in_any_case():
    from tinymtl.data import is_missing
    cells = np.array(["", "NA", "n/a", "NaN", "nan", "N/A", "0", "nana", "None", "x"])
    assert is_missing(cells).tolist() == [True] * 6 + [False] * 4


def test_cells_are_stripped_and_lines_are_physical_lines():
    t = table("a, b\n\n 1 ,x\n2,y\n")
    assert t.names == ["a", "b"]
    assert t.cells.tolist() == [["1", "x"], ["2", "y"]]
    assert t.lines.tolist() == [3, 4]  # the blank line 2 is skipped but still counted


def test_a_row_with_a_quoted_field_over_several_lines_is_named_by_its_first_line():
    t = table('a,b\n1,"two\nlines"\n3,x\n')
    assert t.cells.tolist() == [["1", "two\nlines"], ["3", "x"]]
    assert t.lines.tolist() == [2, 4]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("a,b\n", "no data rows"),
    ("a,b\n1,2\n3\n", "line 3: 1 fields, expected 2"),
    ('a,b\n1,2\n"3\n4,5"\n6,7\n', "line 3: 1 fields, expected 2 .*runs on to line 4 \\(a quote left open"),
    ('a,b\n1,2\n3,"x\n4,5\n6,7\n', "line 3: malformed CSV \\(unexpected end of data\\) in a quoted field that "
                                  "runs on to line 5; is a quote left open"),
    ('a,b\n1,"x"y\n', "line 2: malformed CSV"),
    ('\n\na,"b"c\n1,2\n', r"line 3: malformed CSV \(',' expected after '\"'\)$"),  # not "runs on"
    ('"x";"y"\r\n"1";"2"\r\n', "line 1: the header has no commas but 1 semicolon: the file looks "
                               "semicolon-separated"),
    ('x\ty\n"1"\t"2"\n', "line 1: the header has no commas but 1 tab:"),
    ("\n" * 20 + '"a";"b"\n1;2\n', "line 21: the header has no commas but 1 semicolon"),
    ('"a;b"\n1\n"2"x\n', "line 3: malformed CSV"),  # a later row's error is its own
    ("a,a\n1,2\n", 'column name "a" appears twice'),
    ("a,\n1,2\n", "column 2 of the header has no name"),
])
def test_malformed_csv_names_what_and_where(text, message):
    with pytest.raises(DataError, match=message):
        table(text)


def test_read_csv_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "nope.csv")


def test_feature_kinds_numbers_text_and_a_typo():
    t = table("n,c,code,typo\n1,red,10,1.5\n2,blue,20,2.5\n3,red,10,x\n4,red,30,4\n")
    kind, values = feature_kind(t, "n")
    assert kind == "numeric" and values.tolist() == [1, 2, 3, 4]
    assert feature_kind(t, "c") == ("categorical", None)
    assert feature_kind(t, "code", categorical=True) == ("categorical", None)
    with pytest.raises(DataError, match=r"line 4, column \"typo\": 'x' is not a number.*--categorical typo"):
        feature_kind(t, "typo")


@pytest.mark.parametrize("parse", [table, lambda text: parse_text(text, "t.csv")])
def test_a_column_of_numbers_with_thousands_separators_is_an_error_not_categories(parse):
    t = parse('income,age\n"170,423",70\n"1,250.5",31\n"-2,000,000",52\n')
    with pytest.raises(DataError) as err:
        feature_kind(t, "income")
    assert str(err.value) == ("t.csv: line 2, column \"income\": '170,423' looks like a number "
                              "with thousands separators (3 of 3 values have them); remove the "
                              "separators, or pass --categorical income if the values are categories")
    assert feature_kind(t, "income", categorical=True) == ("categorical", None)  # asked for: kept
    features = Features.fit(t, ["income", "age"], categorical=["income"])
    assert features.columns[0].categories == ["-2,000,000", "1,250.5", "170,423"]


@pytest.mark.parametrize("cells, line", [
    (["999", '"1,000"', '"2,500"'], 3),         # separators in most cells: not "'999' is a typo"
    (["5", "12", '"1,000"', "7", "8"], 4),       # in a few
])
def test_plain_numbers_with_some_thousands_separators_name_the_first_separated_cell(cells, line):
    t = table("x\n" + "\n".join(cells) + "\n")
    with pytest.raises(DataError, match=rf"line {line}, column \"x\": '1,000' looks like a number "
                                        r"with thousands separators \(\d of \d values"):
        feature_kind(t, "x")


@pytest.mark.parametrize("cells, line", [
    (["1,5", "2,25", "3,5"], 2),
    (["7", "12,5", "1,500", "3"], 3),    # "1,500" could be either; "12,5" is a decimal comma
])
def test_a_column_of_numbers_with_decimal_commas_names_the_first(cells, line):
    t = table("x\n" + "\n".join(f'"{c}"' for c in cells) + "\n")
    with pytest.raises(DataError, match=rf"line {line}, column \"x\": '[\d,]+' looks like a number "
                                        r"with a decimal comma .*write decimals with a point"):
        feature_kind(t, "x")
    assert feature_kind(t, "x", categorical=True) == ("categorical", None)


@pytest.mark.parametrize("cells", [
    ["12,34", "1,2345", "1,234,5"],      # not all numbers: one has two commas
    ["1,000 kg", "$1,000", "1,000%"],    # units, currencies, percent: left as text
    ["red, green", "blue", "a,b"],
    ["1 000", "2 500", "1'000"],         # other separators
])
def test_text_that_is_not_numbers_with_thousands_separators_stays_categorical(cells):
    t = table("x\n" + "\n".join(f'"{c}"' for c in cells) + "\n")
    assert feature_kind(t, "x") == ("categorical", None)


def test_a_stray_word_in_a_column_of_separated_numbers_is_the_typo_error():
    t = table('x\n"1,000"\n"2,000"\nunknown\n"3,500"\n')  # was silently one-hot encoded
    with pytest.raises(DataError, match=r"line 4, column \"x\": 'unknown' is not a number, but 3 "
                                        r"of 4 values are; fix the value, or pass --categorical x"):
        feature_kind(t, "x")
    t = table('x\nred\nblue\n"1,000"\ngreen\n')  # a separated number among words: as a plain one
    with pytest.raises(DataError, match=r"line 4, column \"x\": '1,000' is a number, but 3 of 4"):
        feature_kind(t, "x")


def test_a_number_with_thousands_separators_in_a_numeric_column_says_to_remove_them():
    with pytest.raises(DataError, match=r"line 3, column \"t\": cannot read '1,500' as a number "
                                        r"\(regression target columns must be numeric\); remove "
                                        r"the thousands separators$"):
        RegressTarget.fit(table('t\n1\n"1,500"\n'), "t")
    with pytest.raises(DataError, match=r"cannot read 'big' as a number \(feature columns must be "
                                        r"numeric\)$"):  # no hint for other text
        numeric_column(table("t\n1\nbig\n"), "t", what="feature")
    features = Features.fit(table("x\n1000\n2000\n"), ["x"])
    with pytest.raises(DataError, match=r"value row 1, column \"x\": cannot read '150,000' as a "
                                        r"number .*remove the thousands separators"):
        features.encode(table_from_values(['"150,000"'], ["x"]))


@pytest.mark.parametrize("text, message", [
    ("a\tb\tcls\tval\n1\t2\tx\t0.5\n3\t4\ty\t1.5\n",
     r"t.csv: line 1: the header 'a\\tb\\tcls\\tval' has no commas but 3 tabs: the file looks "
     r"tab-separated; tinymtl reads comma-separated files, so save it with commas between the "
     r"columns$"),
    ("a;b;buy\n1;2;x\n", r"t.csv: line 1: the header 'a;b;buy' has no commas but 2 semicolons: "
                         r"the file looks semicolon-separated;"),
    ("\na;b;buy\n\n1,5;2;x\n", r"t.csv: line 2: .* 2 semicolons"),  # decimal commas; blank lines
    ("a\tb\n1\t2\n", r"the file looks tab-separated"),  # numbers only: not the fast path's column
    ("a\tb\n1\t\n2\t\n", r"the file looks tab-separated"),  # float() reads "1\t": the same
])
def test_a_tab_or_semicolon_separated_file_is_named_as_such(text, message, tmp_path):
    for parse in (table, lambda text: parse_text(text, "t.csv")):
        with pytest.raises(DataError, match=message):
            parse(text)
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match="looks (tab|semicolon)-separated"):
        read_csv(path)


@pytest.mark.parametrize("text, names", [
    ("a;b\n1\n2\n", ["a;b"]),       # one column whose name holds a semicolon, over plain values
    ('"a\tb"\nx\ny\n', ["a\tb"]),
    ("a;b,c\n1;2,3\n", ["a;b", "c"]),  # commas in the header: a comma-separated file
])
def test_a_semicolon_or_tab_in_a_comma_separated_file_is_not_taken_for_a_delimiter(text, names):
    t = parse_text(text, "t.csv")
    assert t.names == names
    assert t.cells.tolist() == table(text).cells.tolist()


def test_missing_and_infinite_feature_values_are_errors_naming_line_and_column():
    t = table("a,b\n1,2\n,3\n")
    with pytest.raises(DataError, match=r'line 3, column "a": missing feature value'):
        Features.fit(t, ["a", "b"])
    t = table("a,b\n1,2\ninf,3\n")
    with pytest.raises(DataError, match=r'line 3, column "a": \'inf\' is infinite'):
        Features.fit(t, ["a", "b"])


def test_features_standardise_numbers_and_one_hot_categories():
    t = table("x,c\n1,b\n3,a\n5,b\n")
    features = Features.fit(t, ["x", "c"])
    X = features.encode(t)
    assert X.dtype == np.float32 and X.shape == (3, 3)
    np.testing.assert_allclose(X[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert X[:, 1:].tolist() == [[0, 1], [1, 0], [0, 1]]  # categories sorted: a, b


def test_an_unseen_category_is_an_error_listing_the_known_ones():
    features = Features.fit(table("c\na\nb\n"), ["c"])
    with pytest.raises(DataError, match=r"line 3, column \"c\": category 'z' was not seen in training; known categories: a, b"):
        features.encode(table("c\na\nz\n"))


def test_features_survive_their_metadata():
    t = table("x,c\n1,b\n3,a\n5.5,b\n")
    features = Features.fit(t, ["x", "c"])
    again = Features.from_meta(features.to_meta())
    assert np.array_equal(again.encode(t), features.encode(t))


def test_class_targets_missing_cells_and_numeric_order():
    t = table("y\n10\n2\nNA\n\n2\nnan\n")  # line 5 is blank: skipped
    target = ClassTarget.fit(t, "y")
    assert target.classes == ["2", "10"]
    assert target.encode(t).tolist() == [1, 0, -1, 0, -1]


def test_a_classification_target_with_one_class_is_an_error():
    with pytest.raises(DataError, match='"y" has only the class "a"; it needs at least two'):
        ClassTarget.fit(table("y\na\na\nNA\n"), "y")


def test_a_non_numeric_regression_target_is_an_error():
    with pytest.raises(DataError, match=r"line 3, column \"t\": cannot read 'big' as a number"):
        RegressTarget.fit(table("t\n1\nbig\n"), "t")


@pytest.mark.parametrize("parse", [table, lambda text: parse_text(text, "t.csv")])  # csv module, fast path
def test_a_target_beyond_float32_is_named_by_file_line_and_column(parse):
    t = parse("x,y\n1,2\n\n2,nan\n3,-1e39\n4,5\n")  # the blank line 3 counts: -1e39 is on line 5
    unscaled = RegressTarget("y", 0.0, 1.0)
    with pytest.raises(DataError) as err:
        unscaled.check_fits(t, unscaled.standardise(unscaled.encode(t)), np.float32)
    assert str(err.value).startswith("t.csv: line 5, column \"y\": '-1e39' is beyond the range of float32")
    unscaled.check_fits(t, unscaled.standardise(unscaled.encode(t)), np.float64)  # fits: no error
    scaled = RegressTarget("y", 2.0, 1e-3)  # standardised, 5 becomes 3000 and -1e39 about -1e42
    with pytest.raises(DataError, match=r"t.csv: line 5, column \"y\": a value too large to use "
                                        r"\('-1e39'; standardised, it is -1e\+42, beyond float32\)"):
        scaled.check_fits(t, scaled.standardise(scaled.encode(t)), np.float32)
    fits = RegressTarget("y", 0.0, 1e4)
    fits.check_fits(t, fits.standardise(fits.encode(t)), np.float32)  # -1e35 fits: no error


def test_regression_targets_keep_missing_values():
    t = table("t,x\n1,a\n,b\n3,c\n")
    target = RegressTarget.fit(t, "t")
    assert (target.mean, target.scale) == (2.0, 1.0)
    np.testing.assert_array_equal(target.encode(t), [1.0, np.nan, 3.0])


def test_table_from_values_checks_the_number_of_values():
    t = table_from_values(["5.1,3.5,1.4"], ["a", "b", "c"])
    assert t.cells.tolist() == [["5.1", "3.5", "1.4"]]
    with pytest.raises(DataError, match=r"value row 2 \('1,2'\) has 2 values, expected 3: a,b,c"):
        table_from_values(["1,2,3", "1,2"], ["a", "b", "c"])


def test_split_rows_rejects_too_few_rows():
    with pytest.raises(DataError, match="too few rows"):
        split_rows(2, 0.2, rng=np.random.default_rng(0))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@given(st.lists(finite, min_size=1, max_size=40))
def test_standardising_then_unstandardising_returns_the_users_units(values):
    text = "t\n" + "\n".join(repr(v) for v in values) + "\n"
    t = table(text)
    target = RegressTarget.fit(t, "t")
    y = target.encode(t)
    np.testing.assert_allclose(target.unstandardise(target.standardise(y)), values,
                               rtol=1e-9, atol=1e-9 * target.scale)


cell_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                    min_size=1, max_size=6)


@given(st.lists(st.lists(cell_text, min_size=3, max_size=3), min_size=1, max_size=10))
def test_csv_round_trip_keeps_every_cell(rows):
    import csv
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    t = table(buffer.getvalue())
    assert t.cells.tolist() == [[cell.strip() for cell in row] for row in rows]


@given(st.lists(st.integers(-1, 3), min_size=10, max_size=200), st.floats(0.1, 0.5),
       st.integers(0, 2**32 - 1))
def test_stratified_split_keeps_class_proportions(strata, fraction, seed):
    strata = np.array(strata)
    n_val = round(fraction * len(strata))
    train, val = split_rows(len(strata), fraction, rng=np.random.default_rng(seed), strata=strata)
    assert len(val) == n_val and len(train) == len(strata) - n_val
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(strata)))
    for s in np.unique(strata):
        in_class = int(np.sum(strata == s))
        assert abs(int(np.sum(strata[val] == s)) - fraction * in_class) < 1 + 1e-9


# ------------------------------------------------------------------------------------------------
# The numbers fast path (parse_numbers) against the csv path (parse_csv): the same Table meaning


def both_paths(text):
    """(fast, careful) Tables of ``text``; the fast path must have taken it."""
    from tinymtl.data import parse_numbers
    fast = parse_numbers(text, "t.csv")
    assert fast is not None, "the fast path refused the file"
    return fast, table(text)


def outcome(fn, *args, **kwargs):
    """fn's result, or the DataError message it raised."""
    try:
        return fn(*args, **kwargs)
    except DataError as err:
        return f"DataError: {err}"


def assert_same_meaning(fast, careful):
    from tinymtl.data import numeric_column
    assert fast.names == careful.names and fast.lines.tolist() == careful.lines.tolist()
    assert fast.cells.tolist() == careful.cells.tolist()
    for name in fast.names:
        for what in ("feature", "regression target"):
            a, b = outcome(numeric_column, fast, name, what=what), outcome(numeric_column, careful, name, what=what)
            if isinstance(b, str):
                assert a == b
            else:
                assert a.dtype == b.dtype == np.float64
                assert a.tobytes() == b.tobytes()  # bit for bit, NaN and -0.0 included
        for fit in (lambda t: Features.fit(t, [name]), lambda t: ClassTarget.fit(t, name)):
            a, b = outcome(fit, fast), outcome(fit, careful)
            if isinstance(b, str):
                assert a == b
            else:
                assert a.to_meta() == b.to_meta()
                assert np.array_equal(a.encode(fast), b.encode(careful))


number_text = st.one_of(
    st.floats(-1e150, 1e150, allow_nan=False).map(repr),  # wider overflows the std of a column
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.6g}"),
    st.floats(-1e150, 1e150, allow_nan=False).map(lambda x: f"{x:.18e}"),
    st.integers(-10**20, 10**20).map(str),
    st.decimals(-10**6, 10**6, places=4, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "-0", "+1", "+.5", "5.", "-.25", "007", "0.1", "1e-5", "9007199254740993",
                     "123456789012345", "1234567890123456", "0.000000000000001", "1.5E+3"]),
)


@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(number_text, min_size=n, max_size=n),
                                                    min_size=1, max_size=12)),
       st.sampled_from(["\n", "\r\n"]))
def test_fast_path_reads_plain_numbers_as_the_csv_path_does(rows, newline):
    header = ",".join(f"c{j}" for j in range(len(rows[0])))
    text = newline.join([header, *(",".join(row) for row in rows)]) + newline
    assert_same_meaning(*both_paths(text))


@given(st.integers(1, 3).flatmap(lambda n: st.lists(st.lists(
           st.tuples(number_text | st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999"]),
                     st.sampled_from(["", " ", "  "])).map(lambda t: t[1] + t[0] + t[1]),
           min_size=n, max_size=n), min_size=1, max_size=10)),
       st.lists(st.integers(0, 10), max_size=3))
def test_fast_path_keeps_nan_inf_spaces_and_blank_lines_as_the_csv_path_does(rows, blanks):
    lines = [",".join(row) for row in rows]
    for at in sorted(blanks, reverse=True):
        lines.insert(min(at, len(lines) - 1) + 1, "" if at % 2 else "   ")  # never before row 1
    text = "\n".join([",".join(f"x{j}" for j in range(len(rows[0]))), *lines]) + "\n"
    assert_same_meaning(*both_paths(text))


def test_the_number_parser_equals_float_on_the_benchmark_format():
    from tinymtl.decimals import parse_number_rows
    rng = np.random.default_rng(3)
    values = rng.standard_normal((300, 5)) * 10.0 ** rng.integers(-3, 5, (300, 5))  # few exponents
    cells = [[f"{v:.6g}" for v in row] for row in values] + [["-0", "+.5", "5.", "12345678901234567", "1e-300"]]
    parsed = parse_number_rows(("\n".join(",".join(row) for row in cells) + "\n").encode(), 0, 5)
    assert parsed is not None
    assert parsed.tobytes() == np.array([[float(c) for c in row] for row in cells]).tobytes()


def test_nan_is_a_missing_target_and_a_missing_feature_on_both_paths():
    text = "x,t,y\n1,2.5,0\n\n2,nan,NaN\n3,1.5,1\n"  # line 3 is blank
    for t in both_paths(text):
        np.testing.assert_array_equal(RegressTarget.fit(t, "t").encode(t), [2.5, np.nan, 1.5])
        assert ClassTarget.fit(t, "y").encode(t).tolist() == [0, -1, 1]
        with pytest.raises(DataError, match=r'^t.csv: line 4, column "t": missing feature value \(nan\); '):
            Features.fit(t, ["x", "t"])


def test_inf_feature_errors_name_the_physical_line_on_both_paths():
    text = "a,b\n1,2\n\n\n3,-inf\n"
    fast, careful = both_paths(text)
    messages = {outcome(Features.fit, t, ["a", "b"]) for t in (fast, careful)}
    assert messages == {"DataError: t.csv: line 5, column \"b\": '-inf' is infinite; feature values must be finite"}
    messages = {outcome(RegressTarget.fit, t, "b") for t in (fast, careful)}
    assert messages == {"DataError: t.csv: line 5, column \"b\": '-inf' is infinite; "
                        "regression target values must be finite"}


def test_read_csv_takes_the_fast_path_for_numbers_and_keeps_bom_and_crlf(tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n1.5,2\r\n\r\n-3,4e2\r\n")
    t = read_csv(path)
    assert t.names == ["a", "b"] and t.lines.tolist() == [2, 4]
    assert t.numbers("a").tolist() == [1.5, -3.0] and t.numbers("b").tolist() == [2.0, 400.0]
    assert t.column("b").tolist() == ["2", "4e2"]  # labels and categories keep the file's text


def test_read_csv_reads_a_utf8_header_over_numbers_and_names_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes("\ufeffgrö\u00dfe,y\n1.5,2\n-3,4e2\n".encode("utf-8"))
    t = read_csv(path)
    assert t.names == ["größe", "y"] and t.numbers("größe").tolist() == [1.5, -3.0]
    assert t.column("y").tolist() == ["2", "4e2"]
    path.write_bytes(b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(DataError, match=r"u.csv: not a UTF-8 text file \(byte 10: invalid start byte\)"):
        read_csv(path)


def test_class_labels_and_categories_of_a_numbers_file_keep_its_text():
    fast, careful = both_paths("code,y\n01,10\n1,2\n1.0,10\n")
    for t in (fast, careful):
        assert ClassTarget.fit(t, "y").classes == ["2", "10"]
        assert Features.fit(t, ["code"], categorical=["code"]).columns[0].categories == ["01", "1", "1.0"]


@pytest.mark.parametrize("text", [
    'a,b\n"1",2\n',        # quoted numbers
    "a,b\n1,\n",           # an empty cell
    "a,b\n1,NA\n",         # a missing marker the C parsers do not read
    "a,b\n1,2\n3\n",       # a short row
    "a,b\n1,-nan\n",       # not a missing cell for the csv path
    "a,b\r1,2\r",          # old Mac line ends
    "\n\na,b\n1,2\n",      # blank lines before the header
    "a,b\n1,x\n",          # text
])
def test_the_fast_path_leaves_other_files_to_the_csv_path(text):
    from tinymtl.data import parse_numbers, parse_text
    assert parse_numbers(text, "t.csv") is None
    a, b = outcome(parse_text, text, "t.csv"), outcome(table, text)
    assert a == b if isinstance(b, str) else a.cells.tolist() == b.cells.tolist()


def test_quoted_numbers_read_as_numbers_on_the_csv_path():
    from tinymtl.data import numeric_column, parse_text
    t = parse_text('a,b\n"1.5", 2\n3,"4"\n', "t.csv")
    assert numeric_column(t, "a", what="feature").tolist() == [1.5, 3.0]
    assert numeric_column(t, "b", what="feature").tolist() == [2.0, 4.0]


def test_a_mixed_column_on_the_fast_path_is_still_the_typo_error():
    from tinymtl.data import parse_text
    t = parse_text("a,b\n1,2\n2,3\n3,x\n", "t.csv")
    with pytest.raises(DataError, match=r'line 4, column "b": \'x\' is not a number'):
        feature_kind(t, "b")


def test_numbers_columns_are_read_only():
    fast, _ = both_paths("a\n1\n2\n")
    with pytest.raises(ValueError):
        fast.numbers("a")[0] = 5.0


def test_signed_nan_cells_are_missing_values_with_their_line(tmp_path):
    rows = [f"{i * 0.1},{i % 2},{i * 0.3}" for i in range(40)]
    rows[20] = "-nan,1,3.0"
    path = tmp_path / "negnan.csv"
    path.write_text("x,y,t\n" + "\n".join(rows) + "\n")
    table = read_csv(path)
    with pytest.raises(DataError, match=r'line 22, column "x": missing feature value \(-nan\)'):
        Features.fit(table, ["x"])
    rows[20] = "2.0,1,+NaN"
    path.write_text("x,y,t\n" + "\n".join(rows) + "\n")
    values = numeric_column(read_csv(path), "t", what="regression target")
    assert np.isnan(values[20]) and np.isfinite(np.delete(values, 20)).all()


# ------------------------------------------------------------------------------------------------
# The vectorised number parser (Clinger's fast path, Eisel-Lemire) against float(), bit for bit


def parse_cells(cells):
    """cells (list of str) -> (values (n,) float64, odd (n,) bool) from the vectorised parser, one
    cell a row; odd cells are those it leaves to float()."""
    from tinymtl.decimals import _parse_number_block
    data = np.frombuffer(("\n".join(cells) + "\n").encode("ascii"), np.uint8)
    values, odd_cells, _ = _parse_number_block(data, 1)
    odd = np.zeros(len(cells), dtype=bool)
    odd[odd_cells] = True
    return values, odd


def significant_digits(cell):
    mantissa = cell.lstrip("+-").lower().split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0"))


def assert_equals_float(cells):
    """Every cell the parser does not leave to float() is parsed to exactly the bits of
    float(cell), signed zeros, subnormals and infinities included; and it leaves none of at most
    19 significant digits."""
    values, odd = parse_cells(cells)
    expected = np.array([float(c) for c in cells])
    short = np.array([significant_digits(c) <= 19 for c in cells])
    assert not (odd & short).any(), [c for c, o, s in zip(cells, odd, short) if o and s]
    np.testing.assert_array_equal(values[~odd].view(np.uint64), expected[~odd].view(np.uint64))


def from_bits(bits):
    return float(np.uint64(bits).view(np.float64))


any_double = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                       st.integers(0, 2**64 - 1).map(from_bits).filter(math.isfinite))
formats = st.sampled_from(["repr", "%.18e", "%.17g", "%.6g", "%.10e", "%.16e", "%.19g", "%.15g",
                           "%.3f", "%.1e", "%E", "%.12G", "%d", "%.20f", "%.25g", "%.22e"])


def spell(x, fmt):
    if fmt == "repr":
        return repr(x)
    if fmt == "%d":
        return "%d" % x if abs(x) < 1e19 else repr(x)
    return fmt % x


@st.composite
def number_cells(draw):
    """A double written in one of the usual formats, maybe with a '+' or leading zeros."""
    text = spell(draw(any_double), draw(formats))
    if len(text) > 40:  # %.3f of 1e300
        text = repr(float(text))
    if draw(st.booleans()) and not text.startswith("-"):
        text = "+" + text
    if draw(st.integers(0, 5)) == 0:
        sign = text[0] if text[0] in "+-" else ""
        text = sign + "0" * draw(st.integers(1, 4)) + text[len(sign):]
    return text


@st.composite
def halfway_cells(draw):
    """w * 10**q exactly halfway between two doubles (or one off it), w < 2**64 (only for
    -4 <= q <= 23 can such a point have at most 19 digits): ties round to even."""
    q = draw(st.integers(-4, 23))
    five = 5 ** abs(q)
    if q >= 0:  # m = 5**q * t odd, 2**53 < m < 2**54; the point m * 2**e = w * 10**q, w = t * 2**(e - q)
        t = draw(st.integers(2**53 // five + 1, 2**54 // five)) | 1
        assume(2**53 < five * t < 2**54)
        w = t << draw(st.integers(0, 64 - t.bit_length()))
    else:  # the point m * 2**e, m odd of 54 bits, = w * 10**q with w = m * 5**-q * 2**(e - q)
        m = draw(st.integers(2**52, 2**53 - 1)) * 2 + 1
        w = m * five << draw(st.integers(0, 64 - (m * five).bit_length()))
    w += draw(st.sampled_from([0, 0, -1, 1]))
    assume(w < 2**64)
    return f"{w}e{q}" if draw(st.booleans()) else f"{w}E{q:+d}"


def test_the_power_of_five_table_is_fast_floats():
    from tinymtl.decimals import _POW5_HI, _POW5_LO, _Q_MIN
    assert (int(_POW5_HI[0]), int(_POW5_LO[0])) == (0xeef453d6923bd65a, 0x113faa2906a13b3f)  # 5**-342
    assert (int(_POW5_HI[-_Q_MIN]), int(_POW5_LO[-_Q_MIN])) == (1 << 63, 0)                 # 5**0
    assert (int(_POW5_HI[-1]), int(_POW5_LO[-1])) == (0x8e679c2f5e44ff8f, 0x570f09eaa7ea7648)  # 5**308


@given(st.lists(st.integers(1, 10**19) | st.integers(54, 63).flatmap(
    lambda k: st.sampled_from([2**k - 1, 2**k, 2**k + 1])), min_size=1))
def test_bit_length_of_uint64(numbers):
    from tinymtl.decimals import _bit_length
    assert _bit_length(np.array(numbers, dtype=np.uint64)).tolist() == [n.bit_length() for n in numbers]


def test_hard_numbers_read_as_float_reads_them():
    assert_equals_float([
        "0", "-0", "+0", "0e0", "-0.0", "0e999", "-0e-999", "0.000", ".5", "5.", "+.5e1", "1E+05",
        "1e22", "1e23", "8.589973e9", "9007199254740992", "9007199254740993", "9007199254740995",
        "9007199254740993e0", "900719925474099300e-2", "7.2057594037927933e16",
        "4.9e-324", "5e-324", "2e-324", "3e-324", "1e-323", "2.4703282292062327e-324",
        "2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072012e-308",
        "2.2250738585072014e-308", "1.7976931348623157e308", "1.7976931348623158e308",
        "1.7976931348623159e308", "1e308", "1e309", "1e400", "-1e400", "1e-400", "1e-342",
        "1e-343", "9999999999999999999e-343", "9999999999999999999", "9999999999999999999e289",
        "18446744073709551615e-10", "0.1", "0.3", "123456789012345678e-5", "1e0005",
        "1e-00000005", "0.0012345678901234567", "00000000000000000000001.5",
        "0.000000000000000000000001", "3.141592653589793238", "-1.234567890123456789e-01",
        *(f"{2**k - 1}e{q}" for k in range(54, 64) for q in (-300, -20, 0, 5)),  # w rounds up to
        *(f"{2**k + 1}e{q}" for k in range(54, 64) for q in (-300, -20, 0, 5)),  # 2**k as a double
    ])


@pytest.mark.parametrize("cell", ["1e23", "1E+23", "3e22", "1e22", "9007199254740992e22",
                                  "9007199254740993", "9007199254740992e-22", "1e-23",
                                  "123456789012345678e5", "4.2e23", "0.1e24", "10e22"])
def test_a_cell_at_the_edge_of_clingers_fast_path_reads_as_float_does(cell):
    """Clinger's fast path holds for w <= 2**53 and |q| <= 22 only (10**22 is the largest exact
    power of ten): here every other cell of the file is on it, so the whole block would take it.
    A cell just past it (1e23: 10**23 is no double) must be rounded as strtod rounds it."""
    from tinymtl.data import parse_numbers
    text = f"a,b,c\n1.5,{cell},-2\n0.25,7,{cell}\n"
    table = parse_numbers(text, "edge.csv")
    assert table is not None
    expected = np.array([[1.5, float(cell), -2.0], [0.25, 7.0, float(cell)]])
    values = np.stack([table.numbers(name) for name in table.names], axis=1)
    assert values.tobytes() == expected.tobytes(), (values.tolist(), expected.tolist())


def test_more_than_19_digits_read_as_float_reads_them():
    cells = ["18446744073709551616", "12345678901234567890", "0.1234567890123456789012",
             "1" + "0" * 30, "-0." + "0" * 20 + "1234567890123456789012e50", "0." + "0" * 30,
             "123456789012345678901234567890.123456789e-320", "98765432109876543210987654e300",
             "1.2345678901234567890123456789", "0.10000000000000000000000000000000000001"]
    values, odd = parse_cells(cells)
    assert not odd.any()
    assert values.tobytes() == np.array([float(c) for c in cells]).tobytes()


def test_what_the_parser_leaves_to_float():
    tie = "1.00000000000000011102230246251565404236316680908203125"  # 1 + 2**-53, exactly
    cells = [tie, tie + "1",  # the first 19 digits, w, and w + 1 round to different doubles
             "0." + "0" * 40 + "1", "1e123456789", "nan", "1 ", "", "--1", "1e", "."]
    assert parse_cells(cells)[1].all()


@given(st.lists(number_cells(), min_size=1, max_size=30))
def test_numbers_in_usual_formats_read_as_float_reads_them(cells):
    assert_equals_float(cells)


@given(st.lists(halfway_cells(), min_size=1, max_size=30))
def test_halfway_numbers_round_to_even_as_float_does(cells):
    assert_equals_float(cells)


@given(st.lists(st.text("0123456789+-.eE", min_size=1, max_size=8), min_size=1, max_size=30))
def test_a_cell_float_cannot_read_is_never_given_a_value(cells):
    values, odd = parse_cells(cells)
    for cell, value, is_odd in zip(cells, values.tolist(), odd.tolist()):
        if not is_odd:
            assert np.float64(value).view(np.uint64) == np.float64(float(cell)).view(np.uint64), cell


short_formats = st.sampled_from(["repr", "%.18e", "%.17g", "%.6g", "%.10g", "%.10e", "%.19g", "%E", "%.1e"])


@given(st.lists(st.tuples(short_formats, st.booleans()), min_size=1, max_size=5),
       st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_a_numbers_file_reads_as_loadtxt_reads_it(columns, n_rows, seed):
    from tinymtl.data import parse_numbers
    from tinymtl.decimals import parse_number_rows
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, len(columns))) * 10.0 ** rng.integers(-30, 30, (n_rows, len(columns)))
    rows = [",".join(spell(v, fmt).replace("e", "E" if upper else "e") for v, (fmt, upper) in zip(row, columns))
            for row in x.tolist()]
    text = "\n".join([",".join(f"c{j}" for j in range(len(columns))), *rows]) + "\n"
    expected = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, ndmin=2)
    parsed = parse_number_rows(text.encode(), text.index("\n") + 1, len(columns))  # the fast path
    assert parsed is not None and parsed.tobytes() == expected.tobytes()
    t = parse_numbers(text, "t.csv")
    assert np.stack([t.numbers(name) for name in t.names], axis=1).tobytes() == expected.tobytes()


def test_a_file_of_many_blocks_reads_as_loadtxt_reads_it():
    from tinymtl.data import parse_numbers
    from tinymtl.decimals import _BLOCK_BYTES
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 9))
    text = "\n".join(["a,b,c,d,e,f,g,h,i", *(",".join(f"{v:.18e}" if j % 2 else repr(v) for j, v in enumerate(row))
                                            for row in x.tolist())])  # no newline at the end
    assert len(text) > 3 * _BLOCK_BYTES
    t = parse_numbers(text, "t.csv")
    assert t.lines.tolist() == list(range(2, 3002))
    assert np.stack([t.numbers(name) for name in t.names], axis=1).tobytes() == x.tobytes()


def test_a_few_nan_inf_and_spaced_cells_keep_the_fast_path_and_a_signed_nan_leaves_it():
    from tinymtl.decimals import parse_number_rows
    rows = [f"{i}.5,{i * 1e-3:.18e},{-i}" for i in range(100)]
    rows[3], rows[50], rows[97] = "nan,1, 2", "-Infinity,NaN,+inf", "\t7 , 8e1 ,inf"
    text = "a,b,c\n" + "\n".join(rows) + "\n"
    parsed = parse_number_rows(text.encode(), len("a,b,c\n"), 3)
    expected = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    assert parsed is not None and parsed.tobytes() == expected.tobytes()
    assert_same_meaning(*both_paths(text))
    rows[60] = "1,-nan,2"  # a value for the csv path, not missing
    assert parse_number_rows(("\n".join(rows) + "\n").encode(), 0, 3) is None


def test_blank_lines_at_the_end_keep_the_fast_path():
    from tinymtl.decimals import parse_number_rows
    for end in ["", "\n", "\n\n\n"]:
        text = "a,b\n1,2.5\n-3,4e2" + end
        assert parse_number_rows(text.encode(), 4, 2).tolist() == [[1, 2.5], [-3, 400]]
        assert_same_meaning(*both_paths(text))


def test_a_first_row_of_mostly_plain_numbers_takes_the_bulk_parser():
    from tinymtl.decimals import mostly_plain_numbers
    assert mostly_plain_numbers(["1.5"] * 20 + [" nan"])
    assert not mostly_plain_numbers(["1.5"] * 19 + ["nan", "inf"])  # loadtxt, at once
    assert not mostly_plain_numbers(["1.5"] * 20 + ["-nan"])


def test_a_few_odd_cells_go_to_float_and_many_to_loadtxt():
    from tinymtl.decimals import parse_number_rows
    long = "1e000000001"  # an exponent of 9 digits: left to float()
    rows = [f"{i}.5,{long if i % 40 == 0 else i}" for i in range(400)]  # 10 long cells in 800
    parsed = parse_number_rows(("\n".join(rows) + "\n").encode(), 0, 2)
    assert parsed is not None and parsed[0, 1] == float(long) and parsed[1, 1] == 1.0
    rows = [f"{i}.5,{long}" for i in range(400)]
    assert parse_number_rows(("\n".join(rows) + "\n").encode(), 0, 2) is None
