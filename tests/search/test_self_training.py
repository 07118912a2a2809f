"""`optimize --unlabeled`: the search holds back time for self-training its winner, cuts the pool to the
time left, and saves a kept student in place of the winner."""

from __future__ import annotations

import json

import pytest

import transferopt
import transferopt.api as api
import transferopt.search.self_training as search_self_training
from tests import helpers
from transferopt.data import TextInputs
from transferopt.errors import DataError
from transferopt.search import OptimizeSettings, optimize
from transferopt.search.self_training import pool_that_fits, reserve_s, student_seconds, student_training_seconds


def test_a_students_cost_scales_with_the_data_it_sees():
    # 100 labelled; 50 of a 200-strong pool are pseudo-labelled (share 0.25) and all 200 are labelled once.
    assert student_seconds(10.0, 100, 200, 0.25) == pytest.approx(10.0 * (100 + 1.25 * 200) / 100)
    assert reserve_s(10.0, 100, 200, 0.25, budget_s=1000) == pytest.approx(35.0)
    assert reserve_s(10.0, 100, 200, 0.25, budget_s=40) == 20.0  # never more than half the budget
    # with the inference pass measured (0.01 s an example), labelling the pool costs that pass
    assert student_seconds(10.0, 100, 200, 0.25, label_s=0.01) == pytest.approx(10.0 * 1.5 + 200 * 0.01)
    assert reserve_s(10.0, 100, 200, 0.25, budget_s=1000, label_s=0.01) == pytest.approx(17.0)
    part = pool_that_fits(TextInputs([str(i) for i in range(1000)]), 17.0, 10.0, 100, 0.25, seed=0, label_s=0.01)
    assert len(part) == 200


def test_a_pool_too_large_for_the_time_left_is_cut_at_random_and_reproducibly():
    pool = TextInputs([f"message {i}" for i in range(1000)])
    assert pool_that_fits(pool, time_left_s=1e6, teacher_s=10.0, n_train=100, share=0.5, seed=0) is pool
    # 40s left, 10s a teacher on 100: (40/10 - 1) * 100 / 1.5 = 200 pool examples fit.
    part = pool_that_fits(pool, time_left_s=40.0, teacher_s=10.0, n_train=100, share=0.5, seed=0)
    assert len(part) == 200 and len(set(part.texts)) == 200 and set(part.texts) <= set(pool.texts)
    assert part.texts == pool_that_fits(pool, 40.0, 10.0, 100, 0.5, seed=0).texts
    assert part.texts != pool_that_fits(pool, 40.0, 10.0, 100, 0.5, seed=1).texts
    # Fewer than a quarter of the labelled set would fit: not worth a round.
    assert pool_that_fits(pool, time_left_s=13.0, teacher_s=10.0, n_train=100, share=0.5, seed=0) is None


def test_students_with_their_own_epochs_are_priced_by_the_epochs_the_winner_ran():
    assert student_training_seconds(100.0, epochs_run=10, student_epochs=4) == pytest.approx(40.0)
    assert student_training_seconds(100.0, epochs_run=5, student_epochs=10) == pytest.approx(200.0)
    assert student_training_seconds(100.0, epochs_run=10, student_epochs=None) == 100.0  # the winner's own
    assert student_training_seconds(3.0, epochs_run=0, student_epochs=4) == 3.0  # a probe trains no epoch


@pytest.fixture(scope="module")
def colour_pool(tmp_path_factory):
    return helpers.write_colour_images(tmp_path_factory.mktemp("pool"), layout="flat", per_class=5, seed=7)


def test_the_winner_is_self_trained_and_a_better_student_replaces_it(tmp_path, colour_folder, colour_pool, monkeypatch):
    # the winner on validation, then round 1's student (kept), then round 2's (not better: the rounds stop
    # there, short of optimize's default cap of 3)
    scores = iter([0.5, 0.9, 0.9])
    monkeypatch.setattr(api, "validation_score", lambda transfer, outcome: next(scores))
    out = tmp_path / "search"
    summary = transferopt.optimize(
        str(colour_folder), "tiny-effnet", out=out, budget=60, max_trials=1, unlabeled=colour_pool
    )
    record = summary["self_training"]
    assert record["unlabeled_given"] == record["unlabeled"] == 15 and record["kept_rounds"] == 1
    # optimize's default curriculum: 60% of the pool, then 80%
    assert [(r["pseudo_labelled"], r["kept"]) for r in record["rounds"]] == [(9, True), (12, False)]
    saved = transferopt.load(out)
    assert saved.metrics["self_training"]["kept_rounds"] == 1
    assert sum(saved.data_summary["counts"]["train"].values()) == 24 + 9  # the student's training data
    assert saved.config.unlabeled == str(colour_pool)  # its config reproduces it with `fit`
    assert "test" in saved.metrics  # scored on test after self-training, like any winner
    assert "the model kept is round 1's student" in (out / "summary.md").read_text()
    report = (out / "report.html").read_text()
    assert "--unlabeled" in report and "Self-training on 15 unlabelled example(s)" in report


