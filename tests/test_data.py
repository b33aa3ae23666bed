import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinymtl import DataError
from tinymtl.data import (ClassTarget, Features, RegressTarget, feature_kind, parse_csv,
                          read_bundled, read_csv, split_rows, table_from_values)


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


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("a,b\n", "no data rows"),
    ("a,b\n1,2\n3\n", "line 3: 1 fields, expected 2"),
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
