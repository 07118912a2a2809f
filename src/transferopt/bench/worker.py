"""One benchmark job in its own process: `python -m transferopt.bench.worker JOB.json RESULT.json`.

A process per job keeps the measurements honest: wall-clock from a cold start, peak memory of that job
alone (the parent reads it with wait4), and nothing cached in memory from the previous system.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .._plugins import load_plugins
from .systems import find_system


def main(job_path: str, result_path: str) -> int:
    load_plugins()
    job = json.loads(Path(job_path).read_text())
    result = find_system(job["system"], job.get("peers_dir"))(job)
    Path(result_path).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