def test_a_pool_cut_to_the_time_left_still_gets_its_round(tmp_path, colour_folder, monkeypatch):
    pool = helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=10, seed=3)  # 30 images
    # 3 s a pool image: after a search of 5-15 s, a random 12-15 of the 30 fit in what is left of 60 s.
    monkeypatch.setattr(
        search_self_training, "student_seconds", lambda teacher_s, n_train, size, share, label_s: 3.0 * size
    )
    out = tmp_path / "search"
    summary = transferopt.optimize(str(colour_folder), "tiny-effnet", out=out, budget=60, max_trials=1, unlabeled=pool)
    record = summary["self_training"]
    assert record["unlabeled_given"] == 30 and 6 <= record["unlabeled"] < 30
    assert len(record["rounds"]) == 1 and "stopped" not in record  # the cut pool's round did start
    assert f"a random {record['unlabeled']} of 30 unlabelled examples" in (out / "summary.md").read_text()


def test_a_student_that_does_not_beat_the_winner_leaves_the_winner_saved(tmp_path, colour_folder, colour_pool):
    out = tmp_path / "search"
    settings = OptimizeSettings(
        data=str(colour_folder), candidates=["tiny-effnet"], budget_s=60, out=out, max_trials=1,
        unlabeled=str(colour_pool), self_training_rounds=2,
    )  # fmt: skip
    summary = optimize(settings)
    record = summary["self_training"]
    # The colours are separable: the winner is perfect on validation, so no student can beat it.
    assert record["teacher_val"] == 1.0 and record["kept_rounds"] == 0 and len(record["rounds"]) == 1
    saved = transferopt.load(out)
    assert "self_training" not in saved.metrics and sum(saved.data_summary["counts"]["train"].values()) == 24
    state = json.loads((out / "optimize.json").read_text())
    assert state["self_training"]["kept_rounds"] == 0
    assert state["unlabeled"] == {"size": 15, "share": 0.6, "epochs": None}


def test_the_search_holds_back_time_for_the_students_it_would_train(tmp_path, colour_folder, colour_pool, monkeypatch):
    # A student priced at far more than the budget: the search keeps half the budget back for it.
    monkeypatch.setattr(search_self_training, "student_seconds", lambda *args: 1e6)
    out = tmp_path / "search"
    budget = 20.0
    settings = OptimizeSettings(
        data=str(colour_folder), candidates=["tiny-effnet"], budget_s=budget, out=out, max_epochs=2,
        early_stop=False, unlabeled=str(colour_pool),
    )  # fmt: skip
    summary = optimize(settings)
    state = json.loads((out / "optimize.json").read_text())
    assert state["self_training_reserve_s"] == budget / 2
    assert sum(r["seconds"] for r in summary["leaderboard"]) <= budget / 2 + 1  # trials kept to their half
    # Not even a useful part of the pool fits the stub's 1e6 s a round: self-training says so.
    assert summary["self_training"]["skipped"].startswith("one round needs about 1000000s with the whole pool")
    assert "self-training on 15 unlabelled example(s) did not run" in (out / "summary.md").read_text()
    assert summary["spent_s"] <= budget * 1.1


def test_a_bad_unlabelled_path_fails_before_the_run_directory_is_made(tmp_path, colour_folder):
    out = tmp_path / "search"
    with pytest.raises(DataError, match="unlabelled data path does not exist"):
        transferopt.optimize(str(colour_folder), "tiny-effnet", out=out, budget=30, unlabeled=tmp_path / "nowhere")
    assert not out.exists()


def test_a_round_priced_past_the_time_left_does_not_start(tmp_path, colour_folder, colour_pool, monkeypatch):
    monkeypatch.setattr(search_self_training, "student_seconds", lambda *args: 1e6)
    monkeypatch.setattr(search_self_training, "pool_that_fits", lambda pool, *args: pool)  # the pool as it is
    out = tmp_path / "search"
    summary = transferopt.optimize(
        str(colour_folder), "tiny-effnet", out=out, budget=30, max_trials=1, unlabeled=colour_pool
    )
    record = summary["self_training"]
    assert record["rounds"] == [] and record["kept_rounds"] == 0
    assert record["stopped"] == "round 1 would not fit in the time left"
    assert "self_training" not in transferopt.load(out).metrics  # the winner, as the search saved it


def test_students_train_the_epochs_asked_for_and_the_run_says_so(tmp_path, colour_folder, colour_pool, monkeypatch):
    from transferopt.search import study

    # the one trial trains (3 epochs at most), so its students have epochs of their own to differ in
    opening = {"model": "tiny-effnet", "strategy": "bitfit", **study.plain_knobs(3, 8)}
    monkeypatch.setattr(study, "opening_trials", lambda *args: [opening])
    scores = iter([0.5, 0.9])  # the winner, then round 1's student (kept)
    monkeypatch.setattr(api, "validation_score", lambda transfer, outcome: next(scores))
    out = tmp_path / "search"
    summary = transferopt.optimize(
        str(colour_folder), "tiny-effnet", out=out, budget=60, max_trials=1, unlabeled=colour_pool,
        self_training_rounds=1, self_training_epochs=1,
    )  # fmt: skip
    assert summary["self_training"]["kept_rounds"] == 1
    state = json.loads((out / "optimize.json").read_text())
    assert state["unlabeled"]["epochs"] == 1 and state["best"]["epochs_run"] >= 1
    saved = transferopt.load(out)
    assert len(saved.history) == 1  # the student's one epoch, not the winner's
    assert saved.config.self_training_epochs == 1  # `fit` reproduces the student
    assert "--self-training-epochs 1" in (out / "report.html").read_text()
    assert "self-training on 15 unlabelled example(s) (students of 1 epoch):" in (out / "summary.md").read_text()
