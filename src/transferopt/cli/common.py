"""Shared CLI plumbing: user errors as one line, option parsing, output."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..config import FitConfig
from ..errors import ConfigError, TransferoptError

F = TypeVar("F", bound=Callable[..., Any])

#: FitConfig's fields by name: what `config_option` declares and `fit_config_from_options` reads back.
FIT_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(FitConfig)}


def user_errors_as_messages(command: F) -> F:
    """Print user mistakes as `error: …` on one line and exit 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        configure_logging()
        try:
            return command(*args, **kwargs)
        except TransferoptError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class LowercaseLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners and notebooks swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(LowercaseLevelFormatter())

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging() -> None:
    """Warnings from any library, plus transferopt's own progress notes, one line each on stderr."""
    root = logging.getLogger()
    if not any(isinstance(h, CurrentStderrHandler) for h in root.handlers):
        root.addHandler(CurrentStderrHandler())
        root.setLevel(logging.WARNING)
    logging.getLogger("transferopt").setLevel(logging.INFO)


def config_option(name: str, *flags: str) -> Any:
    """A typer option for FitConfig's field `name`, its default and help read from the field, so the
    command line and the Python API cannot drift apart. `flags` default to `--name-with-dashes`."""
    spec = FIT_CONFIG_FIELDS[name]
    default = ... if spec.default is dataclasses.MISSING else spec.default
    return typer.Option(default, *(flags or (f"--{name.replace('_', '-')}",)), help=spec.metadata.get("help"))


def fit_config_from_options(options: dict[str, Any], **settings: Any) -> FitConfig:
    """A FitConfig from a command's options (`locals()` of its function): those named after a field, as
    `config_option` declares them, plus `settings` (what the command computes itself)."""
    given = {name: value for name, value in options.items() if name in FIT_CONFIG_FIELDS}
    return FitConfig(**given, **settings)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values are JSON when they parse as JSON (numbers, lists, objects), else strings."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects key=value, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def comma_separated(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def parse_candidates(text: str) -> list[str]:
    if not (names := comma_separated(text)):
        raise ConfigError("--candidates needs at least one model name")
    return names


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def epoch_printer(record: dict) -> None:
    """One line per epoch on stderr, so long runs show progress even without a terminal."""
    fields = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k != "epoch")
    typer.echo(f"epoch {record['epoch']}: {fields}", err=True)
