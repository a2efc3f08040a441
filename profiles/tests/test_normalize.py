from profiles.collector.normalize import storable_json, storable_json_bytes


def test_nul_is_dropped_but_an_escaped_backslash_before_u0000_is_kept() -> None:
    value = {"a": "x\x00y", "b": "lit\\u0000eral", "k\x00": 1, "c": "\\\x00"}
    assert storable_json(value) == {"a": "xy", "b": "lit\\u0000eral", "k": 1, "c": "\\"}
    assert b"\\u0000" not in storable_json_bytes({"a": "\x00"})
    assert storable_json_bytes({"b": "lit\\u0000eral"}) == b'{"b":"lit\\\\u0000eral"}'
    untouched = {"plain": "text"}
    assert storable_json(untouched) is untouched
