"""Interaction logs: the schema every covercast log follows, validation, readers, loaders.

A log is a :class:`pandas.DataFrame` with one row per event, in time order:

==============  =======================  ==========================================================
column          dtype                    meaning
==============  =======================  ==========================================================
user_id         int64                    the user
timestamp       datetime64[ns, UTC]      when the event happened
event           str                      one of :data:`EVENTS`
push_id         Int64 (nullable)         the push this event belongs to; required on ``push``,
                                         ``open``, ``like``, ``share``, ``comment``, ``survey``
style           str (nullable)           the cover style of the push (on push-related rows)
topic           str (nullable)           the push's content topic (on push-related rows)
dwell_s         float (NaN allowed)      seconds spent; required (>= 0) on ``open`` and
                                         ``session`` rows, NaN elsewhere
propensity      float (NaN allowed)      probability the logging policy gave to this push's
                                         action; required on ``push`` rows, in (0, 1]
==============  =======================  ==========================================================

Optional columns, validated when present: ``cover_id`` (Int64, index into the cover bank),
``satisfaction`` (1-5 on ``survey`` rows), ``segment`` (str; the true segment in simulated logs).

Event meanings: ``session`` an organic app session (not caused by a push); ``push`` a
notification delivered; ``open`` the user opened that push (the pushed session, with its dwell);
``like``/``share``/``comment`` engagement after an open; ``survey`` a 1-5 satisfaction answer
after an open; ``opt_out`` the user turned notifications off (terminal for pushes).
"""

from __future__ import annotations

#: Event types, in the order used to break ties between rows with the same timestamp.
EVENTS: tuple[str, ...] = ("session", "push", "open", "like", "share", "comment", "survey",
                           "opt_out")

#: Required columns, in canonical order.
COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "event", "push_id", "style", "topic",
                            "dwell_s", "propensity")

#: Optional columns, validated when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("cover_id", "satisfaction", "segment")

#: Events that must carry a push_id.
PUSH_EVENTS: frozenset[str] = frozenset({"push", "open", "like", "share", "comment", "survey"})
