"""The optimizer: rank candidates, then an Optuna study over what to update and how, under a budget.

The study lives in SQLite inside the run directory (or any Optuna storage URL), so a killed search
resumes with every finished trial kept and only the remaining budget spent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import OPTIMIZE_PSEUDO_LABEL_SHARE_STEP, OPTIMIZE_SELF_TRAINING_ROUNDS, FitConfig
from ..data import TaskData, task_from_config
from ..engine import FeatureCache, StopTraining, Transfer
from ..engine.metrics import LOWER_IS_BETTER, score, signed
from ..errors import ConfigError, RunDirError
from ..reporting.rundir import read_json, write_json
from ..scoring import rank_candidates
from ..strategies import STRATEGIES, ModelShape
from ..strategies.lora import LoraOptions
from .budget import Budget, stop_before_budget_ends
from .convergence import search_has_converged, validation_noise
from .cost import seconds_to_first_check
from .self_training import reserve_s, self_train_winner, student_training_seconds
from .space import TrialPlan, suggest_plan

log = logging.getLogger(__name__)
STUDY_NAME = "transferopt"
STATE_FILE = "optimize.json"
MODEL_DIR = "model"
# Time kept back for writing the summary and the final model's files.
RESERVE_S = 5.0
HEADLINE_METRICS = ("accuracy", "macro_f1", "auc", "wer", "cer")
# Consecutive proposals of already-measured plans after which the search stops early.
MAX_REPEATS = 25
#: Plans in a row skipped for not fitting in the time left before the search gives up.
MAX_SKIPS = 5
# Data seen is a fidelity too: on training sets this large, trials are validated every quarter epoch so
# the pruner can stop a weak one after a fraction of the data. Steps reported to Optuna are quarter epochs.
LARGE_TRAIN = 2000
STEPS_PER_EPOCH = 4
#: A candidate LogME ranks below the kept ones is kept as well when its cross-validated probe accuracy
#: lies within this many standard errors of the best kept one's: LogME comes with no error bar, the probe's
#: accuracy does. Measured on pneumoniamnist (4,700 scored images): LogME ranked lite2 last (0.130 against
#: 0.169 and 0.135), dropping it, while the three probe accuracies lay within 0.001 of each other (one
#: standard error: 0.003); lite2 with LoRA was then the sweep's best run on validation and on test.
PROBE_NOISE_ERRORS = 1.0
#: A best depth within this many groups of the top counts as near it (see lora_opening_depth).
SHALLOW_BEST_DEPTH = 2
# TPE samples at random for this many trials after the enqueued openings, then models what worked.
RANDOM_STARTUP_TRIALS = 4
# Speech recipes take thousands of steps; a few hundred utterances in batches of 32 give a handful an
# epoch, so the transcription openings use small batches (more updates for about the same compute).
TRANSCRIPTION_OPENING_BATCH = 8
#: A classifier trained on augmented inputs (speed perturbation and SpecAugment for audio, crops and flips
#: for images, plus any background noise) sees a harder task every epoch and needs a longer schedule: an
#: augmented trial trains for this many times the sampled epochs. Measured on noisy spoken commands
#: (whisper-base, last 4 layers, 10 per word): augmented for 10 epochs, validation accuracy 0.76 (best
#: epoch 9) against 0.86 unaugmented; for 25, 0.92 (best epoch 16), while 25 unaugmented epochs gave 0.87.
#: Its early-stopping patience stretches as much: its validation curve plateaus for several epochs before
#: the decaying rate lifts it (seed 2 of the same, at 2e-4: patience 3 stopped at epoch 8, validation
#: 0.833, test 0.833; patience 8 ran on to its best, epoch 20: validation 0.923, test 0.940).
#: Transcription's openings are timed by the budget instead (they are measured as they are).
AUGMENTED_EPOCHS_FACTOR = 2.5
#: The augmented audio opening trains its fresh head and layers at this many times the strategy's rate:
#: at the default (5e-5) the head climbs slowly through the noise (noisy spoken commands, whisper-base,
#: last 4 layers, 10 per word, 25 epochs, seed 1: validation accuracy 0.04 -> 0.89 over the run, test
#: 0.860); at 4x (2e-4) validation 0.953 at epoch 14, test 0.937, with 5 dB clips at 0.89 instead of 0.74
#: (seed 0: validation 0.923 -> 0.933, test 0.940 -> 0.947, 5 dB 0.84 -> 0.92).
AUGMENTED_AUDIO_LR_SCALE = 4.0


@dataclass
class OptimizeSettings:
    data: str
    candidates: list[str]
    budget_s: float
    out: Path
    shots: int | None = None
    seed: int = 0
    metric: str = "accuracy"
    storage: str | None = None
    #: Whether augmented image trials may flip images left-right.
    flip: bool = True
    max_epochs: int = 10  # as many as a plain `fit`; early stopping and pruning end most trials sooner
    keep_candidates: int = 2
    #: Stop before the budget ends once the search stops finding better plans (see search/convergence.py).
    early_stop: bool = True
    #: Stop after this many trials, whatever budget is left (None: the budget decides).
    max_trials: int | None = None
    #: Unlabelled inputs of the task's kind: the winner is self-trained on them within the budget.
    unlabeled: str | None = None
    self_training_rounds: int = OPTIMIZE_SELF_TRAINING_ROUNDS
    pseudo_label_share: float = 0.6
    pseudo_label_share_step: float = OPTIMIZE_PSEUDO_LABEL_SHARE_STEP
    #: Epochs each student trains (None: as many as the winner's plan).
    self_training_epochs: int | None = None
    #: Numeric precision of every trial and student (engine/precision.py).
    precision: str = "auto"

    def base_config(self) -> FitConfig:
        return FitConfig(
            data=self.data,
            model=self.candidates[0],
            shots=self.shots,
            seed=self.seed,
            metric=self.metric,
            flip=self.flip,
            precision=self.precision,
        )


def optimize(settings: OptimizeSettings, resume: bool = False) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not settings.candidates:
        raise ConfigError("optimize needs at least one candidate model")
    if settings.max_trials is not None and settings.max_trials < 1:
        raise ConfigError(f"--max-trials must be >= 1, got {settings.max_trials}")
    out = Path(settings.out)
    state_path = out / STATE_FILE
    if resume and not state_path.is_file():
        raise RunDirError(f"--resume: {out} holds no interrupted search ({STATE_FILE} missing)")
    if not resume and out.exists() and any(out.iterdir()):
        raise RunDirError(f"--out {out} is not empty; use --resume to continue a search there, or another folder")
    # The data and any unlabelled pool are read before the run directory is made: a mistake in them
    # leaves nothing behind.
    base = settings.base_config()
    task = task_from_config(base)
    if task.task == "transcription" and settings.metric not in LOWER_IS_BETTER:
        settings.metric = "wer"  # the metric follows the task
        base = base.replace(metric="wer")
    student_settings = pool = None
    if settings.unlabeled is not None:
        from ..api import unlabeled_pool

        student_settings = base.replace(
            unlabeled=settings.unlabeled,
            self_training_rounds=settings.self_training_rounds,
            pseudo_label_share=settings.pseudo_label_share,
            pseudo_label_share_step=settings.pseudo_label_share_step,
            self_training_epochs=settings.self_training_epochs,
        )
        pool = unlabeled_pool(student_settings, task)
    if resume:
        state = read_json(state_path)
    else:
        out.mkdir(parents=True, exist_ok=True)
        state = {
            "settings": settings_to_json(settings),
            "spent_s": 0.0,
            "ranking": None,
            "shapes": None,
            "best": None,
            "trials_since_best": 0,
            "stopped": None,
        }
        write_json(state_path, state)
    if task.task == "transcription":
        state["settings"]["metric"] = settings.metric  # the metric follows the task
    if pool is not None:
        state["unlabeled"] = {
            "size": len(pool),
            "share": settings.pseudo_label_share,
            "epochs": settings.self_training_epochs,
        }
    budget = Budget(settings.budget_s, spent_before_s=float(state["spent_s"]))
    if budget.remaining_s <= RESERVE_S:
        raise ConfigError(f"the budget of {settings.budget_s:.0f}s is already spent ({budget.spent_s:.0f}s)")

    cache = FeatureCache()

    def save_state() -> None:
        state["spent_s"] = budget.spent_s
        write_json(state_path, state)

    if state["ranking"] is None:
        state["ranking"] = candidate_ranking(task, settings.candidates, base, cache)
        save_state()
    ranking = state["ranking"]
    kept = candidates_to_keep(ranking, settings.keep_candidates, len(task.train) + len(task.val))
    state["searched"] = kept
    state["keeping"] = {"by_logme": settings.keep_candidates, "probe_noise_errors": PROBE_NOISE_ERRORS}
    if state.get("shapes") is None or not set(kept) <= set(state["shapes"]):
        state["shapes"] = model_shapes(kept, task.task)
        save_state()
    shapes = {name: ModelShape(**shape) for name, shape in state["shapes"].items()}

    if task.task == "transcription":
        openings = transcription_openings(kept, state["shapes"], settings.max_epochs)
    else:
        openings = opening_trials(ranking, kept, settings.max_epochs, task.modality, state["shapes"])
    storage = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler(settings.seed, len(openings)),
        pruner=make_pruner(checks_per_epoch(task)),
    )
    fail_interrupted_trials(study)
    if not study.trials:
        for params in openings:
            study.enqueue_trial(params, skip_if_exists=True)

    # At least one finished trial (the top candidate's probe, on features the ranking already cached)
    # so every search ends with a model, however small the budget.
    repeats = skips = 0
    priced = {c["model"]: c for c in ranking}
    while not completed(study) or budget.remaining_s > held_back_s(state) + expected_seconds(study):
        if "self_training" in state:  # resumed after the search had ended and self-training had run
            break
        if settings.max_trials is not None and completed(study) and finished_trials(study) >= settings.max_trials:
            state["stopped"] = f"reached the limit of {settings.max_trials} trials"
            break
        if settings.early_stop and (reason := search_has_converged(state, budget.spent_s, len(task.val))):
            state["stopped"] = reason
            log.info("stopping early: %s", reason)
            break
        trial = study.ask()
        plan = suggest_plan(trial, kept, shapes, settings.max_epochs, task.modality, task.task)
        earlier = finished_with_same_params(study, trial)
        if earlier is not None:
            # Training is seeded, so the same plan gives the same result: record it, spend nothing.
            study.tell(trial, earlier)
            repeats += 1
            if repeats >= MAX_REPEATS:
                # the sampler keeps proposing plans already measured: the search has converged
                state["stopped"] = f"the sampler proposed {MAX_REPEATS} already-measured plans in a row"
                break
            continue
        repeats = 0
        if completed(study) and (reason := would_not_fit(plan, priced[plan.model], task, state, budget)):
            # Not started: work that cannot stop part-way (a prefix's states, the first epoch) would run
            # past the budget. A cheaper plan may still fit.
            skip_trial(study, trial, plan, reason, state)
            skips += 1
            if skips >= MAX_SKIPS:
                state["stopped"] = f"{MAX_SKIPS} plans in a row would not fit in the time left (the last {reason})"
                break
            continue
        skips = 0
        best_before = (state.get("best") or {}).get("trial")
        value, pruned = run_trial(trial, plan, task, base, cache, budget, state, out, save_state)
        found_better = (state.get("best") or {}).get("trial") != best_before
        state["trials_since_best"] = 0 if found_better else state.get("trials_since_best", 0) + 1
        if found_better:
            state["values_since_best"] = []
        elif value is not None:  # a failed trial is no evidence either way
            state["values_since_best"] = [*state.get("values_since_best", []), value]
        save_state()
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    else:
        if completed(study) and budget.remaining_s > RESERVE_S:
            # the budget has room left, but not for another trial of the usual length
            state["stopped"] = (
                f"another trial (about {expected_seconds(study):.0f}s, the median so far) would not fit in the "
                f"{budget.remaining_s:.0f}s left"
                + (f" ({held_back_s(state) - RESERVE_S:.0f}s held back for self-training)" if pool is not None else "")
            )
    save_state()
    if pool is not None and state.get("best") and "self_training" not in state:
        teacher_s = student_training_seconds(
            state["best"].get("seconds") or expected_seconds(study),
            state["best"].get("epochs_run"),
            state["unlabeled"]["epochs"],  # the trials priced students by the same epochs
        )
        label_s = labelling_seconds(state, state["best"]["model"])
        state["self_training"] = self_train_winner(
            out, MODEL_DIR, task, pool, student_settings, teacher_s, budget, RESERVE_S, cache, label_s
        )
        save_state()
    score_winner_on_test(task, state, out, cache)
    from .summary import write_summary

    summary = write_summary(out, study, state, settings, budget)
    write_report_safely(out)
    return summary


def score_winner_on_test(task: TaskData, state: dict, out: Path, cache: FeatureCache) -> None:
    """Score the test split with the saved winner once, after the search; its metrics join the model's
    and the trial's. Trials skip the test split: a fine-tuned trial's test features are not cached, so
    scoring every trial cost a full forward pass each (banking77's 3,080 sentences: ~10 s a trial, past
    the budget), and only the winner's test score is ever reported."""
    from ..api import load, split_metrics

    best = state.get("best")
    if task.test is None or best is None or "test_s" in best:
        return
    started = time.perf_counter()
    winner = load(out)
    # Through the feature cache, keyed by the weights the winner started from (its frozen prefix is
    # theirs): a probe's test features are computed once and reused by later runs on the same data.
    transfer = Transfer(winner.model, task, winner.config, cache, winner.metrics.get("source_weights"))
    winner.model.to(transfer.device)
    metrics = split_metrics(transfer, task, "test", winner.metrics["frozen_prefix"])  # with the report's detail
    model_metrics = read_json(out / MODEL_DIR / "metrics.json")
    model_metrics["test"] = metrics
    write_json(out / MODEL_DIR / "metrics.json", model_metrics)
    # A finished Optuna trial cannot take new attributes: the summary reads the winner's test from here.
    best["test"] = {k: v for k, v in metrics.items() if k in HEADLINE_METRICS}
    best["test_s"] = time.perf_counter() - started
    write_json(out / STATE_FILE, state)


