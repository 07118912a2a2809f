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


def stop_before_budget_ends(budget: Budget, reserve_s: float):
    """A training hook that stops training when its next stretch (as long as the last one) would end
    within `reserve_s` of the budget's end, not only once the budget is spent: one epoch of a full
    fine-tune can be a tenth of a budget. What has trained so far is then judged on validation."""
    from ..engine import StopTraining  # torch: only once training is under way (budgets parse without it)

    last_check = {"at": budget.spent_s}

    def hook(record: dict) -> None:
        now = budget.spent_s
        took, last_check["at"] = now - last_check["at"], now
        if budget.total_s - now < reserve_s + took:
            raise StopTraining

    return hook
