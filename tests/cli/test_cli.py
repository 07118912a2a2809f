"""The `transferopt` command: happy paths, and every user error as one `error:` line with exit code 2."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import typer
from typer.testing import CliRunner

from tests import helpers
from transferopt.cli.common import parse_options
from transferopt.cli.main import app
from transferopt.config import OPTIMIZE_SELF_TRAINING_ROUNDS, FitConfig
from transferopt.errors import ConfigError
from transferopt.strategies import STRATEGIES

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2, no traceback, and exactly one `error:` line (the last on stderr) naming the culprit."""
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    assert isinstance(result.exception, SystemExit) or result.exception is None
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert all(line.startswith(("error: ", "warning: ", "info: ", "epoch ")) for line in lines), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def fit(data, model, out, *extra):
    return invoke("fit", "--data", data, "--model", model, "--out", out, *extra)


# -- happy paths ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, colour_folder):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = fit(
        colour_folder,
        "tiny-effnet",
        out,
        "--strategy",
        "partial",
        "-o",
        "k=1",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_fit_prints_a_summary_and_saves(cli_run):
    out, result = cli_run
    assert "tiny-effnet · partial" in result.stdout
    assert "trained groups: head_conv" in result.stdout and f"saved to {out}" in result.stdout
    assert "epoch 1:" in result.stderr and "epoch 2:" in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["strategy_options"] == {"k": 1} and config["seed"] == 1 and config["lr"] == 0.01
    assert (out / "model.safetensors").is_file()


def test_predict(cli_run, colour_folder):
    out, _ = cli_run
    images = [str(p) for p in sorted((colour_folder / "test").rglob("*.png"))[:3]]
    result = invoke("predict", out, *images)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[2] for r in rows] == images
    assert all(r[0] in {"blue", "green", "red"} and 0 < float(r[1]) <= 1 for r in rows)
    as_json = invoke("predict", out, *images, "--json")
    parsed = json.loads(as_json.stdout)
    assert [p["label"] for p in parsed] == [r[0] for r in rows]
    from_stdin = invoke("predict", out, "-", "--json", input="\n".join(images) + "\n\n")
    assert json.loads(from_stdin.stdout) == parsed


def test_evaluate(cli_run):
    out, _ = cli_run
    saved = json.loads((out / "metrics.json").read_text())
    for split in ("test", "val"):
        result = invoke("evaluate", out, "--split", split)
        assert result.exit_code == 0, result.output
        metrics = json.loads(result.stdout)
        assert metrics["n"] == saved[split]["n"]
        assert metrics["accuracy"] == pytest.approx(saved[split]["accuracy"])


def test_fit_text_with_options(tmp_path, intents_dir, tiny_bert_name):
    out = tmp_path / "text"
    result = fit(
        intents_dir,
        tiny_bert_name,
        out,
        "--strategy",
        "lp-ft",
        "-o",
        "then=lora",
        "-o",
        'then_options={"rank": 2, "target_modules": ["query"]}',
        "--epochs",
        "1",
        "--max-length",
        "16",
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["strategy_options"] == {
        "then": "lora",
        "then_options": {"rank": 2, "target_modules": ["query"]},
    }
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    predicted = invoke("predict", out, "play a song", "will it rain", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert [p["input"] for p in json.loads(predicted.stdout)] == ["play a song", "will it rain"]


def test_fit_builtin_digits_with_shots(tmp_path):
    out = tmp_path / "digits"
    result = fit("builtin:digits", "tiny-effnet", out, "--shots", "3", "--val-shots", "2")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "data.json").read_text())
    assert data["counts"]["train"] == {str(i): 3 for i in range(10)}
    assert data["counts"]["val"] == {str(i): 2 for i in range(10)}
    assert sum(data["counts"]["test"].values()) == 540


def test_models():
    result = invoke("models", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"tiny-effnet", "efficientnet_lite0", "minilm-l6", "timm/<name>", "hf/<repo-or-dir>"} <= set(rows)
    table = invoke("models")
    assert table.exit_code == 0 and "efficientnet_lite0" in table.stdout


