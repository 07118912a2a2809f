"""Wall-clock budgets: parsing "15m"-style strings and tracking what is left across resumes."""

from __future__ import annotations

import re
import time

from ..errors import ConfigError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str | float | int) -> float:
    """'15m', '90s', '1h30m', '2.5m' or a number of seconds -> seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        cleaned = text.strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)([smh]?)", cleaned)
        if not cleaned or "".join(n + u for n, u in parts) != cleaned:
            raise ConfigError(f"--budget {text!r} is not a duration like 90s, 15m or 1h30m")
        seconds = sum(float(n) * UNITS[u or "s"] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--budget must be positive, got {text!r}")
    return seconds


class Budget:
    """Seconds allowed in total, minus what earlier (interrupted) sessions already spent."""

    def __init__(self, total_s: float, spent_before_s: float = 0.0) -> None:
        self.total_s = total_s
        self.spent_before_s = spent_before_s
        self.started = time.monotonic()

    @property
    def spent_s(self) -> float:
        return self.spent_before_s + time.monotonic() - self.started

    @property
    def remaining_s(self) -> float:
        return self.total_s - self.spent_s
