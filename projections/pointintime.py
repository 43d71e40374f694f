"""Point-in-time filters: which events a projection applies when it is rebuilt as of a moment.

Two time axes, as the design names them: `as_of` is the world as observed up to T (an observation applies when its
`observed_at_utc` <= T), `known_at` and `at_seq` are what the lake knew then (`recorded_at_utc` <= T, log
`seq` <= N). Given together, every condition must hold. A `resolved` event has no observed time: `as_of` leaves
it to apply (its winner must itself be observed by T), `known_at` and `at_seq` filter it like any event.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from eventlog.errors import InputError
from eventlog.format.envelope import format_utc
from eventlog.format.events import Event

__all__ = ["PointInTime", "parse_moment"]


class PointInTime(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A filter over events; the fields that are None do not filter. Timestamps are `format_utc` text."""

    as_of: str | None = None
    known_at: str | None = None
    at_seq: int | None = None

    @classmethod
    def of(cls, *, as_of: datetime | str | None = None, known_at: datetime | str | None = None,
           at_seq: int | None = None) -> PointInTime | None:
        """The filter for these options, or None when none is given (the live projection).

        Raises InputError for a timestamp without a UTC offset or that is not ISO 8601, and for a negative seq.
        """
        if at_seq is not None and (isinstance(at_seq, bool) or not isinstance(at_seq, int) or at_seq < 0):
            raise InputError(f"--at-seq {at_seq!r} is not a log seq (an integer >= 0)")
        point = cls(as_of=None if as_of is None else parse_moment(as_of, option="--as-of"),
                    known_at=None if known_at is None else parse_moment(known_at, option="--known-at"),
                    at_seq=at_seq)
        return None if point == cls() else point

    def admits(self, event: Event) -> bool:
        """Whether the projection applies `event` under this filter."""
        observed = event.body.get("observed_at_utc") if event.type != "resolved" else None
        return self.admits_at(seq=event.seq, recorded_at_utc=event.recorded_at_utc,
                              observed_at_utc=observed if isinstance(observed, str) else "")

    def admits_at(self, *, seq: int, recorded_at_utc: str, observed_at_utc: str | None) -> bool:
        """`admits` from an event's seq and times; `observed_at_utc` None for a resolution, which has none."""
        if self.at_seq is not None and seq > self.at_seq:
            return False
        if self.known_at is not None and recorded_at_utc > self.known_at:
            return False
        return self.as_of is None or observed_at_utc is None or observed_at_utc <= self.as_of

    def describe(self) -> str:
        """The filter as the command line writes it: `--as-of T --known-at T --at-seq N`."""
        parts = []
        if self.as_of is not None:
            parts.append(f"--as-of {self.as_of}")
        if self.known_at is not None:
            parts.append(f"--known-at {self.known_at}")
        if self.at_seq is not None:
            parts.append(f"--at-seq {self.at_seq}")
        return " ".join(parts)


def parse_moment(value: datetime | str, *, option: str = "the timestamp") -> str:
    """A moment as fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`) from an aware datetime or ISO 8601 text.

    Raises InputError naming `option` when the text is not ISO 8601 or the moment has no UTC offset.
    """
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{option} {value!r} is not an ISO 8601 timestamp such as 2024-05-01T12:00:00Z") \
                from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise InputError(f"{option} must be a timestamp, not {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{option} {value!s} has no UTC offset; write it with Z or an offset such as +02:00")
    return format_utc(moment)
