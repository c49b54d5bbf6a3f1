"""Times as Docker shows them, shared by the API and the CLI (so: stdlib only, no aiohttp)."""

from __future__ import annotations

import re
from datetime import datetime


def unix_time(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 time (nanoseconds allowed)."""
    match = re.fullmatch(r"(.{19})(?:\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return 0
    zone = "+00:00" if match[2] == "Z" else match[2]
    return int(datetime.fromisoformat(match[1] + zone).timestamp())


def human_duration(seconds: float) -> str:
    """Go's ``units.HumanDuration``, which ``docker ps`` shows."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
