"""The one dotted-path syntax (cdp/paths.py): keys with dots and backslashes survive a round
trip, empty steps are refused, and paths read values the way Postgres `#>` does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.paths import PathError, join_path, split_path, value_at

keys = st.text(alphabet=st.sampled_from(list("ab.\\ 0-é")), min_size=1, max_size=6)


@given(st.lists(keys, min_size=1, max_size=4))
def test_any_keys_survive_a_round_trip(path: list[str]) -> None:
    assert split_path(join_path(path)) == tuple(path)


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("address.city", ("address", "city")),
        ("utm\\.source", ("utm.source",)),
        ("a\\\\.b", ("a\\", "b")),
        ("a\\b", ("a\\b",)),  # a backslash before anything else is kept
        ("trailing\\", ("trailing\\",)),
        ("items.0.price", ("items", "0", "price")),
    ],
)
def test_escapes(text: str, keys: tuple[str, ...]) -> None:
    assert split_path(text) == keys


@pytest.mark.parametrize("text", ["", ".", "a..b", ".a", "a.", "a.\\"])
def test_an_empty_step_is_refused(text: str) -> None:
    if text == "a.\\":  # the last step is a lone backslash: not empty, kept
        assert split_path(text) == ("a", "\\")
        return
    with pytest.raises(PathError, match="empty step"):
        split_path(text)


def test_values_are_read_as_postgres_reads_them() -> None:
    data = {"a": {"b": [10, {"c": None}, 30]}, "0": "key", "list": ["x"]}
    assert value_at(data, ("a", "b", "0")) == 10
    assert value_at(data, ("a", "b", "-1")) == 30
    assert value_at(data, ("a", "b", "3")) is None
    assert value_at(data, ("a", "b", "1", "c")) is None
    assert value_at(data, ("0",)) == "key"
    assert value_at(data, ("list", "x")) is None
    assert value_at(data, ("a", "b", "0", "deeper")) is None
