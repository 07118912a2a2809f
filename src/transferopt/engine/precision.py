"""Numeric precision of training and inference: float32, or bfloat16 autocast where the hardware runs it.

Autocast runs matrix products and convolutions in bfloat16 and keeps the weights, the optimiser's state,
reductions and the loss in float32 (mixed precision; Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep
Learning Training"). With native bfloat16 instructions that is faster at the same accuracy; without them
the CPU emulates bfloat16, slower than float32, so `auto` picks it only where it is native. Measured on
this project's 2-core CPU (AVX512-BF16), side by side: `benchmarks/results/precision.md`.
The feature cache always computes in float32: its features are shared across runs and precisions, and
the ranking's scores and the linear probe read them exactly."""

from __future__ import annotations

import contextlib

import torch

from ..config import PRECISION_CHOICES
from ..errors import ConfigError

#: Devices torch's autocast can run in bfloat16.
BF16_DEVICES = ("cpu", "cuda")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX). torch exposes the checks only
    under private names; a torch without them is treated as a CPU without the instructions."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def has_native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        # Without emulation: GPUs before Ampere would run bf16 emulated, slower than float32.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs in for `precision` on `device`, or None for plain float32. The user's value
    was checked by FitConfig; anything else here is a caller's bug."""
    if precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if has_native_bf16(device) else None
    if precision != "bf16":
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    if device.type not in BF16_DEVICES or (device.type == "cuda" and not torch.cuda.is_bf16_supported()):
        raise ConfigError(f"--precision bf16: the {device.type} device here cannot run bfloat16; use fp32 or auto")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`; a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
