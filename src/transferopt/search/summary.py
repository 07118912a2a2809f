"""The account of a search: leaderboard, winner, and how it compares with simpler recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.metrics import signed
from ..reporting.rundir import write_json
from ..reporting.wording import describe_left_out, describe_self_training
from .budget import Budget


def leaderboard(study, metric: str) -> list[dict[str, Any]]:
    import optuna

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        attrs = trial.user_attrs
        if "val" not in attrs:
            continue
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "model": attrs["model"],
                "strategy": attrs["strategy"],
                "options": attrs["config"]["strategy_options"],
                "lr": attrs["config"]["lr"],
                "epochs": attrs["config"]["epochs"],
                "batch_size": attrs["config"]["batch_size"],
                "augment": attrs["config"]["augment"],
                # As measured (an error rate stays positive); the sort below puts the best first.
                f"val_{metric}": attrs["val"].get(metric, trial.value),
                "val": attrs["val"],
                "test": attrs.get("test"),
                "trained_groups": attrs["trained_groups"],
                "trainable_params": attrs["trainable_params"],
                "seconds": attrs["seconds"],
            }
        )
    key = f"val_{metric}"
    return sorted(rows, key=lambda r: (r["state"] != "complete", -signed(metric, r[key] or 0.0)))


def best_of(rows: list[dict], strategy: str) -> dict | None:
    return next((r for r in rows if r["strategy"] == strategy and r["state"] == "complete"), None)


def write_summary(out: Path, study, state: dict, settings, budget: Budget) -> dict[str, Any]:
    metric = settings.metric
    rows = leaderboard(study, metric)
    best = state.get("best") or {}
    winner = next((r for r in rows if r["trial"] == best.get("trial")), None)
    if winner is not None and best.get("test"):
        winner["test"] = best["test"]  # scored after the search
    summary = {
        "data": settings.data,
        "metric": metric,
        "budget_s": settings.budget_s,
        "spent_s": budget.spent_s,
        "stopped_early": state.get("stopped"),
        "ranking": state["ranking"],
        "searched": state.get("searched"),
        "keeping": state.get("keeping"),
        "winner": winner,
        "best_linear_probe": best_of(rows, "linear-probe"),
        "best_full_fine_tune": best_of(rows, "full"),
        "leaderboard": rows,
        "skipped": state.get("skipped", []),
        "self_training": state.get("self_training"),
        "model_dir": "model",
    }
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(render_markdown(summary))
    return summary


def render_markdown(summary: dict[str, Any]) -> str:
    metric = summary["metric"]
    lines = [f"# transferopt optimize — {summary['data']}", ""]
    winner = summary["winner"]
    if winner:
        groups = ", ".join(winner["trained_groups"]) or "none (head only)"
        lines += [
            f"**Decision:** {winner['model']} with `{winner['strategy']}` {winner['options'] or ''}"
            f"{', trained on augmented inputs' if winner.get('augment') else ''} — validation "
            f"{metric} {winner[f'val_{metric}']:.4f}; trained layer groups: {groups} "
            f"({winner['trainable_params']:,} trainable parameters).",
            "",
        ]
        for label, key in (("best linear probe", "best_linear_probe"), ("best full fine-tune", "best_full_fine_tune")):
            other = summary[key]
            if other:
                lines.append(f"- versus the {label} ({other['model']}): {other[f'val_{metric}']:.4f}")
            else:
                lines.append(f"- no {label} was run within the budget")
        if summary.get("self_training"):
            lines.append("- " + describe_self_training(summary["self_training"], metric))
        if winner.get("test"):
            lines.append("- winner on the test split: " + ", ".join(f"{k} {v:.4f}" for k, v in winner["test"].items()))
        lines.append("")
    stopped = summary.get("stopped_early")
    lines += [
        f"Time: {summary['spent_s']:.0f}s of a {summary['budget_s']:.0f}s budget"
        + (f" (stopped early: {stopped})." if stopped else "."),
        "",
        "## Candidate ranking",
        "",
        "| model | LogME | LEEP/N-LEEP | kNN LOO | linear CV | best depth |",
        "|---|---|---|---|---|---|",
    ]
    for c in summary["ranking"]:
        s = c["scores"]
        if not s:  # transcription: no transferability score applies
            lines.append(f"| {c['model']} | — | — | — | — | — |")
            continue
        leep = s.get("leep", s.get("nleep", float("nan")))
        lines.append(
            f"| {c['model']} | {s['logme']:.4f} | {leep:.4f} | {s['knn_loo']:.4f} | {s['linear_cv']:.4f} | "
            f"{c['best_depth'] or '—'} |"
        )
    left_out = [c for c in summary["ranking"] if c["model"] not in (summary.get("searched") or [])]
    if summary.get("searched") and left_out:
        # Transcription rankings carry no scores: the candidates keep the order they were given in.
        why = (
            describe_left_out(summary.get("keeping"))
            if left_out[0]["scores"]
            else "after the first ones given: speech recognition has no transferability score"
        )
        names = ", ".join(c["model"] for c in left_out)
        lines += ["", f"Searched: {', '.join(summary['searched'])}. Left out: {names} ({why})."]
    lines += [
        "",
        "## Leaderboard",
        "",
        f"| trial | model | strategy | options | augmented | val {metric} | state | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["leaderboard"]:
        lines.append(
            f"| {r['trial']} | {r['model']} | {r['strategy']} | {r['options'] or ''} | "
            f"{'yes' if r.get('augment') else ''} | {r[f'val_{metric}']:.4f} | {r['state']} | {r['seconds']:.0f} |"
        )
    if summary.get("skipped"):
        lines += ["", "Not started, for want of time:", ""]
        lines += [
            f"- trial {s['trial']}: {s['model']} `{s['strategy']}` {s['options'] or ''} ({s['reason']})"
            for s in summary["skipped"]
        ]
    return "\n".join(lines) + "\n"
