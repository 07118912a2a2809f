"""Benchmark suites: YAML files naming data sets, shot counts, seeds, budgets and the systems to compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Systems built into transferopt; peers (SetFit, fastai, ...) come from adapter files.
BUILTIN_SYSTEMS = ("transferopt", "linear-probe", "naive-fine-tune", "scratch")


@dataclass
class Targets:
    peer: str
    margin: float
    time_ratio: float


def parse_targets(value: Any, where: str) -> Targets:
    if not isinstance(value, dict) or set(value) != {"peer", "margin", "time_ratio"}:
        raise ConfigError(
            f"{where}: targets must give peer, margin and time_ratio, e.g. {{peer: setfit, margin: 0.05, "
            "time_ratio: 0.1}"
        )
    numbers = {k: value[k] for k in ("margin", "time_ratio")}
    if bad := [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, int | float)]:
        raise ConfigError(f"{where}: targets {', '.join(bad)} must be a number")
    return Targets(str(value["peer"]), float(value["margin"]), float(value["time_ratio"]))


@dataclass
class DatasetSpec:
    name: str
    data: str  # relative to the data root unless absolute or builtin:
    models: list[str]  # optimize's candidates; the baselines use the first
    metric: str = "accuracy"
    report_split: str = "test"
    shots: list[int | None] = field(default_factory=lambda: [None])  # None: all the training data
    #: The systems run on this data set (default: the suite's); e.g. a text-only peer on text data only.
    #: One list, or one per shot count ({5: [...], full: [scratch]}): a learning curve needs training from
    #: scratch on all the data, where running every system would cost hours for nothing the table asks.
    systems: list[str] | dict[int | None, list[str]] | None = None
    #: optimize's budget on this data set (default: the suite's): one duration, or one per shot count
    #: ({5: 15s, full: 1m}). Peers' times differ with the data's size, and the comparison the issue asks
    #: for is accuracy at a fraction of the peer's time.
    budget: str | dict[int | None, str] | None = None
    #: What transferopt must show against a peer here, checked in the table: at least `margin` more on
    #: the metric, in at most `time_ratio` of the peer's wall-clock.
    targets: Targets | None = None

    def systems_for(self, shots: int | None) -> list[str] | None:
        if isinstance(self.systems, dict):
            return self.systems[shots]
        return self.systems

    def budget_for(self, shots: int | None) -> str | None:
        if isinstance(self.budget, dict):
            return self.budget[shots]
        return self.budget

    def resolve(self, root: Path) -> str:
        """An absolute path: peers run their scripts from other folders (a relative --data-root broke them)."""
        if self.data.startswith("builtin:"):
            return self.data
        return str((Path(root) / self.data).resolve())


@dataclass
class Suite:
    name: str
    datasets: list[DatasetSpec]
    systems: list[str]
    seeds: int = 3
    budget: str = "15m"
    #: Settings of the fixed baselines per modality (the usual defaults of each recipe).
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers_dir: Path | None = None
    #: Printed under the table's heading: what a reader must know to read the figures (caches, budgets).
    notes: str = ""


def parse_shots(value: Any, where: str) -> int | None:
    if value in ("full", "all", None):
        return None
    if isinstance(value, int) and value >= 1:
        return value
    raise ConfigError(f"{where}: shots must be positive integers or 'full', got {value!r}")


def checked_budget(value: Any, where: str) -> str:
    """A duration as text ("90s", "15m"); a number means seconds. Anything else names the field."""
    from ..search.budget import parse_budget

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: budget {value!r} is not a duration like 90s, 15m or 1h30m")
    try:
        parse_budget(value)
    except ConfigError:
        raise ConfigError(f"{where}: budget {value!r} is not a positive duration like 90s, 15m or 1h30m") from None
    return str(value)


def shots_text(shots: list[int | None]) -> str:
    return ", ".join("full" if s is None else str(s) for s in shots)


def per_shot(
    value: dict, shots: list[int | None], field_name: str, entry: str, where: str, check: Callable[[Any, str], Any]
) -> dict[int | None, Any]:
    """A mapping with one `entry` (a duration, a list) for each of the data set's shot counts (and no
    other), each checked."""
    entries: dict[int | None, Any] = {}
    for key, item in value.items():
        count = parse_shots(key, f"{where}: {field_name}")
        if count not in shots or count in entries:
            raise ConfigError(
                f"{where}: {field_name} key {key!r} must name each of the shots ({shots_text(shots)}) once"
            )
        entries[count] = check(item, f"{where}: {field_name} {key}")
    if missing := [s for s in shots if s not in entries]:
        raise ConfigError(f"{where}: {field_name} has no {entry} for shots {shots_text(missing)}")
    return entries


def dataset_budget(value: Any, shots: list[int | None], where: str) -> str | dict[int | None, str]:
    """One duration, or one for each of the data set's shot counts."""
    if not isinstance(value, dict):
        return checked_budget(value, where)
    return per_shot(value, shots, "budget", "duration", where, checked_budget)


def checked_systems(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        raise ConfigError(f"{where}: systems must be a non-empty list of names, got {value!r}")
    return list(value)


def dataset_systems(value: Any, shots: list[int | None], where: str) -> list[str] | dict[int | None, list[str]]:
    """One list of systems, or one for each of the data set's shot counts."""
    if not isinstance(value, dict):
        return checked_systems(value, where)
    return per_shot(value, shots, "systems", "list", where, checked_systems)


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; every mistake is one message naming the file and the field."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw.get("datasets"):
        raise ConfigError(f"{path}: a suite needs a 'datasets' list")
    datasets = []
    for i, item in enumerate(raw["datasets"]):
        where = f"{path}: datasets[{i}]"
        missing = [k for k in ("name", "data", "models") if k not in item]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}")
        shots = [parse_shots(s, where) for s in item.get("shots", ["full"])]
        models = item["models"] if isinstance(item["models"], list) else [item["models"]]
        known = {"name", "data", "models", "metric", "report_split", "shots", "systems", "budget", "targets"}
        if unknown := sorted(set(item) - known):
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        datasets.append(
            DatasetSpec(
                name=str(item["name"]),
                data=str(item["data"]),
                models=[str(m) for m in models],
                metric=item.get("metric", "accuracy"),
                report_split=item.get("report_split", "test"),
                shots=shots,
                systems=dataset_systems(item["systems"], shots, where) if "systems" in item else None,
                budget=dataset_budget(item["budget"], shots, where) if "budget" in item else None,
                targets=parse_targets(item["targets"], where) if "targets" in item else None,
            )
        )
    peers_dir = raw.get("peers_dir")
    return Suite(
        name=str(raw.get("name", path.stem)),
        datasets=datasets,
        systems=[str(s) for s in raw.get("systems", BUILTIN_SYSTEMS)],
        seeds=int(raw.get("seeds", 3)),
        budget=checked_budget(raw.get("budget", "15m"), str(path)),
        baselines=raw.get("baselines") or {},
        peers_dir=(path.parent / peers_dir) if peers_dir else path.parent.parent / "peers",
        notes=str(raw.get("notes") or "").strip(),
    )