def write_report_safely(out: Path) -> None:
    """The search's results are saved by now; a failing report must not hide them."""
    from ..reporting.report import write_report

    try:
        write_report(out)
    except Exception as exc:  # reported, not raised: the model and summary are already on disk
        log.warning("could not write %s/report.html: %s (retry with `transferopt report %s`)", out, exc, out)


def settings_to_json(settings: OptimizeSettings) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.__dict__.items()}


def candidate_ranking(task: TaskData, candidates: list[str], base: FitConfig, cache: FeatureCache) -> list[dict]:
    """Transferability scores need class labels; transcription candidates keep the order given."""
    if task.task == "transcription":
        return [{"model": m, "scores": {}, "best_depth": None, "depth_profile": [], "seconds": 0.0} for m in candidates]
    return [c.to_dict() for c in rank_candidates(task, candidates, base, cache=cache)]


def candidates_to_keep(ranking: list[dict], keep: int, examples: int) -> list[str]:
    """The `keep` best by LogME, and any other candidate whose probe accuracy the best kept one's does not
    beat by more than PROBE_NOISE_ERRORS standard errors (on the `examples` scored; the same adjusted error
    as the stopping rule's, so a perfect probe on a small data set still keeps its near rivals)."""
    kept = [c["model"] for c in ranking[:keep]]
    probes = [c["scores"].get("linear_cv") for c in ranking[:keep]]
    if examples < 1 or not probes or None in probes:
        return kept
    best = max(probes)
    margin = PROBE_NOISE_ERRORS * validation_noise(best, examples)
    return kept + [c["model"] for c in ranking[keep:] if c["scores"].get("linear_cv", -math.inf) >= best - margin]


