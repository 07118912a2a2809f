"""The optimizer: budget parsing, a search within budget, the saved winner, and resume after kill -9."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import transferopt
from transferopt.errors import ConfigError, RunDirError
from transferopt.search import OptimizeSettings, optimize, parse_budget
from transferopt.search.space import BATCH_SIZES
from transferopt.search.study import PROBE_NOISE_ERRORS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2.5m", 150), ("45", 45)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "10x", "0s", "-5m"])
def test_parse_budget_rejects(text):
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(text)


def test_search_within_budget_saves_a_loadable_winner(tmp_path, colour_folder):
    out = tmp_path / "search"
    settings = OptimizeSettings(
        data=str(colour_folder),
        candidates=["tiny-effnet", "tiny-resnet"],
        budget_s=25,
        out=out,
        max_epochs=3,
        early_stop=False,  # the whole budget is spent, to check it is honoured
    )
    started = time.monotonic()
    summary = optimize(settings)
    elapsed = time.monotonic() - started
    assert elapsed <= 25 * 1.1 + 3  # the budget, with a small allowance for start-up
    assert summary["spent_s"] <= 25 * 1.1
    assert (out / "summary.md").read_text().startswith("# transferopt optimize")
    rows = summary["leaderboard"]
    assert rows and {r["strategy"] for r in rows} >= {"linear-probe"}
    # The probe of every kept candidate ran first (cheap cached strategies first).
    first = sorted(rows, key=lambda r: r["trial"])[:2]
    assert [r["strategy"] for r in first] == ["linear-probe", "linear-probe"]
    assert {r["batch_size"] for r in rows} <= set(BATCH_SIZES)
    winner = summary["winner"]
    assert (
        winner["trial"] == max((r for r in rows if r["state"] == "complete"), key=lambda r: r["val_accuracy"])["trial"]
    )
    loaded = transferopt.load(out)
    assert loaded.config.model == winner["model"] and loaded.config.strategy == winner["strategy"]
    assert loaded.evaluate(str(colour_folder), "val")["accuracy"] == pytest.approx(winner["val"]["accuracy"])
    # Each model's frozen prefixes whose states a trial cached: later trials are priced without them.
    cached = json.loads((out / "optimize.json").read_text())["cached_prefixes"]
    assert {r["model"] for r in rows if not r["augment"]} <= set(cached)
    assert sorted(summary["searched"]) == ["tiny-effnet", "tiny-resnet"]  # both kept (keep_candidates=2)
    assert summary["keeping"] == {"by_logme": 2, "probe_noise_errors": PROBE_NOISE_ERRORS}


def test_out_must_be_empty_unless_resuming(tmp_path, colour_folder):
    (tmp_path / "x.txt").write_text("keep")
    settings = OptimizeSettings(data=str(colour_folder), candidates=["tiny-effnet"], budget_s=5, out=tmp_path)
    with pytest.raises(RunDirError, match="not empty"):
        optimize(settings)
    with pytest.raises(RunDirError, match="no interrupted search"):
        optimize(settings, resume=True)
    assert (tmp_path / "x.txt").read_text() == "keep"


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import tests.conftest  # offline env and the tiny model aliases
from pathlib import Path
from transferopt.search import OptimizeSettings, optimize
settings = OptimizeSettings(data={data!r}, candidates=["tiny-effnet"], budget_s={budget}, out=Path({out!r}),
                            max_epochs=3, early_stop=False)
optimize(settings, resume={resume})
"""


def completed_trials(database: Path) -> list[tuple[int, str]]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "select t.number, group_concat(p.param_name || '=' || p.param_value, ',') from trials t "
                "left join trial_params p on p.trial_id = t.trial_id where t.state = 'COMPLETE' "
                "group by t.trial_id order by t.number"
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [(number, params or "") for number, params in rows]


