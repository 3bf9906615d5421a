"""Neo4j property values as JSON and back, exactly: the typed-value encoding of portable exports.

    encode(neo4j.time.DateTime(2026, 5, 8, 10, 0, 0, 123456789, tzinfo=UTC))
    # {"$datetime": "2026-05-08T10:00:00.123456789+00:00"}

Temporal values are tagged objects (`$datetime` with an optional named `zone`, `$localdatetime`, `$date`,
`$time`, `$localtime`, `$duration`, each in ISO 8601 with nanoseconds), bytes are `{"$bytes": base64}`;
booleans, integers, floats (-0.0 included) and strings are plain JSON, lists are lists. A property value is
never a map in Neo4j, so an object is always a tag. Values come from the driver's raw records
(`Tx.records`), which keep nanoseconds and zone ids that `Gateway.rows` would make Python's.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from neo4j.time import Date, DateTime, Duration, Time

from graph.errors import InvalidInput


def encode(value: Any) -> Any:
    """A Neo4j property value as JSON, temporal values and bytes tagged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, DateTime):
        if value.tzinfo is None:
            return {"$localdatetime": value.iso_format()}
        zone = getattr(value.tzinfo, "zone", None) or getattr(value.tzinfo, "key", None)
        tagged = {"$datetime": value.iso_format()}
        return tagged | {"zone": zone} if zone and zone != "UTC" else tagged
    if isinstance(value, Date):
        return {"$date": value.iso_format()}
    if isinstance(value, Time):
        return {"$time" if value.tzinfo is not None else "$localtime": value.iso_format()}
    if isinstance(value, Duration):
        return {"$duration": value.iso_format()}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list | tuple):  # after Duration, which is a tuple
        return [encode(item) for item in value]
    raise InvalidInput(f"cannot export a value of type {type(value).__name__}: {value!r}")


def decode(value: Any) -> Any:
    """The Neo4j value of what `encode` wrote."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$datetime" in value:
        moment = DateTime.from_iso_format(value["$datetime"])
        if value.get("zone"):
            import pytz

            moment = moment.astimezone(pytz.timezone(value["zone"]))
        return moment
    readers = {"$localdatetime": DateTime, "$date": Date, "$time": Time, "$localtime": Time, "$duration": Duration}
    for tag, kind in readers.items():
        if tag in value:
            return kind.from_iso_format(value[tag])
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    raise InvalidInput(f"the archive holds a value kgmem cannot read: {json.dumps(value)[:200]}")
