"""The CTranslate2 model-file reader, on tiny files the tests write."""

from __future__ import annotations

import numpy as np
import pytest

from transferopt.errors import ModelError
from transferopt.models.ct2_format import read_ct2, write_ct2


def tiny_variables() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "encoder/layer_0/self_attention/linear_0/weight": rng.standard_normal((6, 2)).astype(np.float16),
        "encoder/layer_0/self_attention/linear_0/bias": rng.standard_normal(6).astype(np.float32),
        "decoder/embeddings/weight": rng.standard_normal((5, 2)).astype(np.float16),
        "decoder/alignment_layer": np.array(3, dtype=np.int16),
        "decoder/activation": np.array(1, dtype=np.int8),
    }


def test_round_trip_with_aliases_and_split_parts(tmp_path):
    variables = tiny_variables()
    path = tmp_path / "model.bin"
    write_ct2(path, "WhisperSpec", 3, variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    model = read_ct2(path)
    assert (model.spec, model.revision) == ("WhisperSpec", 3)
    assert list(model.variables) == list(variables)
    for name, value in variables.items():
        assert model.variables[name].dtype == value.dtype
        np.testing.assert_array_equal(model.variables[name], value)
    np.testing.assert_array_equal(model.get("decoder/projection/weight"), variables["decoder/embeddings/weight"])
    # Shipped in two parts, like the PyPI packages: read them as one file.
    raw = path.read_bytes()
    (tmp_path / "a").write_bytes(raw[:37])
    (tmp_path / "b").write_bytes(raw[37:])
    assert list(read_ct2([tmp_path / "a", tmp_path / "b"]).variables) == list(variables)


def test_truncated_or_foreign_files_are_refused(tmp_path):
    path = tmp_path / "model.bin"
    write_ct2(path, "WhisperSpec", 3, tiny_variables(), {})
    (tmp_path / "cut.bin").write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ModelError, match="truncated CTranslate2 file"):
        read_ct2(tmp_path / "cut.bin")
    (tmp_path / "v5.bin").write_bytes(b"\x05\x00\x00\x00" + path.read_bytes()[4:])
    with pytest.raises(ModelError, match="binary version 5"):
        read_ct2(tmp_path / "v5.bin")
    with pytest.raises(ModelError, match="cannot read CTranslate2 model"):
        read_ct2(tmp_path / "missing.bin")
