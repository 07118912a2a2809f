"""report.html: built from a run directory's files, self-contained, and rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import transferopt
from transferopt.cli.main import app
from transferopt.errors import RunDirError
from transferopt.reporting.report import fit_command, write_report
from transferopt.search import OptimizeSettings, optimize

runner = CliRunner()


@pytest.fixture(scope="module")
def optimize_dir(tmp_path_factory, colour_folder) -> Path:
    out = tmp_path_factory.mktemp("report") / "search"
    optimize(OptimizeSettings(data=str(colour_folder), candidates=["tiny-effnet"], budget_s=15, out=out, max_epochs=2))
    return out


class Collector(HTMLParser):
    """Tags, external references and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.references += [v for k, v in attrs if k in ("src", "href") and v]
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data.strip())
            self._in_h2 = False


def parse(path: Path) -> Collector:
    collector = Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def test_optimize_writes_a_self_contained_report_with_every_section(optimize_dir):
    page = parse(optimize_dir / "report.html")
    assert page.headings == [
        "Decision",
        "Data",
        "Candidate ranking",
        "Leaderboard",
        "Network",
        "Training curves",
        "Errors on the test split",
        "Calibration",
        "Time (seconds)",
        "Reproduce",
    ]
    assert "script" not in page.tags  # nothing to run, nothing to fail
    assert page.references == []  # no file or URL to fetch: it opens offline, anywhere
    assert page.tags.count("svg") >= 3  # depth profile, confusion matrix, reliability (+ curves if trained)
    text = (optimize_dir / "report.html").read_text()
    summary = transferopt.load(optimize_dir).metrics
    for group in summary["layer_groups"]:
        assert f"title='{group}'" in text  # every layer group is drawn
    assert "transferopt optimize --data" in text and "--candidates tiny-effnet" in text
    assert "<th>searched</th>" in text  # which ranked candidates the search tried, and by what rule
    assert "tries the best 2 by LogME and any other whose cross-validated probe accuracy" in text


def test_trained_groups_are_highlighted(optimize_dir):
    metrics = transferopt.load(optimize_dir).metrics
    text = (optimize_dir / "report.html").read_text()
    highlighted = re.findall(r"<div class='g on' title='([^']+)'>", text)
    assert highlighted == metrics["trained_groups"]


def test_report_command_rebuilds_the_page(optimize_dir):
    (optimize_dir / "report.html").unlink()
    result = runner.invoke(app, ["report", str(optimize_dir)])
    assert result.exit_code == 0, result.output
    assert (optimize_dir / "report.html").is_file()


def test_report_command_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path} is not a transferopt run directory "
                                                  "(no metrics.json, no summary.json)"]  # fmt: skip
    with pytest.raises(RunDirError, match="does not exist"):
        write_report(tmp_path / "missing")


def test_fit_command_writes_a_report_too(tmp_path, colour_folder):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["fit", "--data", str(colour_folder), "--model", "tiny-effnet", "--strategy", "bitfit", "--epochs", "1",
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = parse(out / "report.html")
    assert "Leaderboard" not in page.headings and "Network" in page.headings


def test_fit_command_in_the_report_reproduces_the_configuration():
    config = transferopt.FitConfig(
        data="d", model="m", strategy="lp-ft", strategy_options={"then": "partial", "then_options": {"k": 2}},
        lr=3e-4, augment=True, calibrate=False, shots=5, flip=False,
    ).to_dict()  # fmt: skip
    command = fit_command(config)
    assert command.startswith("transferopt fit --data d --model m --strategy lp-ft -o then=partial")
    assert "-o 'then_options={\"k\": 2}'" in command
    for flag in ("--shots 5", "--lr 0.0003", "--augment", "--no-calibrate", "--no-flip"):
        assert flag in command
    assert "--epochs" not in command and "--flip" not in command.replace("--no-flip", "")  # defaults left out


def test_optimize_command_keeps_no_flip():
    from transferopt.reporting.report import optimize_command

    settings = {"data": "d", "candidates": ["a", "b"], "budget_s": 60.0, "seed": 0, "metric": "accuracy", "out": "o"}
    assert "--no-flip" in optimize_command({**settings, "flip": False})
    assert "flip" not in optimize_command({**settings, "flip": True})


def test_optimize_command_always_names_the_share_step():
    from transferopt.reporting.report import optimize_command
    from transferopt.search import OptimizeSettings

    assert OptimizeSettings(data="d", candidates=["a"], budget_s=60.0, out="o").pseudo_label_share_step == 0.2
    settings = {"data": "d", "candidates": ["a"], "budget_s": 60.0, "seed": 0, "metric": "accuracy", "out": "o",
                "unlabeled": "pool.csv", "self_training_rounds": 3, "pseudo_label_share": 0.6}  # fmt: skip
    # optimize's default step is 0.2, so a run without one (0, or recorded before the flag) must say 0.
    assert "--pseudo-label-share-step 0 " in optimize_command({**settings, "pseudo_label_share_step": 0.0})
    assert "--pseudo-label-share-step 0 " in optimize_command(settings)
    assert "--pseudo-label-share-step 0.2 " in optimize_command({**settings, "pseudo_label_share_step": 0.2})


def test_fit_command_keeps_the_audio_settings():
    config = transferopt.FitConfig(data="d", model="m", audio_seconds=2.5, audio_col="clip", metric="wer").to_dict()
    command = fit_command(config)
    for flag in ("--audio-seconds 2.5", "--audio-col clip", "--metric wer"):
        assert flag in command


def test_fit_command_keeps_the_self_training_settings():
    config = transferopt.FitConfig(data="d", model="m", unlabeled="pool.csv", self_training_rounds=2).to_dict()
    command = fit_command(config)
    assert "--unlabeled pool.csv --self-training-rounds 2" in command and "--pseudo-label-share" not in command
    students = transferopt.FitConfig(data="d", model="m", unlabeled="pool.csv", self_training_epochs=4).to_dict()
    assert "--self-training-epochs 4" in fit_command(students)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_renders_in_headless_chromium_without_console_errors(optimize_dir, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("TRANSFEROPT_REQUIRE_SYSTEM_TOOLS"):
            pytest.fail("chromium is required here (TRANSFEROPT_REQUIRE_SYSTEM_TOOLS is set) but not installed")
        pytest.skip("chromium is not installed (`.ci/run` installs it)")
    screenshot = tmp_path / "report.png"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
        "--v=0", "--window-size=1200,3000", f"--screenshot={screenshot}",
        (optimize_dir / "report.html").resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000  # a real page, not a blank one
    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").resize((60, 150)).getcolors(maxcolors=100_000)
    assert len(colours) > 20  # text, tables and figures, not an empty canvas
