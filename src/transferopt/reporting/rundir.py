"""Run directories, written atomically: a run appears complete or not at all, and an earlier run
in the same place is replaced only once the new one is fully written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RunDirError

MARKER = "transferopt-run.json"


def is_run_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def permissions_as_created(base: int) -> int:
    """The mode `open` or `mkdir` would give under the user's umask (read here, as os offers no getter)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return base & ~umask


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes its file private (0600); the renamed file is the user's and reads as any other they write.
    os.fchmod(handle, permissions_as_created(0o666))
    with os.fdopen(handle, "w") as stream:
        json.dump(value, stream, indent=2, sort_keys=True, default=str)
        stream.write("\n")
    os.replace(temporary, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path.parent} is not a complete transferopt run: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is corrupt: {exc}") from None


def check_run_destination(destination: Path) -> None:
    """Refuse, before any work, a destination that would overwrite something that is not a run."""
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise RunDirError(f"--out {destination} is a file, not a folder")
    if destination.is_dir() and any(destination.iterdir()) and not is_run_dir(destination):
        raise RunDirError(f"--out {destination} already holds files that are not a transferopt run; choose another")


def write_run_dir(destination: Path, fill: Callable[[Path], None], marker: dict[str, Any]) -> Path:
    """Let `fill` write into a fresh temporary folder, then move it into place."""
    destination = Path(destination)
    check_run_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.tmp-"))
    try:
        staging.chmod(permissions_as_created(0o777))  # mkdtemp's folder is private (0700); the run is not
        fill(staging)
        write_json(staging / MARKER, marker)
        if destination.exists():
            retired = destination.with_name(f".{destination.name}.old-{os.getpid()}")
            os.replace(destination, retired)
            os.replace(staging, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
