"""transferopt: optimal transfer learning without expert effort.

Public API (heavy modules load lazily so `import transferopt` stays fast):
`fit`, `optimize`, `load`, `pretrained`, `list_models`, `list_strategies`, `FitConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import OPTIMIZE_PSEUDO_LABEL_SHARE_STEP, OPTIMIZE_SELF_TRAINING_ROUNDS

__version__ = "0.1.0"

__all__ = ["FitConfig", "FitResult", "fit", "list_models", "list_strategies", "load", "optimize", "pretrained"]


def fit(*args: Any, **kwargs: Any):
    from .api import fit as _fit

    return _fit(*args, **kwargs)


def optimize(
    data: str,
    candidates: str | list[str],
    *,
    out: str | Path,
    budget: str | float = "15m",
    shots: int | None = None,
    seed: int = 0,
    metric: str = "accuracy",
    storage: str | None = None,
    resume: bool = False,
    flip: bool = True,
    early_stop: bool = True,
    max_trials: int | None = None,
    unlabeled: str | None = None,
    self_training_rounds: int = OPTIMIZE_SELF_TRAINING_ROUNDS,
    pseudo_label_share: float = 0.6,
    pseudo_label_share_step: float = OPTIMIZE_PSEUDO_LABEL_SHARE_STEP,
    self_training_epochs: int | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Rank the candidate models, search what to update and how within `budget` (e.g. "15m" or seconds),
    and save the best model in `out/model`. Returns the summary (also written to `out/summary.json`).
    With `unlabeled` (inputs of the task's kind without labels), the winner is then self-trained on them
    within the same budget; `pseudo_label_share_step` (0.2 by default: 60%, 80%, then all of the pool) grows
    the pseudo-labelled share each round, 0 keeps one share; each student trains for `self_training_epochs`
    (default: as many as the winner). `precision` ("auto", "fp32" or "bf16") is every trial's: auto runs
    bfloat16 autocast where the device has bfloat16 instructions.
    `flip=False` keeps augmented images unflipped (digits, text, left-right anatomy). `transferopt.load(out)`
    gives the best model back."""
    from .search import OptimizeSettings, parse_budget
    from .search import optimize as _optimize

    names = [c.strip() for c in candidates.split(",")] if isinstance(candidates, str) else list(candidates)
    settings = OptimizeSettings(
        data=str(data),
        candidates=[n for n in names if n],
        budget_s=parse_budget(budget),
        out=Path(out),
        shots=shots,
        seed=seed,
        metric=metric,
        storage=storage,
        flip=flip,
        early_stop=early_stop,
        max_trials=max_trials,
        unlabeled=None if unlabeled is None else str(unlabeled),
        self_training_rounds=self_training_rounds,
        pseudo_label_share=pseudo_label_share,
        pseudo_label_share_step=pseudo_label_share_step,
        self_training_epochs=self_training_epochs,
        precision=precision,
    )
    return _optimize(settings, resume=resume)


def load(run_dir):
    from .api import load as _load

    return _load(run_dir)


def pretrained(model: str, task: str = "speech-recognition"):
    """A pretrained model used as it is (the zero-shot baseline), e.g. `pretrained("whisper-base")`."""
    from .api import pretrained as _pretrained

    return _pretrained(model, task)


def list_models() -> list[dict]:
    from .models import list_models as _list_models

    return _list_models()


def list_strategies() -> list[str]:
    from .strategies import STRATEGIES

    return STRATEGIES.names()


def __getattr__(name: str):
    if name == "FitConfig":
        from .config import FitConfig

        return FitConfig
    if name == "FitResult":
        from .api import FitResult

        return FitResult
    raise AttributeError(name)
