"""`transferopt bench`: transferopt against fixed baselines and peer tools, side by side on the same splits."""

from .runner import run_suite
from .suite import Suite, load_suite
from .table import write_plots, write_table

__all__ = ["Suite", "load_suite", "run_suite", "write_plots", "write_table"]
