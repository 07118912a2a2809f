"""Progress display on stderr (rich), silent when not attached to a terminal or when disabled."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


def progress_enabled() -> bool:
    return os.environ.get("TRANSFEROPT_PROGRESS", "auto") == "1" or (
        os.environ.get("TRANSFEROPT_PROGRESS", "auto") == "auto" and sys.stderr.isatty()
    )


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callable; a rich bar is drawn only when progress is enabled."""
    if not progress_enabled():
        # No terminal to draw on: one log line per long step still tells the user what is happening.
        log.info("%s: %d steps", description, total)
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
