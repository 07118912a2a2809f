"""`transferopt bench`: suites, one process per run with its time and memory, resume, table and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferopt.bench import load_suite
from transferopt.bench.runner import run_suite
from transferopt.cli.main import app
from transferopt.errors import ConfigError

runner = CliRunner()


def write_suite(path: Path, data: Path, **extra) -> Path:
    suite = {
        "name": "tiny",
        "budget": "8s",
        "seeds": 2,
        "systems": ["transferopt", "linear-probe", "naive-fine-tune", "scratch"],
        "baselines": {"naive-fine-tune": {"image": {"epochs": 1}}, "scratch": {"image": {"epochs": 1}}},
        "datasets": [{"name": "colours", "data": str(data), "models": ["tiny-effnet"], "shots": [2, "full"]}],
        **extra,
    }
    import yaml

    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture()
def plugins(monkeypatch):
    # Workers are separate processes: they learn the tiny test models from the plug-in variable.
    monkeypatch.setenv("TRANSFEROPT_PLUGINS", "tests.conftest")


def test_bench_runs_every_system_in_its_own_process_and_writes_table_and_plots(tmp_path, colour_folder, plugins):
    suite = write_suite(tmp_path / "tiny.yaml", colour_folder)
    out = tmp_path / "results" / "tiny"
    result = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    assert len(records) == 2 * 4  # 2 shot counts x 4 systems x 1 seed
    assert all("error" not in r for r in records), [r.get("error") for r in records]
    by_system = {r["system"]: r for r in records if r["shots"] is None}
    assert by_system["linear-probe"]["trainable_params"] < by_system["naive-fine-tune"]["trainable_params"]
    assert by_system["scratch"]["strategy"] == "full"
    assert by_system["transferopt"]["trials"]  # the search's leaderboard travels with the record
    for r in records:
        assert r["wall_s"] > 0 and r["peak_memory_mb"] > 50  # a real process with torch loaded
        assert 0.0 <= r["metrics"]["accuracy"] <= 1.0
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "| 2 | transferopt (8s budget) |" in table and "| full | scratch |" in table
    for kind in ("data", "time", "params"):
        for suffix in (".png", ".svg"):
            assert (tmp_path / "results" / f"tiny_{kind}{suffix}").stat().st_size > 1000

    # A second run finds every record and runs nothing again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    records_again = run_suite(load_suite(suite), Path("."), out, seeds=1)
    assert len(records_again) == len(records)
    assert {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")} == stamps


def test_a_failing_system_is_recorded_with_its_reason(tmp_path, colour_folder, plugins):
    peers = tmp_path / "peers"
    peers.mkdir()
    (peers / "broken_tool.py").write_text("def run(job):\n    raise RuntimeError('peer exploded')\n")
    suite = write_suite(tmp_path / "s.yaml", colour_folder, systems=["broken-tool"], peers_dir="peers")
    records = run_suite(load_suite(suite), Path("."), tmp_path / "out", seeds=1)
    assert records and all(r["error"] == "RuntimeError: peer exploded" for r in records)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\n", "needs a 'datasets' list"),
        ("datasets: [{name: a, data: b}]\n", r"datasets\[0\] lacks models"),
        ("datasets: [{name: a, data: b, models: m, shots: [0]}]\n", "shots must be positive integers or 'full'"),
        ("datasets: [{name: a, data: b, models: m, colour: red}]\n", "unknown field"),
        ("datasets: [\n", "not valid YAML"),
        ("datasets: [{name: a, data: b, models: m, targets: {peer: p}}]\n", "targets must give peer, margin"),
        ("datasets: [{name: a, data: b, models: m, targets: {peer: p, margin: x, time_ratio: 1}}]\n", "margin must"),
    ],
)
def test_suite_mistakes_are_one_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_suite(path)
    result = runner.invoke(app, ["bench", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error: ")


def test_unknown_system_names_the_missing_adapter(tmp_path):
    from transferopt.bench.systems import find_system

    with pytest.raises(ConfigError, match=r"unknown system 'setfitx'.*no adapter .*setfitx\.py"):
        find_system("setfitx", tmp_path)


def test_a_missing_data_set_stops_the_suite_before_any_run(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", tmp_path / "nowhere")
    result = runner.invoke(app, ["bench", str(suite), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: data set 'colours' not found at {tmp_path / 'nowhere'} (check --data-root)"
    assert not (tmp_path / "out" / "records").exists() or not any((tmp_path / "out" / "records").iterdir())


def test_bench_handles_speech_recognition(tmp_path, spoken_dir, plugins):
    suite = write_suite(
        tmp_path / "speech.yaml",
        spoken_dir,
        systems=["transferopt", "naive-fine-tune", "linear-probe"],
        baselines={"naive-fine-tune": {"audio": {"epochs": 1}}},
        datasets=[
            {"name": "spoken", "data": str(spoken_dir), "models": ["tiny-whisper-asr"], "metric": "wer", "shots": [4]}
        ],  # fmt: skip
    )
    out = tmp_path / "results" / "speech"
    result = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    by_system = {r["system"]: r for r in (json.loads(p.read_text()) for p in (out / "records").glob("*.json"))}
    assert "wer" in by_system["transferopt"]["metrics"] and "wer" in by_system["naive-fine-tune"]["metrics"]
    assert "fits a new classification head" in by_system["linear-probe"]["error"]
    table = (tmp_path / "results" / "speech.md").read_text()
    assert "wer" in table and "| 4 | naive-fine-tune |" in table


def test_a_data_set_can_list_its_own_systems(tmp_path, colour_folder):
    from transferopt.bench.runner import jobs

    suite = write_suite(
        tmp_path / "s.yaml",
        colour_folder,
        datasets=[
            {"name": "a", "data": str(colour_folder), "models": ["tiny-effnet"], "systems": ["linear-probe"]},
            {"name": "b", "data": str(colour_folder), "models": ["tiny-effnet"]},
        ],
    )
    planned = {(j["dataset"], j["system"]) for j in jobs(load_suite(suite), Path("."), seeds=1)}
    assert planned == {("a", "linear-probe")} | {("b", s) for s in load_suite(suite).systems}


def test_a_data_set_can_list_systems_per_shot_count(tmp_path, colour_folder):
    from transferopt.bench.runner import jobs

    suite = write_suite(
        tmp_path / "s.yaml",
        colour_folder,
        datasets=[
            {"name": "a", "data": str(colour_folder), "models": ["tiny-effnet"], "shots": [2, "full"],
             "systems": {2: ["transferopt", "linear-probe"], "full": ["scratch"]}},
        ],
    )  # fmt: skip
    planned = {(j["shots"], j["system"]) for j in jobs(load_suite(suite), Path("."), seeds=1)}
    assert planned == {(2, "transferopt"), (2, "linear-probe"), (None, "scratch")}


def test_a_data_set_can_set_its_own_budget(tmp_path, colour_folder):
    from transferopt.bench.runner import jobs

    suite = write_suite(
        tmp_path / "s.yaml",
        colour_folder,
        datasets=[
            {"name": "a", "data": str(colour_folder), "models": ["tiny-effnet"], "budget": "45s"},
            {"name": "b", "data": str(colour_folder), "models": ["tiny-effnet"]},
            {"name": "c", "data": str(colour_folder), "models": ["tiny-effnet"], "shots": [2, "full"],
             "budget": {2: "10s", "full": "1m"}},
        ],
    )  # fmt: skip
    budgets = {(j["dataset"], j["shots"]): j["budget"] for j in jobs(load_suite(suite), Path("."), seeds=1)}
    assert budgets == {("a", None): "45s", ("b", None): "8s", ("c", 2): "10s", ("c", None): "1m"}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("budget", "soon", r"datasets\[0\]: budget 'soon' is not a positive duration"),
        ("budget", "-5", r"datasets\[0\]: budget -5 is not a positive duration"),
        ("budget", "yes", r"datasets\[0\]: budget True is not a duration"),
        ("budget", "[1m]", r"datasets\[0\]: budget \['1m'\] is not a duration"),
        ("budget", "{5: 10s, full: later}", r"datasets\[0\]: budget full: budget 'later' is not a positive duration"),
        ("budget", "{5: 10s, full: }", r"datasets\[0\]: budget full: budget None is not a duration"),
        ("budget", "{5: 10s}", r"datasets\[0\]: budget has no duration for shots full"),
        ("budget", "{5: 10s, 7: 1m, full: 1m}",
         r"datasets\[0\]: budget key 7 must name each of the shots \(5, full\) once"),
        ("budget", "{5: 10s, full: 1m, all: 2m}", r"budget key 'all' must name each of the shots \(5, full\) once"),
        ("systems", "{5: [scratch]}", r"datasets\[0\]: systems has no list for shots full"),
        ("systems", "{5: [a], 9: [a], full: [a]}", r"systems key 9 must name each of the shots \(5, full\) once"),
        ("systems", "{5: [a], full: []}", r"datasets\[0\]: systems full: systems must be a non-empty list of names"),
        ("systems", "scratch", r"datasets\[0\]: systems must be a non-empty list of names, got 'scratch'"),
    ],
)  # fmt: skip
def test_a_bad_data_set_budget_or_systems_names_the_data_set(tmp_path, name, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"datasets: [{{name: a, data: b, models: m, shots: [5, full], {name}: {value}}}]\n")
    with pytest.raises(ConfigError, match=message):
        load_suite(path)


def test_only_runs_the_named_data_sets_and_tables_every_record(tmp_path, colour_folder, plugins):
    suite = write_suite(
        tmp_path / "s.yaml",
        colour_folder,
        systems=["linear-probe"],
        datasets=[
            {"name": "a", "data": str(colour_folder), "models": ["tiny-effnet"], "shots": ["full"]},
            {"name": "b", "data": str(colour_folder), "models": ["tiny-effnet"], "shots": ["full"]},
        ],
    )
    out = tmp_path / "results" / "tiny"
    first = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out), "--only", "a"])
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (out / "records").iterdir()) == ["a__full__linear-probe__seed0.json"]
    second = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out), "--only", "b"])
    assert second.exit_code == 0, second.output
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "## a " in table and "## b " in table  # b's run kept a's record in the table
    whole_suite = f"transferopt bench {suite} --data-root ../shared/datasets --seeds 1 --out {out}"
    assert f"Reproduce: `{whole_suite}`" in table
    (out / "records" / "b__full__linear-probe__seed0.json").unlink()
    rewritten = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out), "--table-only"])
    assert rewritten.exit_code == 0, rewritten.output
    assert not (out / "records" / "b__full__linear-probe__seed0.json").exists()  # nothing ran
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "## a " in table and "## b " not in table
    unknown = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--only", "c"])
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "error: --only: no data set 'c' in suite 'tiny' (it has a, b)"
    for wrong in (["--only", ","], ["--only", "a", "--table-only"]):
        result = runner.invoke(app, ["bench", str(suite), "--out", str(out), *wrong])
        assert result.exit_code == 2 and result.output.startswith("error: --only needs data set names")


def test_systems_runs_the_named_systems_only(tmp_path, colour_folder, plugins):
    suite = write_suite(tmp_path / "s.yaml", colour_folder, systems=["linear-probe", "naive-fine-tune"])
    out = tmp_path / "results" / "tiny"
    result = runner.invoke(app, ["bench", str(suite), "--seeds", "1", "--out", str(out), "--systems", "linear-probe"])
    assert result.exit_code == 0, result.output
    ran = sorted(p.name for p in (out / "records").iterdir())
    assert ran == ["colours__2shot__linear-probe__seed0.json", "colours__full__linear-probe__seed0.json"]
    unknown = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--systems", "linear-probe,fastai"])
    assert unknown.exit_code == 2
    expected = "error: --systems: no system 'fastai' in suite 'tiny' (it has linear-probe, naive-fine-tune)"
    assert unknown.output.strip() == expected
    for wrong in (["--systems", " , "], ["--systems", "scratch", "--table-only"]):
        result = runner.invoke(app, ["bench", str(suite), "--out", str(out), *wrong])
        assert result.exit_code == 2 and result.output.startswith("error: --systems needs system names")
    assert sorted(p.name for p in (out / "records").iterdir()) == ran


def test_the_table_keeps_every_seed_on_disk_and_says_when_a_budget_changed(tmp_path, colour_folder, caplog):
    from transferopt.bench.runner import record_name

    suite = write_suite(tmp_path / "s.yaml", colour_folder, systems=["transferopt"], notes="Read me first.")
    out = tmp_path / "results" / "tiny"
    (out / "records").mkdir(parents=True)
    for seed in range(3):  # three seeds measured earlier, although this suite says 2
        record = {"dataset": "colours", "shots": 2, "system": "transferopt", "seed": seed, "budget": "30s",
                  "metric": "accuracy", "report_split": "test", "metrics": {"accuracy": 0.5}, "wall_s": 20.0,
                  "peak_memory_mb": 100.0}  # fmt: skip
        (out / "records" / record_name("colours", 2, "transferopt", seed)).write_text(json.dumps(record))
    result = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--seeds", "1", "--table-only"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "| 2 | transferopt (30s budget) | 0.5000 ± 0.0000 | 3 |" in table and "\nRead me first.\n" in table
    assert "measured with a 30s budget, the suite now says 8s: delete it to measure it again" in caplog.text


def test_jobs_carry_absolute_data_paths_whatever_the_root(tmp_path, colour_folder, monkeypatch):
    from transferopt.bench.runner import jobs

    # Peers run their scripts in other folders: a relative --data-root must not reach them as it is.
    monkeypatch.chdir(colour_folder.parent)
    suite = write_suite(tmp_path / "s.yaml", Path(colour_folder.name))
    (job, *_) = jobs(load_suite(suite), Path("."), seeds=1)
    assert job["data"] == str(colour_folder.resolve())


def test_the_table_checks_each_shot_count_against_the_targets(tmp_path):
    from transferopt.bench.suite import Targets
    from transferopt.bench.table import write_table

    def record(system, shots, seed, value, wall):
        return {
            "dataset": "d",
            "shots": shots,
            "system": system,
            "seed": seed,
            "metric": "accuracy",
            "report_split": "test",
            "metrics": {"accuracy": value},
            "wall_s": wall,
            "peak_memory_mb": 1.0,
        }

    records = [
        *(record("transferopt", s, i, v, 10.0) for s, v in ((5, 0.80), (10, 0.86)) for i in range(2)),
        *(record("peer", s, i, v, w) for s, v, w in ((5, 0.76, 50.0), (10, 0.79, 200.0)) for i in range(2)),
        record("scratch", 10, 0, 0.60, 30.0),
        record("scratch", None, 0, 0.84, 90.0),
    ]
    path = write_table(records, tmp_path / "t.md", "t", "cmd", targets={"d": Targets("peer", 0.05, 0.1)})
    text = path.read_text()
    assert "| 5 | +4.0 points | NO | 0.20 | NO | — |" in text
    assert "| 10 | +7.0 points | yes | 0.05 | yes | +26.0 points |" in text
    assert (
        "with 10 examples per class (0.8600) reaches what training from scratch gets from all the data (0.8400)" in text
    )
    assert "| full | transferopt | — | 0 |" in text  # seen on the data set, so listed at every shot count
    planned = {(r["dataset"], r["shots"], r["system"]) for r in records}
    text = write_table(records, tmp_path / "p.md", "t", "cmd", planned=planned).read_text()
    assert "| full | transferopt |" not in text and "| full | scratch | 0.8400 ± 0.0000 |" in text
