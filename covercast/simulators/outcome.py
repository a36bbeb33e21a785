"""What one slot of the population engine reports: :class:`SlotOutcome` (sparse arrays of
the slot's events) and the helpers that gather and merge outcomes."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = ["SlotOutcome"]

_I64 = np.empty(0, dtype=np.int64)
_I64.flags.writeable = False
_F64 = np.empty(0, dtype=np.float64)
_F64.flags.writeable = False


@dataclass(frozen=True)
class SlotOutcome:
    """What happened during one slot ``[start_h, end_h)``, as sparse arrays.

    Times are hours since the population's ``start``. Arrays with the same prefix are aligned
    (one element per delivered push, per open, ...). :meth:`to_dense` turns them into per-user
    arrays.
    """

    start_h: float
    """Start of the slot (hours since start)."""
    end_h: float
    """End of the slot."""
    push_user: np.ndarray
    """Users a push was delivered to (int64)."""
    push_id: np.ndarray
    """Id of each delivered push."""
    push_cover: np.ndarray
    """Bank index of each delivered push's cover."""
    push_topic: np.ndarray
    """Topic index of each delivered push."""
    push_time: np.ndarray
    """Delivery time of each push."""
    push_propensity: np.ndarray
    """Logging propensity given with each push."""
    blocked_user: np.ndarray
    """Users pushed after opting out: not delivered."""
    blocked_push_id: np.ndarray
    """Ids of those undelivered pushes."""
    collapsed_push_id: np.ndarray
    """Unseen pushes replaced in the tray by a newer push to the same user (never seen)."""
    open_user: np.ndarray
    """Users who opened a push (one element per open)."""
    open_push_id: np.ndarray
    """The opened push."""
    open_cover: np.ndarray
    """Its cover."""
    open_topic: np.ndarray
    """Its topic."""
    open_time: np.ndarray
    """Time of the open."""
    open_delay_h: np.ndarray
    """Hours between delivery and the open (0 when seen at once)."""
    open_dwell_s: np.ndarray
    """Seconds spent in the pushed session."""
    open_like: np.ndarray
    """Whether the open brought a like (bool)."""
    open_share: np.ndarray
    """... a share."""
    open_comment: np.ndarray
    """... a comment."""
    open_satisfaction: np.ndarray
    """Survey score 1-5, or 0 when the open was not surveyed (int8)."""
    opt_out_user: np.ndarray
    """Users who opted out during the slot."""
    opt_out_push_id: np.ndarray
    """The push each opted out in response to."""
    opt_out_time: np.ndarray
    """When."""
    session_user: np.ndarray
    """Users with organic sessions in the slot (sorted)."""
    session_count: np.ndarray
    """Their number of organic sessions."""

    @property
    def n_pushes(self) -> int:
        """Number of delivered pushes."""
        return int(self.push_user.size)

    @property
    def n_opens(self) -> int:
        """Number of opens."""
        return int(self.open_user.size)

    @property
    def n_sessions(self) -> int:
        """Number of organic sessions."""
        return int(self.session_count.sum())

    def to_dense(self, n_users: int) -> dict[str, np.ndarray]:
        """Per-user arrays of length ``n_users``.

        Returns
        -------
        dict
            ``pushes`` (int, delivered), ``blocked`` (int), ``opens`` (int), ``dwell_s``
            (float, total pushed-session seconds), ``likes``, ``shares``, ``comments``,
            ``surveys`` (int), ``satisfaction`` (float, mean survey score, NaN if none),
            ``opted_out`` (bool, opted out in this slot), ``sessions`` (int, organic).
        """
        if n_users < 1:
            raise ValueError(f"`n_users` must be >= 1, got {n_users!r}.")

        def count(users: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(users, weights=w, minlength=n_users)[:n_users]

        surveyed = self.open_satisfaction > 0
        n_surv = count(self.open_user[surveyed])
        sat_sum = count(self.open_user[surveyed], self.open_satisfaction[surveyed].astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            sat = np.where(n_surv > 0, sat_sum / np.maximum(n_surv, 1), np.nan)
        sessions = np.zeros(n_users, dtype=np.int64)
        sessions[self.session_user] = self.session_count
        opted = np.zeros(n_users, dtype=bool)
        opted[self.opt_out_user] = True
        return {
            "pushes": count(self.push_user),
            "blocked": count(self.blocked_user),
            "opens": count(self.open_user),
            "dwell_s": count(self.open_user, self.open_dwell_s).astype(np.float64),
            "likes": count(self.open_user[self.open_like]),
            "shares": count(self.open_user[self.open_share]),
            "comments": count(self.open_user[self.open_comment]),
            "surveys": n_surv,
            "satisfaction": sat,
            "opted_out": opted,
            "sessions": sessions,
        }


def _merge_outcomes(outs: list[SlotOutcome], start: float, sessions: np.ndarray
                    ) -> SlotOutcome:
    """One outcome for consecutive slots: events concatenated in time order, organic
    sessions summed per user (``sessions``: the per-user totals)."""
    d: dict[str, Any] = {"start_h": start, "end_h": outs[-1].end_h}
    for f in fields(SlotOutcome):
        if f.name in d or f.name.startswith("session_"):
            continue
        parts = [getattr(o, f.name) for o in outs]
        d[f.name] = _cat([x for x in parts if x.size], parts[0][:0])
    users = np.flatnonzero(sessions)
    d["session_user"] = users
    d["session_count"] = sessions[users].astype(np.int64)
    return SlotOutcome(**d)


def _cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def _group(users: np.ndarray, values: np.ndarray | None, unique: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Unique users with event counts (and summed values)."""
    if unique:
        return users, np.ones(users.size, dtype=np.int64), values
    u, inv, cnt = np.unique(users, return_inverse=True, return_counts=True)
    summed = None if values is None else np.bincount(inv, weights=values, minlength=u.size)
    return u, cnt, summed


#: SlotOutcome fields gathered event by event during a slot.
_ACC_KEYS: tuple[str, ...] = tuple(f.name for f in fields(SlotOutcome)
                                   if f.name not in ("start_h", "end_h", "session_user",
                                                     "session_count"))
