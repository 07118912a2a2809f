"""Reading CTranslate2 `model.bin` files (binary version 6) into numpy arrays.

Written by hand because nothing maintained reads this format without the `ctranslate2` runtime itself,
which cannot hand tensors back to PyTorch. The layout mirrors `ctranslate2.specs.model_spec._serialize`:

    uint32 version | string spec name | uint32 revision | uint32 count
    count x (string name | uint8 rank | rank x uint32 dim | uint8 dtype | uint32 bytes | raw data)
    uint32 aliases | aliases x (string alias | string target)

where a string is a uint16 length (including a trailing NUL) and the UTF-8 bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError

SUPPORTED_VERSION = 6
# ctranslate2's DataType enum order.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


@dataclass
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.source}: truncated CTranslate2 file (at byte {self.pos})")
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.take("H")
        raw = self.data[self.pos : self.pos + length - 1]
        self.pos += length
        return raw.decode("utf-8")

    def array(self, shape: list[int], dtype_id: int, nbytes: int) -> np.ndarray:
        if dtype_id not in DTYPES:
            raise ModelError(f"{self.source}: unsupported CTranslate2 data type id {dtype_id}")
        if self.pos + nbytes > len(self.data):
            raise ModelError(f"{self.source}: truncated CTranslate2 file (tensor at byte {self.pos})")
        values = np.frombuffer(self.data, dtype=DTYPES[dtype_id], count=nbytes // np.dtype(DTYPES[dtype_id]).itemsize,
                               offset=self.pos)  # fmt: skip
        self.pos += nbytes
        return values.reshape(shape) if shape else values.reshape(())


def read_ct2(parts: Path | Iterable[Path]) -> CT2Model:
    """Read a CTranslate2 model file, or the concatenation of its parts (in order)."""
    paths = [Path(parts)] if isinstance(parts, str | Path) else [Path(p) for p in parts]
    source = ", ".join(str(p) for p in paths)
    try:
        data = b"".join(p.read_bytes() for p in paths)
    except OSError as exc:
        raise ModelError(f"cannot read CTranslate2 model {source}: {exc}") from None
    reader = _Reader(data, source)
    version = reader.take("I")
    if version != SUPPORTED_VERSION:
        raise ModelError(f"{source}: CTranslate2 binary version {version}; only version {SUPPORTED_VERSION} is read")
    model = CT2Model(spec=reader.string(), revision=reader.take("I"))
    for _ in range(reader.take("I")):
        name = reader.string()
        shape = [reader.take("I") for _ in range(reader.take("B"))]
        dtype_id = reader.take("B")
        model.variables[name] = reader.array(shape, dtype_id, reader.take("I"))
    for _ in range(reader.take("I")):
        alias = reader.string()
        model.aliases[alias] = reader.string()
    if reader.pos != len(data):
        raise ModelError(f"{source}: {len(data) - reader.pos} unexpected bytes after the CTranslate2 model")
    return model


def write_ct2(path: Path, spec: str, revision: int, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """The inverse of `read_ct2` (tests write tiny models with it)."""
    ids = {np.dtype(v): k for k, v in DTYPES.items()}

    def string(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack("<H", len(raw) + 1) + raw + b"\0"

    chunks = [struct.pack("<I", SUPPORTED_VERSION), string(spec), struct.pack("<I", revision)]
    chunks.append(struct.pack("<I", len(variables)))
    for name, value in variables.items():
        value = np.array(value, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
        chunks += [string(name), struct.pack("<B", value.ndim), *(struct.pack("<I", d) for d in value.shape)]
        chunks += [struct.pack("<B", ids[value.dtype]), struct.pack("<I", value.nbytes), value.tobytes()]
    chunks.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        chunks += [string(alias), string(target)]
    Path(path).write_bytes(b"".join(chunks))
