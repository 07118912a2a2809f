"""Create the peer tools' virtual environments: `python3.11 benchmarks/peers/setup_peers.py [PEER ...]`.

Each peer gets `.venvs/<peer>/` with torch 2.14.1 / torchvision 0.29.1 (the versions transferopt uses,
forced by constraints.txt so pip never swaps torch) plus the pins in `requirements/<peer>.txt`.
A venv is rebuilt only when its requirements file changed (a stamp records the file's hash), so this is
cheap to run before every benchmark. Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "constraints.txt"
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
PEERS = ("setfit", "fastai")
# Opt-in only: no release accepts torch 2.14.1, so its requirements file lists the other dependencies and
# these packages go in with --no-deps, outside their own pins (README.md, "AutoGluon MultiModal").
FORCED = {"autogluon": [f"autogluon.{p}==1.6.3" for p in ("multimodal", "core", "features", "common")]}


def requirements(peer: str) -> Path:
    return HERE / "requirements" / f"{peer}.txt"


def digest(peer: str) -> str:
    return hashlib.sha256(requirements(peer).read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()


def up_to_date(peer: str) -> bool:
    stamp = HERE / ".venvs" / peer / ".installed"
    return stamp.is_file() and stamp.read_text().strip() == digest(peer)


def build(peer: str, python: str) -> None:
    venv = HERE / ".venvs" / peer
    if venv.exists():
        shutil.rmtree(venv)  # a changed pin list starts clean rather than layering over old versions
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-c", str(CONSTRAINTS), *TORCH, "-r", str(requirements(peer))], check=True)
    if peer in FORCED:
        subprocess.run([*pip, "--no-deps", *FORCED[peer]], check=True)
        (venv / ".forced").write_text("installed with --no-deps beside torch 2.14.1, outside its own pins\n")
    (venv / ".installed").write_text(digest(peer) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peers", nargs="*", default=list(PEERS), help=f"default: {' '.join(PEERS)}")
    parser.add_argument("--python", default="python3.11", help="interpreter the venvs are made with")
    parser.add_argument("--force", action="store_true", help="also build autogluon, outside its torch pin")
    args = parser.parse_args(argv)
    for peer in args.peers:
        if peer in FORCED and not args.force:
            parser.error(f"{peer} does not accept torch 2.14.1; --force installs it anyway (see README.md)")
        if peer not in PEERS and peer not in FORCED:
            parser.error(f"unknown peer {peer!r}; choose from {', '.join([*PEERS, *FORCED])}")
        if up_to_date(peer):
            print(f"{peer}: up to date")
            continue
        print(f"{peer}: installing into {HERE / '.venvs' / peer} ...", flush=True)
        build(peer, args.python)
        print(f"{peer}: ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