def test_strategies():
    result = invoke("strategies", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == STRATEGIES.names()
    assert set(rows["lora"]["options"]) == {"rank", "alpha", "dropout", "target_modules", "last_k"}
    assert rows["full"]["options"] == {}
    assert all(row["summary"] for row in rows.values())
    plain = invoke("strategies")
    assert plain.exit_code == 0
    assert [line.split()[0] for line in plain.stdout.strip().splitlines()] == STRATEGIES.names()


def test_fit_options_take_their_defaults_and_help_from_fit_config():
    """One source of truth: `transferopt fit --help` and the Python API describe each setting alike."""
    fields = {f.name: f for f in dataclasses.fields(FitConfig)}
    params = {p.name: p for p in typer.main.get_command(app).commands["fit"].params if p.name in fields}
    assert {"data", "epochs", "precision", "seed", "device", "pretrained"} <= set(params)
    for name, param in params.items():
        field = fields[name]
        assert param.help == field.metadata["help"], name
        if field.default is not dataclasses.MISSING:
            assert param.default == field.default, name
    optimize = {p.name: p for p in typer.main.get_command(app).commands["optimize"].params}
    assert optimize["precision"].help == fields["precision"].metadata["help"]
    assert optimize["self_training_rounds"].default == OPTIMIZE_SELF_TRAINING_ROUNDS  # optimize's own default


def test_fit_passes_its_options_to_the_config_by_name(monkeypatch, tmp_path):
    """Options named after FitConfig fields reach the config by name: none dropped, none swapped."""

    class Captured(Exception):
        pass

    def fake_fit(config, out, hooks):
        raise Captured(config)

    monkeypatch.setattr("transferopt.api.fit", fake_fit)
    given = {"epochs": 7, "lr": 0.003, "seed": 5, "self_training_epochs": 2, "precision": "fp32", "text_col": "body"}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in given.items()]
    result = invoke(
        "fit",
        "--data",
        "builtin:digits",
        "--model",
        "m",
        "--strategy",
        "full",
        "--out",
        tmp_path,
        *flags,
        "--no-flip",
        "--scratch",
        "-o",
        "k=3",
    )
    assert isinstance(result.exception, Captured), result.output
    config = result.exception.args[0]
    assert {name: getattr(config, name) for name in given} == given
    assert (config.flip, config.pretrained, config.strategy_options) == (False, False, {"k": 3})
    assert config.weight_decay == FitConfig(data="d", model="m", strategy="full").weight_decay  # untouched default


def test_parse_options():
    assert parse_options(["k=3", "alpha=0.5", "then=full", 'm=["a", "b"]', "x={}"]) == {
        "k": 3,
        "alpha": 0.5,
        "then": "full",
        "m": ["a", "b"],
        "x": {},
    }
    assert parse_options(None) == {}
    with pytest.raises(ConfigError, match="--option expects key=value"):
        parse_options(["novalue"])


# -- user errors ----------------------------------------------------------------------------------------


def test_missing_data_path(tmp_path):
    missing = tmp_path / "nowhere"
    assert_user_error(fit(missing, "tiny-effnet", tmp_path / "out"), "data path does not exist", str(missing))
    assert not (tmp_path / "out").exists()


def test_corrupt_image_files(tmp_path):
    data = helpers.write_colour_images(tmp_path / "data", layout="flat", per_class=2)
    for i in range(2):
        helpers.write_corrupt(data / "red" / f"broken{i}.jpg", seed=i)
    (data / "blue" / "readme.txt").write_text("hello")
    assert_user_error(fit(data, "tiny-effnet", tmp_path / "out"), "3 of 9 files are not readable images")
    assert not (tmp_path / "out").exists()


