"""Run a suite: every (data set, shots, seed, system) once, each in its own process, one JSON record each.

Records already on disk are kept and skipped, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..reporting.rundir import write_json
from .suite import DatasetSpec, Suite

log = logging.getLogger(__name__)


def record_name(dataset: str, shots: int | None, system: str, seed: int) -> str:
    return f"{dataset}__{'full' if shots is None else f'{shots}shot'}__{system}__seed{seed}.json"


def jobs(suite: Suite, root: Path, seeds: int) -> list[dict[str, Any]]:
    planned = []
    for dataset in suite.datasets:
        for shots in dataset.shots:
            for seed in range(seeds):
                for system in dataset.systems_for(shots) or suite.systems:
                    planned.append(job_for(suite, dataset, root, shots, seed, system))
    return planned


def job_for(suite: Suite, dataset: DatasetSpec, root: Path, shots: int | None, seed: int, system: str) -> dict:
    return {
        "suite": suite.name,
        "dataset": dataset.name,
        "data": dataset.resolve(root),
        "models": dataset.models,
        "metric": dataset.metric,
        "report_split": dataset.report_split,
        "shots": shots,
        "seed": seed,
        "system": system,
        "budget": dataset.budget_for(shots) or suite.budget,
        "baselines": suite.baselines,
        "peers_dir": str(suite.peers_dir) if suite.peers_dir else None,
    }


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in a worker process; wall-clock and that process's peak resident memory are measured."""
    with tempfile.TemporaryDirectory(prefix="transferopt-bench-") as tmp:
        job = {**job, "workdir": tmp}
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        started = time.perf_counter()
        # OpenMP threads that spin while waiting slow each other (and anything else on the cores) down:
        # measured on this 2-core machine beside another job, a fastai run took 295 s instead of 40 s.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        process = subprocess.Popen(
            [sys.executable, "-m", "transferopt.bench.worker", str(job_path), str(result_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stderr = process.stderr.read() if process.stderr else ""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        record = {k: v for k, v in job.items() if k not in ("workdir", "baselines", "peers_dir")}
        record.update(wall_s=wall, peak_memory_mb=usage.ru_maxrss / 1024)  # Linux reports KiB
        if process.returncode == 0 and result_path.is_file():
            record.update(json.loads(result_path.read_text()))
        else:
            lines = [line for line in stderr.splitlines() if line.strip()]
            record["error"] = lines[-1] if lines else f"exit status {process.returncode}"
    return record


def check_data(suite: Suite, root: Path) -> None:
    """Every data set exists before hours of runs start (builtin: ones always do)."""
    for dataset in suite.datasets:
        data = dataset.resolve(root)
        if not data.startswith("builtin:") and not Path(data).exists():
            raise ConfigError(f"data set {dataset.name!r} not found at {data} (check --data-root)")


def selected(suite: Suite, only: list[str] | None) -> Suite:
    """The suite cut to the named data sets (a long suite is run a data set at a time)."""
    if not only:
        return suite
    names = [d.name for d in suite.datasets]
    if unknown := [name for name in only if name not in names]:
        missing = ", ".join(map(repr, unknown))
        raise ConfigError(f"--only: no data set {missing} in suite {suite.name!r} (it has {', '.join(names)})")
    return dataclasses.replace(suite, datasets=[d for d in suite.datasets if d.name in only])


def systems_to_run(suite: Suite, planned: list[dict[str, Any]], systems: list[str] | None) -> set[str]:
    """The planned jobs' systems named in `systems` (all by default): a pair of systems a target compares
    can be measured side by side first, the others later."""
    known = list(dict.fromkeys(job["system"] for job in planned))
    if not systems:
        return set(known)
    if unknown := [name for name in systems if name not in known]:
        missing = ", ".join(map(repr, unknown))
        raise ConfigError(f"--systems: no system {missing} in suite {suite.name!r} (it has {', '.join(known)})")
    return set(systems)


def run_suite(
    suite: Suite,
    root: Path,
    out: Path,
    seeds: int | None = None,
    only: list[str] | None = None,
    run: bool = True,
    systems: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs of the data sets in `only` and the systems in `systems` (all by default) that have no
    record yet (none when `run` is false); return every record on disk of the suite's data sets, shots and
    systems, whatever seeds they hold, so a partial run still tables the whole suite."""
    to_run = selected(suite, only)
    if run:
        check_data(to_run, root)
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    planned = jobs(suite, root, seeds or suite.seeds)
    names = {d.name for d in to_run.datasets} if run else set()
    running = systems_to_run(suite, planned, systems)
    for number, job in enumerate(planned, 1):
        path = records_dir / record_name(job["dataset"], job["shots"], job["system"], job["seed"])
        if path.is_file():
            warn_if_budget_changed(path, job)
            continue
        if job["dataset"] not in names or job["system"] not in running:
            continue
        log.info("[%d/%d] %s, %s shots, seed %d: %s", number, len(planned), job["dataset"],
                 job["shots"] or "all", job["seed"], job["system"])  # fmt: skip
        record = run_job(job)
        if "error" in record:
            log.warning("%s failed: %s", path.stem, record["error"])
        write_json(path, record)
    return suite_records(suite, root, records_dir)


def warn_if_budget_changed(path: Path, job: dict[str, Any]) -> None:
    """A kept transferopt record searched under its own budget; say so when the suite now sets another."""
    if job["system"] != "transferopt":
        return
    budget = json.loads(path.read_text()).get("budget")
    if budget != job["budget"]:
        log.warning("%s was measured with a %s budget, the suite now says %s: delete it to measure it again",
                    path.name, budget, job["budget"])  # fmt: skip


def suite_records(suite: Suite, root: Path, records_dir: Path) -> list[dict[str, Any]]:
    """In the suite's order (data set, shots, system as listed), then by seed."""
    order = {(j["dataset"], j["shots"], j["system"]): i for i, j in enumerate(jobs(suite, root, seeds=1))}
    records = [json.loads(p.read_text()) for p in records_dir.glob("*.json")]
    kept = [r for r in records if (r.get("dataset"), r.get("shots"), r.get("system")) in order]
    return sorted(kept, key=lambda r: (order[(r["dataset"], r["shots"], r["system"])], r.get("seed", 0)))
