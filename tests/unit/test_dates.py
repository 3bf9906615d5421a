"""Dates as people and tools write them, read by one set of rules (graph/dates.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from graph.dates import parse_datetime, read_datetime
from graph.model import EntityRef, ObservationIn


@pytest.mark.parametrize(("written", "meant"), [
    ("2023-05-20T14:30:00Z", datetime(2023, 5, 20, 14, 30, tzinfo=UTC)),
    ("2023-05-20 16:30+02:00", datetime(2023, 5, 20, 14, 30, tzinfo=UTC)),
    ("2023-05-20", datetime(2023, 5, 20, tzinfo=UTC)),
    ("Sat, 20 May 2023 02:21:00 +0000", datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),
    ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
    ("29.12.2023, 00:51:12", datetime(2023, 12, 29, 0, 51, 12, tzinfo=UTC)),
    ("2023/05/20 (Sat) 02:21", datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),
    ("May 8 2023", datetime(2023, 5, 8, tzinfo=UTC)),
    ("May 2023", datetime(2023, 5, 1, tzinfo=UTC)),
    ("1684549260", datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),
    (1684549260, datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),
    ("1684549260500", datetime(2023, 5, 20, 2, 21, 0, 500000, tzinfo=UTC)),
])
def test_common_formats_are_read(written, meant):
    assert parse_datetime(written) == meant


@pytest.mark.parametrize(("written", "meant"), [
    ("05.06.2023", datetime(2023, 6, 5, tzinfo=UTC)),  # dots, year last: day first
    ("05/06/2023", datetime(2023, 5, 6, tzinfo=UTC)),  # slashes, year last: month first
    ("2023/05/06", datetime(2023, 5, 6, tzinfo=UTC)),  # year first: year, month, day
    ("2023.05.06", datetime(2023, 5, 6, tzinfo=UTC)),
    ("29/12/2023", datetime(2023, 12, 29, tzinfo=UTC)),  # a day above 12 settles it
])
def test_the_day_and_month_order_rule(written, meant):
    assert parse_datetime(written) == meant


def test_a_zone_is_respected_and_its_absence_means_utc():
    assert parse_datetime(datetime(2023, 5, 20, 12, tzinfo=timezone(timedelta(hours=2)))).hour == 10
    assert parse_datetime(datetime(2023, 5, 20, 12)).tzinfo == UTC


@pytest.mark.parametrize("written", ["", "yesterday", "next Tuesday", "8 May", "version 3", "99999999999999999",
                                     "0001-01-01T00:01:00+01:00", "9999-12-31T23:59:00-01:00"])
def test_what_cannot_be_read_is_an_error_never_now(written):
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_datetime(written)
    assert read_datetime(written) is None


def test_the_api_reads_times_by_the_same_rules():
    observation = ObservationIn(entity=EntityRef(name="Churn"), text="AUC fell", valid_from="29.12.2023, 00:51:12")
    assert observation.valid_from == datetime(2023, 12, 29, 0, 51, 12, tzinfo=UTC)
    with pytest.raises(ValidationError) as refused:
        ObservationIn(entity=EntityRef(name="Churn"), text="AUC fell", valid_from="last week")
    assert refused.value.errors()[0]["loc"] == ("valid_from",)
    assert "ISO 8601" in refused.value.errors()[0]["msg"]
