"""Run directories are written atomically and never clobber unrelated folders."""

from __future__ import annotations

import json
import os

import pytest

from transferopt.errors import RunDirError
from transferopt.reporting import is_run_dir, read_json, write_json, write_run_dir


def fill_with(files: dict[str, str]):
    def fill(folder):
        for name, text in files.items():
            (folder / name).write_text(text)

    return fill


def test_new_run_dir(tmp_path):
    out = write_run_dir(tmp_path / "a" / "run", fill_with({"x.txt": "1"}), {"kind": "fit"})
    assert is_run_dir(out) and (out / "x.txt").read_text() == "1"
    assert json.loads((out / "transferopt-run.json").read_text()) == {"kind": "fit"}


def test_replacing_a_run_dir(tmp_path):
    out = write_run_dir(tmp_path / "run", fill_with({"old.txt": "1"}), {})
    write_run_dir(out, fill_with({"new.txt": "2"}), {})
    assert sorted(os.listdir(out)) == ["new.txt", "transferopt-run.json"]
    assert os.listdir(tmp_path) == ["run"]


def test_failure_while_filling_leaves_the_previous_run(tmp_path):
    out = write_run_dir(tmp_path / "run", fill_with({"old.txt": "1"}), {})

    def broken(folder):
        (folder / "half.txt").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_run_dir(out, broken, {})
    assert sorted(os.listdir(out)) == ["old.txt", "transferopt-run.json"]
    assert os.listdir(tmp_path) == ["run"]


def test_unrelated_folder_is_refused_untouched(tmp_path):
    (tmp_path / "notes.md").write_text("mine")
    with pytest.raises(RunDirError, match="already holds files that are not a transferopt run"):
        write_run_dir(tmp_path, fill_with({"x": "y"}), {})
    assert os.listdir(tmp_path) == ["notes.md"] and (tmp_path / "notes.md").read_text() == "mine"


def test_json_helpers(tmp_path):
    write_json(tmp_path / "sub" / "v.json", {"b": 1, "a": (1, 2)})
    assert read_json(tmp_path / "sub" / "v.json") == {"a": [1, 2], "b": 1}
    assert os.listdir(tmp_path / "sub") == ["v.json"]
    with pytest.raises(RunDirError, match="missing.json is missing"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RunDirError, match="corrupt"):
        read_json(tmp_path / "bad.json")


def test_written_files_and_folders_take_the_users_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_json(tmp_path / "v.json", {})
        out = write_run_dir(tmp_path / "run", fill_with({"x.txt": "1"}), {})
    finally:
        os.umask(previous)
    # not the private 0600 / 0700 of the temporary file and folder they were written as
    assert (tmp_path / "v.json").stat().st_mode & 0o777 == 0o640
    assert out.stat().st_mode & 0o777 == 0o750
    assert (out / "transferopt-run.json").stat().st_mode & 0o777 == 0o640
