"""Reading the dates people and tools write: one set of rules for conversations, imports and the API.

`parse_datetime` reads, in this order:

1. a `datetime` (a naive one is taken as UTC);
2. a number, or a string of digits: epoch seconds (9 to 11 digits) or milliseconds (12 to 14);
3. ISO 8601 (`2023-05-20`, `2023-05-20T14:30:00Z`, `2023-05-20 14:30+02:00`);
4. anything python-dateutil reads: RFC 2822 (`Sat, 20 May 2023 02:21:00 +0000`),
   `1:56 pm on 8 May, 2023`, `2023/05/20 (Sat) 02:21`, `29.12.2023, 00:51:12`, `May 8 2023`.

Day first or month first, for all-numeric dates:
- the year first (`2023/05/20`, `2023.05.20`) is always year, month, day;
- dots with the year last (`05.06.2023`) are day first, as in most of Europe: 5 June;
- slashes or dashes with the year last (`05/06/2023`) are month first, as in the US: May 6;
- a day above 12 settles it either way (`29/12/2023` is 29 December).

A date must name at least its year and month; a missing day is the 1st and a missing time
is midnight. A date without a zone is UTC. What cannot be read is an error, never "now".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dateutil import parser as dateutil_parser

_EPOCH = re.compile(r"^\s*(\d{9,14})(\.\d+)?\s*$")
_DOTTED_DAY_FIRST = re.compile(r"^\s*\d{1,2}\.\d{1,2}\.\d{2,4}\b")
_YEAR_FIRST = re.compile(r"^\s*\d{4}[./-]")
_WEEKDAY_IN_BRACKETS = re.compile(r"\((mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?\)", re.IGNORECASE)
# Two different defaults: a field that comes back as each default was not in the text.
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)

HINT = "write it as ISO 8601 (2023-05-20T14:30:00Z), RFC 2822, '8 May 2023 13:56' or epoch seconds"


def parse_datetime(value: str | int | float | datetime) -> datetime:
    """`value` as an aware UTC datetime; ValueError saying what was wrong and how to write it."""
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date: {HINT}")
    if isinstance(value, int | float):
        return _from_epoch(float(value), str(value))
    text = str(value).strip()
    if not text:
        raise ValueError(f"the date is empty: {HINT}")
    if match := _EPOCH.match(text):
        return _from_epoch(float(match.group(1) + (match.group(2) or "")), text)
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    return _from_words(text)


def read_datetime(text: str | None) -> datetime | None:
    """`parse_datetime` for bulk data: None (the item stays undated) when there is no readable date."""
    if text is None or not str(text).strip():
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        return None


def _from_words(text: str) -> datetime:
    cleaned = _WEEKDAY_IN_BRACKETS.sub(" ", text)
    day_first = bool(_DOTTED_DAY_FIRST.match(cleaned)) and not _YEAR_FIRST.match(cleaned)
    try:
        a = dateutil_parser.parse(cleaned, default=_DEFAULT_A, dayfirst=day_first, yearfirst=bool(_YEAR_FIRST.match(cleaned)),
                                  fuzzy=True)
        b = dateutil_parser.parse(cleaned, default=_DEFAULT_B, dayfirst=day_first, yearfirst=bool(_YEAR_FIRST.match(cleaned)),
                                  fuzzy=True)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"cannot read {text!r} as a date: {HINT}") from exc
    if a.year != b.year or a.month != b.month:
        raise ValueError(f"{text!r} names no year and month: {HINT}")
    if a.day != b.day:  # no day given: the 1st
        a = a.replace(day=1)
    return _utc(a)


def _from_epoch(seconds: float, text: str) -> datetime:
    if seconds >= 1e11:  # 12 digits and more: milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"{text} is out of range as epoch seconds: {HINT}") from exc


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # an offset that moves it before year 1 or after 9999
        raise ValueError(f"{moment.isoformat()} is out of range in UTC: {HINT}") from exc