def test_a_few_corrupt_files_are_only_a_warning(tmp_path):
    data = helpers.write_colour_images(tmp_path / "data", layout="flat", per_class=10)
    broken = helpers.write_corrupt(data / "red" / "broken.jpg")
    result = fit(data, "tiny-effnet", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "data.json").read_text())["skipped"] == [str(broken)]
    assert "skipped 1 unreadable input(s)" in result.stdout


def test_unknown_column(tmp_path, intents_dir):
    assert_user_error(
        fit(intents_dir, "tiny-effnet", tmp_path / "out", "--text-col", "body"),
        "--text-col 'body' is not a column",
        "columns: text, label",
    )
    assert_user_error(
        fit(intents_dir, "tiny-effnet", tmp_path / "out", "--label-col", "topic"),
        "--label-col 'topic' is not a column",
    )


def test_one_class(tmp_path):
    data = helpers.write_colour_images(tmp_path / "data", layout="flat", per_class=4, classes={"cat": (1, 2, 3)})
    assert_user_error(fit(data, "tiny-effnet", tmp_path / "out"), "only one class ('cat')")


def test_single_example_class(tmp_path):
    rows = helpers.intent_rows(range(4)) + [{"text": "good morning", "label": "greeting"}]
    path = helpers.write_table(tmp_path / "t.csv", rows)
    assert_user_error(fit(path, "tiny-effnet", tmp_path / "out"), "class 'greeting' has a single example")


def test_shots_too_large(tmp_path, colour_folder):
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--shots", "9"),
        "--shots 9 is larger than class 'blue' (8 train examples)",
    )


def test_unknown_model(tmp_path, colour_folder):
    assert_user_error(fit(colour_folder, "resnet9000", tmp_path / "out"), "unknown model 'resnet9000'")
    assert_user_error(fit(colour_folder, "timm/resnet9000", tmp_path / "out"), "unknown timm model 'resnet9000'")


def test_unknown_strategy(tmp_path, colour_folder):
    message = assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--strategy", "magic"), "unknown strategy 'magic'"
    )
    assert "linear-probe" in message and "lora" in message


def test_unknown_strategy_option(tmp_path, colour_folder):
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--strategy", "lora", "-o", "ranks=4"),
        "no option(s) ranks",
        "valid: alpha, dropout, last_k, rank, target_modules",
    )
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "-o", "novalue"), "--option expects key=value"
    )


def test_impossible_strategy_option(tmp_path, colour_folder):
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--strategy", "partial", "-o", "k=99"),
        "partial: k must be between 1 and 7",
    )


def test_modality_mismatch(tmp_path, intents_dir, colour_folder, tiny_bert_name):
    assert_user_error(
        fit(intents_dir, "tiny-effnet", tmp_path / "out"),
        "model tiny-effnet takes image input",
        "holds text data",
    )
    assert_user_error(fit(colour_folder, tiny_bert_name, tmp_path / "out"), "takes text input", "holds image data")


def test_invalid_option_values(tmp_path, colour_folder):
    assert_user_error(fit(colour_folder, "tiny-effnet", tmp_path / "out", "--epochs", "0"), "--epochs must be >= 1")
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--metric", "loss"), "--metric must be one of"
    )


def test_out_folder_with_unrelated_files(tmp_path, colour_folder):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert_user_error(fit(colour_folder, "tiny-effnet", out), "already holds files that are not a transferopt run")
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "precious"


def test_evaluate_and_predict_errors(tmp_path, cli_run):
    out, _ = cli_run
    assert_user_error(invoke("evaluate", tmp_path / "nope"), "run directory not found")
    (tmp_path / "half").mkdir()
    assert_user_error(invoke("evaluate", tmp_path / "half"), "config.json is missing")
    assert_user_error(invoke("evaluate", out, "--split", "holdout"), "no 'holdout' split")
    assert_user_error(invoke("predict", out, tmp_path / "ghost.png"), "image not found", "ghost.png")


def test_invalid_device(tmp_path, colour_folder):
    assert_user_error(fit(colour_folder, "tiny-effnet", tmp_path / "out", "--device", "nonsense"), "nonsense")