def model_shapes(names: list[str], task: str = "classification") -> dict[str, dict[str, int]]:
    """Each candidate's layer-group count and LoRA's smallest useful depth, for the search space (and for
    transcribers, how many groups the decoder has)."""
    from ..models import resolve_backbone
    from ..strategies.lora import smallest_last_k

    shapes = {}
    for name in names:
        backbone = resolve_backbone(name, task=task)
        shapes[name] = {"num_groups": backbone.num_groups, "lora_min_k": smallest_last_k(backbone)}
        if task == "transcription":
            shapes[name]["decoder_groups"] = backbone.num_groups - backbone.encoder_groups
    return shapes


def plain_knobs(max_epochs: int, batch_size: int) -> dict[str, Any]:
    """The training knobs of an opening trial: each strategy's default rate, no layer decay or L2-SP, full
    length, and no augmentation (which would cost the cache)."""
    return {
        "lr_scale": 1.0,
        "weight_decay": 0.01,
        "layer_decay": 1.0,
        "l2sp": 0.0,
        "epochs": max_epochs,
        "batch_size": batch_size,
        "augment": False,
    }


def transcription_openings(kept: list[str], shapes: dict[str, dict[str, int]], max_epochs: int) -> list[dict]:
    """Whole-network fine-tuning first, with augmentation (speed perturbation, SpecAugment) and without, at
    a fifth of the default rate (1e-5 for speech, the rate of the Whisper fine-tuning recipes), then LoRA
    on the decoder and the upper half of the encoder (the lower half stays frozen and cached), then the
    decoder's layers alone on the cached encoder output (for a CTC model, its head alone).

    Measured on the accent benchmark (whisper-base, 100 noisy Scottish utterances, 20-minute budget): an
    accent is a change of sounds, so the encoder must move. The decoder-only plan, opened first as the
    cheapest, spent the whole budget and reached test WER 0.42, while fine-tuning everything at 1e-5 for
    the same time reached 0.24. The decoder's token embeddings (tied to the output projection) stay as
    they are in the partial plan: a few utterances cannot re-learn a 50k vocabulary. In batches of 8 (13
    steps an epoch instead of 4) the full plan's noisy test WER fell from 0.32 to 0.23; with SpecAugment it
    won validation on both seeds measured (0.13 and 0.12; 0.19 without), though on the unseen test voices
    it only drew level with a naive fine-tune given the same time. Adding speed perturbation (clips 10%
    slower or faster, like other speakers) moved the unseen voices' WER below the naive fine-tune's on
    both seeds: 0.094 / 0.214 clean / noisy on average, against 0.098 / 0.230 (clean only just: 0.101
    against 0.102 on seed 0)."""
    model = kept[0]
    defaults = plain_knobs(max_epochs, TRANSCRIPTION_OPENING_BATCH)
    shape = shapes[model]
    decoder = shape["decoder_groups"]
    encoder_half = (shape["num_groups"] - decoder) // 2
    return [
        {"model": model, "strategy": "full", **defaults, "lr_scale": 0.2, "augment": True},
        {"model": model, "strategy": "full", **defaults, "lr_scale": 0.2},
        {"model": model, "strategy": "lora", "lora.rank": 8, "lora.last_k": decoder + encoder_half, **defaults},
        # Whisper: the decoder's layers without its embeddings; a CTC model's "decoder" is its head alone.
        {"model": model, "strategy": "partial", "partial.k": max(1, decoder - 1), **defaults},
    ]


