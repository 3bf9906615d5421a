"""The export format's typed values and id mapping (graph/tagged.py, memory/portable.py), without a database."""

from __future__ import annotations

import json
import math
from datetime import UTC, timedelta, timezone

import pytest
from neo4j.time import Date, DateTime, Duration, Time

from graph.errors import InvalidInput
from graph.tagged import decode, encode
from memory.portable import IdMap, new_id

BERLIN_SUMMER = timezone(timedelta(hours=2))


def through_json(value):
    return decode(json.loads(json.dumps(encode(value))))


@pytest.mark.parametrize("value", [
    DateTime(2026, 5, 8, 10, 0, 0, 123456789, tzinfo=BERLIN_SUMMER),
    DateTime(2026, 5, 8, 10, 0, 0, 1),  # local
    Date(2026, 12, 31),
    Time(23, 59, 59, 999999999, tzinfo=UTC),
    Time(0, 0, 0, 1),
    Duration(years=1, months=2, days=3, hours=4, minutes=5, seconds=6, nanoseconds=7),
    b"\x00\xff raw",
    [Date(2026, 1, 1), Date(2026, 1, 2)],
    [0.1, 1e300, 5e-324],
    9007199254740993,
    "text with \u2028 and \u00e9",
    True,
    None,
])
def test_every_property_type_comes_back_equal(value):
    assert through_json(value) == value


def test_negative_zero_stays_negative():
    assert math.copysign(1.0, through_json(-0.0)) == -1.0
    assert [math.copysign(1.0, x) for x in through_json([0.0, -0.0])] == [1.0, -1.0]


def test_temporal_values_are_tagged_in_iso_8601_with_nanoseconds():
    assert encode(DateTime(2026, 5, 8, 10, 0, 0, 123456789, tzinfo=BERLIN_SUMMER)) == {
        "$datetime": "2026-05-08T10:00:00.123456789+02:00"}
    assert encode(Date(2026, 5, 8)) == {"$date": "2026-05-08"}


def test_an_unknown_tag_is_refused():
    with pytest.raises(InvalidInput, match="cannot read"):
        decode({"$point": [1, 2]})


def test_ids_are_kept_in_their_own_space_and_derived_from_the_target_in_another():
    old = "2f9a3c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c"
    same = IdMap("acme", "acme")
    same.add(old)
    assert same.id(old) == old
    other = IdMap("acme", "acme-copy")
    other.add(old)
    assert other.id(old) == new_id(old, "acme-copy") != old
    assert new_id(old, "acme-copy") == new_id(old, "acme-copy")  # the same import twice: the same ids


def test_ids_are_replaced_wherever_they_appear_in_text():
    old, custom = "2f9a3c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c", "churn-project"
    ids = IdMap("acme", "copy")
    ids.add(old)
    ids.add(custom)
    assert ids.text(f"obs:{old}#2") == f"obs:{new_id(old, 'copy')}#2"
    assert ids.text(f'{{"ids": ["{old}"]}}') == f'{{"ids": ["{new_id(old, "copy")}"]}}'
    assert ids.text(f"{custom}:ref:m1") == f"{new_id(custom, 'copy')}:ref:m1"
    assert ids.text(f"ent:{custom}#1") == f"ent:{new_id(custom, 'copy')}#1"
    assert ids.value([old, "unrelated"]) == [new_id(old, "copy"), "unrelated"]
    assert ids.scope("acme/alice") == "copy/alice" and ids.scope("other/alice") == "other/alice"
