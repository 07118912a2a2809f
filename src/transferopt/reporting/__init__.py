"""Reporting: run directories, records and (later) plots and HTML reports."""

from .rundir import is_run_dir, read_json, write_json, write_run_dir

__all__ = ["is_run_dir", "read_json", "write_json", "write_run_dir"]