def test_resume_after_kill_keeps_every_finished_trial(tmp_path, colour_folder):
    out = tmp_path / "search"
    env = {**os.environ, "TRANSFEROPT_PROGRESS": "0"}

    def script(budget: float, resume: bool) -> list[str]:
        code = SCRIPT.format(root=str(ROOT), data=str(colour_folder), budget=budget, out=str(out), resume=resume)
        return [sys.executable, "-c", code]

    process = subprocess.Popen(script(60, False), env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 90
    while len(completed_trials(out / "study.db")) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = completed_trials(out / "study.db")
    assert len(before) >= 3, "the search did not get far enough to test resuming"
    spent_before = json.loads((out / "optimize.json").read_text())["spent_s"]

    resumed = subprocess.run(script(60, True), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = completed_trials(out / "study.db")
    assert after[: len(before)] == before  # nothing lost, nothing renumbered or re-run
    summary = json.loads((out / "summary.json").read_text())
    assert spent_before <= summary["spent_s"] <= 60 * 1.1
    assert transferopt.load(out).config.model == "tiny-effnet"


def test_repeated_plans_are_not_run_again(tmp_path, colour_folder, monkeypatch):
    """A plan already measured is recorded from the earlier trial instead of being trained again."""
    from transferopt.search import study as study_module

    runs = []
    original = study_module.run_trial

    def counting(trial, plan, *args, **kwargs):
        runs.append(
            (
                plan.model,
                plan.strategy,
                json.dumps(plan.options, sort_keys=True),
                json.dumps(plan.overrides, sort_keys=True),
            )
        )
        return original(trial, plan, *args, **kwargs)

    monkeypatch.setattr(study_module, "run_trial", counting)
    # Only the probe is searchable here, so every proposal after the first repeats it.
    monkeypatch.setattr("transferopt.search.space.SEARCHED_STRATEGIES", ("linear-probe",))
    monkeypatch.setattr(
        study_module, "opening_trials", lambda ranking, kept, *_: [{"model": kept[0], "strategy": "linear-probe"}]
    )
    settings = OptimizeSettings(data=str(colour_folder), candidates=["tiny-effnet"], budget_s=20, out=tmp_path / "s")
    summary = optimize(settings)
    assert len(runs) == len(set(runs)) == 1
    assert summary["spent_s"] < 20  # stopped early: nothing new to measure


def test_search_stops_early_once_it_stops_finding_better_plans(tmp_path, colour_folder):
    """The colours are separable at once: the first probe is never beaten, so the search ends well before
    its budget and says why (on 9 validation images, a trial falls clearly short of a perfect probe below
    0.8, and the trials after the probe do, or they tie it)."""
    from transferopt.search.convergence import CLEARLY_WORSE_TRIALS, PATIENCE_TRIALS

    out = tmp_path / "s"
    settings = OptimizeSettings(
        data=str(colour_folder), candidates=["tiny-effnet"], budget_s=120, out=out, max_epochs=3
    )
    summary = optimize(settings)
    assert summary["spent_s"] < 120 * 0.5
    ran = [r for r in summary["leaderboard"] if r["trial"] > summary["winner"]["trial"]]
    if summary["stopped_early"].startswith(f"the last {CLEARLY_WORSE_TRIALS} trials each fell short"):
        assert len(ran) >= CLEARLY_WORSE_TRIALS
        assert all(r["val"]["accuracy"] < 0.8 for r in ran[-CLEARLY_WORSE_TRIALS:])
    else:
        assert summary["stopped_early"].startswith(f"no better plan in the last {PATIENCE_TRIALS} trials")
        assert len(ran) >= PATIENCE_TRIALS
    assert "stopped early" in (out / "summary.md").read_text()


def test_a_search_that_ends_with_budget_left_says_why(tmp_path, colour_folder, monkeypatch):
    from transferopt.search import study as study_module

    monkeypatch.setattr(study_module, "expected_seconds", lambda study: 500.0)  # trials "take" 500 s
    out = tmp_path / "s"
    summary = optimize(OptimizeSettings(data=str(colour_folder), candidates=["tiny-effnet"], budget_s=120, out=out))
    assert len(summary["leaderboard"]) == 1  # the first trial always runs; no second fits
    assert re.fullmatch(r"another trial \(about 500s, the median so far\) would not fit in the \d+s left",
                        summary["stopped_early"])  # fmt: skip
    assert "would not fit" in (out / "summary.md").read_text()


def test_python_api_optimize_returns_the_summary_and_a_loadable_model(tmp_path, colour_folder):
    summary = transferopt.optimize(
        str(colour_folder), "tiny-effnet, tiny-resnet", out=tmp_path / "s", budget="15s", seed=1
    )
    assert summary["winner"] is not None and summary["budget_s"] == 15
    [prediction] = transferopt.load(tmp_path / "s").predict([colour_folder / "test" / "red" / "red_0.png"])
    assert prediction["label"] == "red"


def test_python_api_optimize_needs_candidates(tmp_path, colour_folder):
    with pytest.raises(ConfigError, match="at least one candidate"):
        transferopt.optimize(str(colour_folder), " , ", out=tmp_path / "s")


def test_fixed_seed_gives_the_same_leaderboard(tmp_path, colour_folder):
    """Same data, seed and settings: the same plans in the same order with the same scores."""

    def trials(out: Path) -> list[tuple]:
        summary = optimize(
            OptimizeSettings(
                data=str(colour_folder), candidates=["tiny-effnet", "tiny-resnet"], budget_s=300, out=out,
                max_epochs=2, seed=7, early_stop=False, max_trials=7,
            )
        )  # fmt: skip
        rows = sorted(summary["leaderboard"], key=lambda r: r["trial"])
        return [(r["trial"], r["model"], r["strategy"], json.dumps(r["options"]), r["lr"], r["val"]) for r in rows]

    first, second = trials(tmp_path / "a"), trials(tmp_path / "b")
    assert len(first) >= 5  # repeated plans are recorded, not listed twice
    assert first == second


def test_on_large_training_sets_trials_report_every_quarter_epoch(tmp_path, monkeypatch):
    """Data seen is a fidelity: with a large training set the pruner hears from a trial every quarter
    epoch (steps are quarter epochs), so a weak trial can stop before its first epoch ends."""
    import optuna

    from tests import helpers
    from transferopt.search import study as study_module

    data = helpers.write_colour_images(tmp_path / "data", per_class=40)  # 120 images: 4 batches an epoch
    monkeypatch.setattr(study_module, "LARGE_TRAIN", 100)  # ... and a "large" training set
    out = tmp_path / "s"
    optimize(
        OptimizeSettings(
            data=str(data), candidates=["tiny-effnet"], budget_s=300, out=out, max_epochs=2, max_trials=3,
        )
    )  # fmt: skip
    study = optuna.load_study(study_name=study_module.STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}")
    steps = sorted({s for t in study.trials for s in t.intermediate_values})
    assert steps[:4] == [1, 2, 3, 4]  # a quarter, a half, three quarters, one epoch
    assert json.loads((out / "model" / "config.json").read_text())["checks_per_epoch"] in (1, 4)


def test_openings_try_lp_ft_before_plain_partial_tuning():
    """The same layers under a fresh head start below the probe; under a probe's head they do not."""
    from transferopt.search.study import AUGMENTED_EPOCHS_FACTOR, opening_trials

    ranking = [{"model": "m", "best_depth": "g3", "depth_profile": [{"group": f"g{i}"} for i in range(4)]}]
    openings = opening_trials(ranking, ["m"], max_epochs=5, modality="text")
    order = [(o["strategy"], o.get("lp-ft.then")) for o in openings]
    assert order == [("linear-probe", None), ("lp-ft", "partial"), ("lp-ft", "full"), ("partial", None)]
    assert openings[1]["lp-ft.partial.k"] == openings[3]["partial.k"] == 1  # down to the best depth
    assert not any(o.get("augment") for o in openings)
    # audio: the partial plan augmented, right after the probe (noisy speech from unseen voices generalises
    # from it, and its long schedule must fit the budget), at 4x the rate (a fresh head, climbing through noise)
    audio = opening_trials(ranking, ["m"], max_epochs=5, modality="audio")
    assert audio == [openings[0], {**openings[3], "augment": True, "lr_scale": 4.0}, *openings[1:]]
    # images: LoRA right after the probe (the image sweeps' best trained strategy, at a quarter of LP-FT's
    # cost), down to the best depth when it is near the top (or the shallowest depth holding layers LoRA
    # adapts), over the whole network when it lies deeper
    shapes = {"m": {"lora_min_k": 2, "num_groups": 6}}
    image = opening_trials(ranking, ["m"], max_epochs=5, modality="image", shapes=shapes)
    assert image[:1] + image[2:] == openings
    plain = {key: value for key, value in openings[3].items() if key != "partial.k"}
    assert image[1] == {**plain, "strategy": "lora", "lora.rank": 8, "lora.last_k": 2}
    second = opening_trials([{**ranking[0], "best_depth": "g2"}], ["m"], 5, "image", shapes)
    assert second[1]["lora.last_k"] == 2 == second[2]["lp-ft.partial.k"]
    deep = opening_trials([{**ranking[0], "best_depth": "g1"}], ["m"], max_epochs=5, modality="image", shapes=shapes)
    assert deep[2]["lp-ft.partial.k"] == 3 and deep[1]["lora.last_k"] == 6  # the whole network
    unshaped = opening_trials([{**ranking[0], "best_depth": "g0"}], ["m"], max_epochs=5, modality="image")
    assert unshaped[1]["lora.last_k"] == 4  # without shapes: the profile's groups
    # the whole-network LoRA alone is augmented (no cached prefix to lose), for epochs that run_trial's
    # stretch brings back to at most the plain length; the shallow ones and every other opening stay plain
    assert [bool(o.get("augment")) for o in deep] == [False, True, False, False, False]
    assert deep[1]["epochs"] == 2 and unshaped[1]["augment"] and not image[1]["augment"]
    long = opening_trials([{**ranking[0], "best_depth": "g1"}], ["m"], max_epochs=10, modality="image", shapes=shapes)
    assert math.ceil(long[1]["epochs"] * AUGMENTED_EPOCHS_FACTOR) == 10


def test_the_summary_names_the_candidates_left_out_of_the_search():
    from transferopt.search.summary import render_markdown

    scores = {"logme": 0.1, "leep": -0.3, "knn_loo": 0.9, "linear_cv": 0.9}
    ranking = [{"model": m, "scores": scores, "best_depth": "g1"} for m in ("a", "b", "c")]
    summary = {"data": "d", "metric": "accuracy", "winner": None, "spent_s": 1.0, "budget_s": 2.0}
    summary |= {"ranking": ranking, "searched": ["a", "b"], "leaderboard": []}
    assert "Searched: a, b. Left out: c (ranked below by LogME" in render_markdown(summary)
    assert "Left out" not in render_markdown({**summary, "searched": ["a", "b", "c"]})
    wider = {**summary, "keeping": {"by_logme": 1, "probe_noise_errors": 2.0}}  # the rule the search ran with
    assert "probe accuracy more than 2 standard errors under" in render_markdown(wider)
    unscored = [{**c, "scores": {}} for c in ranking]  # transcription: the order given
    assert "Left out: c (after the first ones given" in render_markdown({**summary, "ranking": unscored})


def test_the_summary_says_which_trials_trained_on_augmented_inputs():
    from transferopt.search.summary import render_markdown

    def row(trial, augment):
        return {
            "trial": trial, "model": "m", "strategy": "lora", "options": {"rank": 8}, "augment": augment,
            "val_accuracy": 0.9, "state": "complete", "seconds": 3.0, "trained_groups": ["g1"], "trainable_params": 10,
        }  # fmt: skip

    summary = {"data": "d", "metric": "accuracy", "spent_s": 1.0, "budget_s": 2.0, "ranking": [], "searched": ["m"]}
    summary |= {"best_linear_probe": None, "best_full_fine_tune": None, "leaderboard": [row(1, True), row(2, False)]}
    text = render_markdown({**summary, "winner": row(1, True)})
    assert "with `lora` {'rank': 8}, trained on augmented inputs — validation accuracy 0.9000" in text
    assert (
        "| 1 | m | lora | {'rank': 8} | yes | 0.9000 |" in text and "| 2 | m | lora | {'rank': 8} |  | 0.9000 |" in text
    )
    assert "augmented inputs" not in render_markdown({**summary, "winner": row(2, False)})


def test_candidates_within_the_probes_noise_are_kept():
    """LogME has no error bar; a candidate it ranks low whose probe accuracy is within one standard error
    of the best kept one's stays in the search."""
    from transferopt.search.study import candidates_to_keep

    def ranked(*probes):
        return [{"model": f"m{i}", "scores": {"logme": -i, "linear_cv": p}} for i, p in enumerate(probes)]

    # 400 examples at 0.95: one standard error is 0.011
    assert candidates_to_keep(ranked(0.94, 0.95, 0.945, 0.93), keep=2, examples=400) == ["m0", "m1", "m2"]
    assert candidates_to_keep(ranked(0.94, 0.95, 0.96, 0.93), keep=2, examples=400) == ["m0", "m1", "m2"]
    assert candidates_to_keep(ranked(0.94, 0.95, 0.945), keep=2, examples=40_000) == ["m0", "m1"]
    assert candidates_to_keep(ranked(0.94, 0.95, 0.945), keep=1, examples=400) == ["m0", "m1", "m2"]
    # a perfect probe on 40 examples still has an error bar (0.031): a rival at 0.99 stays, one at 0.9 does not
    assert candidates_to_keep(ranked(1.0, 0.99, 0.9), keep=1, examples=40) == ["m0", "m1"]
    # no probe score (transcription rankings carry none): the LogME order alone
    assert candidates_to_keep([{"model": "a", "scores": {}}, {"model": "b", "scores": {}}], 1, 400) == ["a"]


@pytest.mark.parametrize(("augment", "schedule"), [(False, (4, 3)), (True, (10, 8))])
def test_an_augmented_trial_trains_for_a_longer_schedule(tmp_path, monkeypatch, augment, schedule):
    import optuna

    import transferopt.api
    from transferopt.config import FitConfig
    from transferopt.data import load_task_data
    from transferopt.engine import FeatureCache
    from transferopt.search.budget import Budget
    from transferopt.search.space import TrialPlan
    from transferopt.search.study import run_trial

    trained_for = []

    def recording_fit(config, task, cache, hooks):
        trained_for.append((config.epochs, config.patience))
        raise RuntimeError("recorded")

    monkeypatch.setattr(transferopt.api, "fit", recording_fit)
    trial = optuna.create_study(direction="maximize").ask()
    plan = TrialPlan("tiny-effnet", "full", {}, {"epochs": 4, "augment": augment})
    base = FitConfig(data="builtin:digits", model="tiny-effnet")
    run_trial(trial, plan, load_task_data("builtin:digits"), base, FeatureCache(), Budget(60), {}, tmp_path, lambda: 0)
    assert trained_for == [schedule]  # epochs 4 and patience 3, each x AUGMENTED_EPOCHS_FACTOR (2.5) when augmented


def test_a_trial_stops_before_an_epoch_that_would_end_past_the_budget(tmp_path, monkeypatch):
    """Epochs of 1 s with RESERVE + 2.5 s left: the third epoch would end past the budget, so training stops
    after two (waiting for the budget to run out would have started the third)."""
    import optuna

    import transferopt.api
    from transferopt.config import FitConfig
    from transferopt.data import load_task_data
    from transferopt.engine import FeatureCache, StopTraining
    from transferopt.search.budget import Budget
    from transferopt.search.space import TrialPlan
    from transferopt.search.study import RESERVE_S, run_trial

    def slow_fit(config, task, cache, hooks):
        assert task.test is None  # trials never score the test split; the winner is scored once, after
        for epoch in range(1, 10):
            time.sleep(1.0)
            try:
                hooks[0]({"epoch": epoch, "val_accuracy": 0.5})
            except StopTraining:
                raise RuntimeError(f"stopped after {epoch} epochs") from None
        raise RuntimeError("never stopped")

    monkeypatch.setattr(transferopt.api, "fit", slow_fit)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    plan = TrialPlan("tiny-effnet", "full", {}, {"epochs": 9})
    task = load_task_data("builtin:digits")
    budget = Budget(RESERVE_S + 2.5)
    base = FitConfig(data="builtin:digits", model="tiny-effnet")
    value, pruned = run_trial(trial, plan, task, base, FeatureCache(), budget, {}, tmp_path, lambda: None)
    assert (value, pruned) == (None, False)
    assert study.trials[0].user_attrs["error"] == "stopped after 2 epochs"


@pytest.mark.parametrize(("strategy", "options", "epochs"), [("linear-probe", {}, 1), ("partial", {"k": 1}, 5)])
def test_the_winner_is_scored_on_test_from_the_states_its_search_cached(
    tmp_path, colour_folder, strategy, options, epochs
):
    # A trained winner has new weights, but its frozen prefix is the pretrained one: its test states, cached
    # under the weights it started from, are reused instead of a fresh pass over the test split.
    from transferopt.data import task_from_config
    from transferopt.engine import FeatureCache
    from transferopt.search.study import MODEL_DIR, score_winner_on_test

    out = tmp_path / "search"
    cache = FeatureCache(tmp_path / "cache")
    config = transferopt.FitConfig(
        data=str(colour_folder),
        model="tiny-effnet",
        strategy=strategy,
        strategy_options=options,
        epochs=epochs,
        lr=1e-2,
    )
    task = task_from_config(config)
    fitted = transferopt.fit(config=config, task=task, cache=cache, out=out / MODEL_DIR)
    assert fitted.metrics["frozen_prefix"] > 0
    trained = fitted.model.backbone.weights_fingerprint() != fitted.metrics["source_weights"]
    assert trained == (strategy != "linear-probe")
    (out / "optimize.json").write_text("{}")
    state = {"best": {"trial": 0}}
    misses, hits = cache.stats.misses, cache.stats.hits_memory
    score_winner_on_test(task, state, out, cache)
    assert (cache.stats.misses, cache.stats.hits_memory) == (misses, hits + 1)
    assert state["best"]["test"]["accuracy"] == pytest.approx(fitted.metrics["test"]["accuracy"])
    saved = json.loads((out / MODEL_DIR / "metrics.json").read_text())
    assert "confusion_matrix" in saved["test"]["detail"]  # the report's error analysis reads it


def test_plans_that_cannot_reach_a_check_in_the_time_left_are_skipped(tmp_path, colour_folder, monkeypatch):
    from transferopt.search import study

    def priced(plan, *args):
        return 0.0 if plan.strategy == "linear-probe" else 1e6

    monkeypatch.setattr(study, "seconds_to_first_check", priced)
    out = tmp_path / "search"
    settings = OptimizeSettings(
        data=str(colour_folder), candidates=["tiny-effnet"], budget_s=600, out=out, max_epochs=3, early_stop=False
    )
    started = time.monotonic()
    summary = optimize(settings)
    assert time.monotonic() - started < 60  # nothing that could not finish was started
    assert {r["strategy"] for r in summary["leaderboard"]} == {"linear-probe"}
    assert len(summary["skipped"]) == study.MAX_SKIPS
    assert all("first validation check" in s["reason"] for s in summary["skipped"])
    assert "would not fit in the time left" in summary["stopped_early"]
    assert "Not started, for want of time" in (out / "summary.md").read_text()