@contextlib.contextmanager
def experimental_features_allowed():
    """Optuna warns on every use of its experimental options; these are chosen on purpose."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def make_sampler(seed: int, openings: int):
    import optuna

    with experimental_features_allowed():
        # multivariate + group: the space is conditional (each strategy has its own options), and TPE
        # then models the parameters that occur together jointly instead of one by one.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=openings + RANDOM_STARTUP_TRIALS, multivariate=True, group=True
        )


def checks_per_epoch(task: TaskData) -> int:
    return STEPS_PER_EPOCH if len(task.train) >= LARGE_TRAIN else 1


def make_pruner(checks: int):
    """Successive halving on data seen (keep the top third after 1, 3, 9 epochs, or quarter epochs on
    large training sets), but never cut a trial that is still improving. Plain successive halving
    compares strategies after their first step, where an LP-FT run still sits at its probe's score and a
    fresh head has barely started (measured on banking77: the LP-FT + LoRA opening was cut after one
    epoch), and with few trials the first ones must beat every other to survive."""
    import optuna

    with experimental_features_allowed():
        return optuna.pruners.PatientPruner(
            optuna.pruners.SuccessiveHalvingPruner(min_resource=STEPS_PER_EPOCH // checks, reduction_factor=3),
            patience=1,
        )


def fail_interrupted_trials(study) -> None:
    """Trials left RUNNING by a killed process never finished: mark them failed so they are not counted
    (their parameters are asked again only if the sampler proposes them)."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def opening_trials(
    ranking: list[dict],
    kept: list[str],
    max_epochs: int,
    modality: str,
    shapes: dict[str, dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Cheap cached strategies first: a probe on every kept candidate, then LP-FT down to the depth whose
    features the ranking found best, then LP-FT of the whole network, the literature's default for little
    data (Kumar et al., ICLR 2022), then plain partial tuning at that depth. Each at full length: measured
    on banking77 (10 shots), LP-FT with LoRA for 5 epochs never left its probe's validation score, while
    LP-FT of the whole network for 10 epochs gained 1.4 points over it. LP-FT comes before plain partial
    tuning because the same layers trained under a fresh head start below the probe: on banking77 (seed
    0, 45 s budgets) partial tuning of the last layer reached 0.678 / 0.801 validation accuracy at 5 / 10
    shots against the probe's 0.779 / 0.830, and used the budget LP-FT needed. For audio, the partial plan
    with augmentation comes right after the probe (for AUGMENTED_EPOCHS_FACTOR times the epochs, at
    AUGMENTED_AUDIO_LR_SCALE times the rate): noisy spoken commands from a few unseen voices generalise from
    perturbed clips (it won on validation for all three seeds, test accuracy 0.94-0.95 against 0.86-0.88
    without), and its long schedule (up to 9 of a 20-minute budget's minutes) must not be cut short by
    the budget, as it was when it came last. For images, LoRA comes right after the probes (down to the
    best depth, or over the whole network, augmented, where that lies deep: see lora_opening_depth and
    augmented_image_knobs): in the image
    sweeps at default settings it was the best trained strategy on validation for every pneumoniamnist
    candidate (AUC 0.9950 / 0.9958 / 0.9977, and the best three on test) and tied for best on two of three
    hymenoptera candidates, and it costs a quarter of LP-FT's time (lite0 on pneumoniamnist: 360 s
    against 1,437 s). When it came after the first LP-FT, that LP-FT took the rest of a 15-minute
    pneumoniamnist budget and LoRA never ran. On text (banking77, 10 shots) it stayed under the probe, so
    text does not open with it."""
    openings = [{"model": m, "strategy": "linear-probe"} for m in kept]
    top = next(c for c in ranking if c["model"] == kept[0])
    profile = [entry["group"] for entry in top["depth_profile"]]
    if profile:
        n = len(profile)
        best_index = profile.index(top["best_depth"])
        k = max(1, min(n, n - best_index))
        defaults = plain_knobs(max_epochs, FitConfig.batch_size)  # fit's default: the plain recipes
        if modality == "audio":
            augmented = {**defaults, "augment": True, "lr_scale": AUGMENTED_AUDIO_LR_SCALE}
            openings.append({"model": kept[0], "strategy": "partial", "partial.k": k, **augmented})
        if modality == "image":
            shape = (shapes or {}).get(kept[0], {})
            depth = lora_opening_depth(k, shape, n)
            lora = {"model": kept[0], "strategy": "lora", "lora.rank": LoraOptions.rank, "lora.last_k": depth}
            whole_network = depth >= shape.get("num_groups", n)
            openings.append({**lora, **(augmented_image_knobs(defaults) if whole_network else defaults)})
        openings.append(
            {"model": kept[0], "strategy": "lp-ft", "lp-ft.then": "partial", "lp-ft.partial.k": k, **defaults}
        )
        openings.append({"model": kept[0], "strategy": "lp-ft", "lp-ft.then": "full", **defaults})
        openings.append({"model": kept[0], "strategy": "partial", "partial.k": k, **defaults})
    return openings


def augmented_image_knobs(defaults: dict[str, Any]) -> dict[str, Any]:
    """The whole-network image LoRA opening trains on random crops and flips, for as many epochs as a
    plain one or a few fewer (run_trial stretches an augmented trial's epochs by AUGMENTED_EPOCHS_FACTOR).
    With no frozen prefix there is no cache to lose, so augmenting costs about nothing, and where the best
    features lie deep the validation split, drawn like the training images, flatters a network fitted to them: on
    pneumoniamnist (64 px, lite1, 10 epochs) whole-network LoRA reached validation AUC 0.9947 and test
    0.9665 (ACC 0.875) plain, 0.9898 and test 0.9736 (ACC 0.909) augmented, in about the same time (498 s
    in a search against 470 s alone); in the foundation benchmark (lite0, 128 px) augmenting lifted test
    AUC for every deep recipe tried: LoRA 0.967 -> 0.976, LP-FT 0.959 -> 0.969, full 0.936 -> 0.955."""
    epochs = max(1, math.floor(defaults["epochs"] / AUGMENTED_EPOCHS_FACTOR))
    return {**defaults, "augment": True, "epochs": epochs}


def lora_opening_depth(k: int, shape: dict[str, int], num_groups: int) -> int:
    """How many top groups the image LoRA opening adapts. Where the ranking found the best features among
    the top SHALLOW_BEST_DEPTH groups, the source's features serve: LoRA down to that depth (or the
    shallowest one holding layers it adapts). Where they lie deeper, the task's features differ from the
    source's all the way down: LoRA of the whole network, its default. Measured: on pneumoniamnist (best
    depth 3-5 groups below the top for all three candidates) lite1's LoRA reached validation AUC 0.9876
    down to the best depth (k = 4) and 0.9947 over the whole network, test 0.9665; on hymenoptera (best
    depth in the top two groups) lite2's whole-network LoRA took 359 s for validation accuracy 0.954, the
    one down to the best depth 23 s for 0.961, under the probe's 0.967 either way."""
    if k > SHALLOW_BEST_DEPTH:
        return shape.get("num_groups", num_groups)
    return max(k, shape.get("lora_min_k", 1))


