"""The errors the SDK raises, each carrying the WIT name of its case as ``reason``."""

from __future__ import annotations

from enum import Enum


class TetherError(Exception):
    """A host call refused: ``reason`` is the WIT case, e.g. ``"aborted"`` or ``"too-large"``."""

    reason: str

    def __init__(self, reason: "str | Enum") -> None:
        if isinstance(reason, Enum):
            reason = reason.name.lower().replace("_", "-")
        super().__init__(reason)
        self.reason = reason


class OutputError(TetherError):
    """Output not delivered: ``"aborted"`` (the client left; only seen while ignoring user
    aborts) or ``"finished"`` (after ``finish_request``)."""


class BodyError(TetherError):
    """A body read failed: ``"aborted"``, ``"too-large"``, ``"malformed"`` or
    ``"unavailable"``."""


class HeadError(TetherError):
    """A response head change refused: ``"headers-sent"`` (PHP: headers already sent),
    ``"invalid"`` or ``"reserved"`` (a framing header the host owns)."""