def test_option_of_the_wrong_type(tmp_path, colour_folder):
    assert_user_error(fit(colour_folder, "tiny-effnet", tmp_path / "out", "--strategy", "partial", "-o", "k=abc"), "k")


def test_evaluate_with_data_of_the_wrong_modality(tmp_path, cli_run):
    out, _ = cli_run
    rows = [{"text": f"a {c} thing number {i}", "label": c} for c in ("blue", "green", "red") for i in range(4)]
    table = helpers.write_table(tmp_path / "colours.csv", rows)
    assert_user_error(invoke("evaluate", out, "--data", table, "--split", "val"), "text")


def test_fit_with_unlabelled_images_reports_the_self_training(tmp_path, colour_folder):
    pool = helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=2)
    result = fit(
        colour_folder, "tiny-effnet", tmp_path / "out", "--unlabeled", pool, "--pseudo-label-share", "0.5",
        "--pseudo-label-share-step", "0.25",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())  # rich wraps long lines
    assert "self-training on 6 unlabelled example(s): labelled only: val accuracy 1.0000; round 1: 3" in printed
    assert json.loads((tmp_path / "out" / "config.json").read_text())["pseudo_label_share_step"] == 0.25
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["self_training"]["rounds"][0]["kept"] is False


def test_unlabelled_data_errors(tmp_path, colour_folder):
    missing = tmp_path / "nowhere"
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--unlabeled", missing),
        "unlabelled data path does not exist",
        str(missing),
    )
    assert_user_error(
        fit(colour_folder, "tiny-effnet", tmp_path / "out", "--unlabeled", tmp_path, "--pseudo-label-share", "0"),
        "--pseudo-label-share must be in (0, 1]",
    )
    assert not (tmp_path / "out").exists()


def test_optimize_self_trains_its_winner_on_unlabelled_images(tmp_path, colour_folder):
    pool = helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=2)
    out = tmp_path / "search"
    result = invoke(
        "optimize", "--data", colour_folder, "--candidates", "tiny-effnet", "--budget", "40s", "--max-trials", "1",
        "--out", out, "--unlabeled", pool, "--self-training-rounds", "2", "--pseudo-label-share", "0.5", "--no-flip",
        "--pseudo-label-share-step", "0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    assert "self-training on 6 unlabelled example(s): labelled only: val accuracy 1.0000; round 1: 3" in printed
    settings = json.loads((out / "optimize.json").read_text())["settings"]
    assert settings["flip"] is False and json.loads((out / "model" / "config.json").read_text())["flip"] is False
    assert (settings["unlabeled"], settings["self_training_rounds"], settings["pseudo_label_share"]) == (
        str(pool),
        2,
        0.5,
    )
    assert settings["pseudo_label_share_step"] == 0.5
    assert "--pseudo-label-share 0.5 --pseudo-label-share-step 0.5" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--unlabeled", "nowhere"], "unlabelled data path does not exist"),
        (["--unlabeled", "POOL", "--self-training-rounds", "0"], "--self-training-rounds must be >= 1"),
        (["--unlabeled", "POOL", "--pseudo-label-share", "1.5"], "--pseudo-label-share must be in (0, 1]"),
        (["--unlabeled", "POOL", "--pseudo-label-share-step", "2"], "--pseudo-label-share-step must be in [0, 1]"),
    ],
)
def test_optimize_unlabelled_data_errors(tmp_path, colour_folder, extra, fragment):
    pool = helpers.write_colour_images(tmp_path / "pool", layout="flat", per_class=1)
    extra = [str(pool) if arg == "POOL" else str(tmp_path / arg) if arg == "nowhere" else arg for arg in extra]
    out = tmp_path / "search"
    args = ["optimize", "--data", colour_folder, "--candidates", "tiny-effnet", "--budget", "30s", "--out", out]
    assert_user_error(invoke(*args, *extra), fragment)
    assert not out.exists()  # nothing made for a search that could not start