def finished_with_same_params(study, trial) -> float | None:
    import optuna

    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if other.number != trial.number and other.params == trial.params:
            return other.value
    return None


def finished_trials(study) -> int:
    """Trials that ran to an end (enqueued ones waiting their turn and skipped ones do not count)."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum("skipped" not in t.user_attrs for t in study.get_trials(deepcopy=False, states=done))


def completed(study) -> bool:
    import optuna

    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def would_not_fit(plan: TrialPlan, candidate: dict, task: TaskData, state: dict, budget: Budget) -> str | None:
    """Why a plan cannot reach its first validation check before the budget ends, if it cannot."""
    cached = (state.get("cached_prefixes") or {}).get(plan.model, [])
    cost = seconds_to_first_check(plan, candidate, len(task.train), len(task.val), checks_per_epoch(task), cached)
    if cost is None or budget.remaining_s >= held_back_s(state) + cost:
        return None
    return f"needs about {cost:.0f}s to its first validation check, {budget.remaining_s:.0f}s left"


def remember_cached_prefix(state: dict, model: str, prefix: int) -> None:
    cached = state.setdefault("cached_prefixes", {}).setdefault(model, [])
    if prefix not in cached:
        cached.append(prefix)


def skip_trial(study, trial, plan: TrialPlan, reason: str, state: dict) -> None:
    import optuna

    state.setdefault("skipped", []).append({**dataclasses.asdict(plan), "trial": trial.number, "reason": reason})
    trial.set_user_attr("skipped", reason)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def expected_seconds(study) -> float:
    """A cautious guess of the next trial's cost: the median finished trial (0 before any finished)."""
    import optuna

    durations = [
        t.duration.total_seconds()
        for t in study.get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE and t.duration is not None
    ]
    return float(np.median(durations)) if durations else 0.0


def run_trial(
    trial,
    plan: TrialPlan,
    task: TaskData,
    base: FitConfig,
    cache: FeatureCache,
    budget: Budget,
    state: dict,
    out: Path,
    save_state,
) -> tuple[float | None, bool]:
    from ..api import fit

    strategy_cls = STRATEGIES.get(plan.strategy)
    overrides = dict(plan.overrides)
    lr_scale = overrides.pop("lr_scale", 1.0)
    config = base.replace(model=plan.model, strategy=plan.strategy, strategy_options=plan.options, **overrides)
    if config.augment and task.task != "transcription":
        stretched = {k: math.ceil(getattr(config, k) * AUGMENTED_EPOCHS_FACTOR) for k in ("epochs", "patience")}
        config = config.replace(**stretched)
    lr = strategy_cls(**plan.options).default_lr(task.modality) * lr_scale
    config = config.replace(lr=lr if strategy_cls.trains else None, checks_per_epoch=checks_per_epoch(task))
    pruned = {"flag": False}
    within_budget = stop_before_budget_ends(budget, held_back_s(state))

    def report(record: dict) -> None:
        trial.report(signed(base.metric, record[f"val_{base.metric}"]), round(record["epoch"] * STEPS_PER_EPOCH))
        save_state()
        if trial.should_prune():
            pruned["flag"] = True
            raise StopTraining
        within_budget(record)

    started = time.perf_counter()
    try:
        # The winner alone is scored on the test split, after the search (score_winner_on_test).
        result = fit(config=config, task=dataclasses.replace(task, test=None), cache=cache, hooks=[report])
    except Exception as exc:  # a failed trial must not end the search; the reason is kept
        log.warning("trial %d (%s, %s) failed: %s", trial.number, plan.model, plan.strategy, exc)
        trial.set_user_attr("error", str(exc))
        return None, False
    value = score(result.metrics["val"], base.metric)
    trial.set_user_attr("model", plan.model)
    trial.set_user_attr("strategy", plan.strategy)
    trial.set_user_attr("config", config.to_dict())
    for split in ("val", "test"):
        if split in result.metrics:
            trial.set_user_attr(split, {k: v for k, v in result.metrics[split].items() if k in HEADLINE_METRICS})
    if not config.augment:  # its frozen prefix's states are cached now: a later trial gets them free
        remember_cached_prefix(state, plan.model, result.metrics["frozen_prefix"])
    trial.set_user_attr("trained_groups", result.metrics["trained_groups"])
    trial.set_user_attr("trainable_params", result.metrics["trainable_params"])
    seconds = time.perf_counter() - started
    trial.set_user_attr("seconds", seconds)
    best = state.get("best")
    if not pruned["flag"] and (best is None or value > best["value"]):
        result.save(out / MODEL_DIR)
        state["best"] = {
            "value": value,
            "trial": trial.number,
            "model": plan.model,
            "strategy": plan.strategy,
            "spent_s": budget.spent_s,
            "seconds": seconds,
            "epochs_run": len(result.history),
        }
        if unlabeled := state.get("unlabeled"):  # the new best's student costs more or less than the last's
            n_train, label_s = len(task.train), labelling_seconds(state, plan.model)
            student_s = student_training_seconds(seconds, len(result.history), unlabeled.get("epochs"))
            state["self_training_reserve_s"] = reserve_s(
                student_s, n_train, unlabeled["size"], unlabeled["share"], budget.total_s, label_s
            )
    return value, pruned["flag"]


def labelling_seconds(state: dict, model: str) -> float | None:
    """Seconds an example of `model`'s whole inference pass, as its ranking measured it (None unmeasured)."""
    candidate = next((c for c in state.get("ranking") or [] if c["model"] == model), None)
    return candidate["pass_seconds"][-1] if candidate and candidate.get("pass_seconds") else None


def held_back_s(state: dict) -> float:
    """Time the search leaves unspent: for writing its files, and for self-training its winner."""
    return RESERVE_S + state.get("self_training_reserve_s", 0.0)
