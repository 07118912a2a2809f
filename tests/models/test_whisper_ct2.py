"""Whisper from CTranslate2 format: a tiny random Whisper is written the way CTranslate2 lays it out
(stacked q/k/v, gamma/beta, a projection alias) and must load back into transformers unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferopt.errors import ModelError
from transferopt.models.ct2_format import write_ct2
from transferopt.models.whisper_ct2 import whisper_from_ct2


def tiny_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=60, num_mel_bins=8, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_source_positions=20,
        max_target_positions=12, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(config).eval()


def as_ct2(model) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """CTranslate2's layout of a transformers Whisper (what its converter writes), in float16."""
    s = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def put(name, value):
        out[name] = np.asarray(value, dtype=np.float16)

    def attention(src, dst, cross):
        zeros = np.zeros_like(s[f"{src}.q_proj.bias"])
        if cross:
            put(f"{dst}/linear_0/weight", s[f"{src}.q_proj.weight"])
            put(f"{dst}/linear_0/bias", s[f"{src}.q_proj.bias"])
            put(f"{dst}/linear_1/weight", np.concatenate([s[f"{src}.k_proj.weight"], s[f"{src}.v_proj.weight"]]))
            put(f"{dst}/linear_1/bias", np.concatenate([zeros, s[f"{src}.v_proj.bias"]]))
            last = "linear_2"
        else:
            weights = [s[f"{src}.{p}_proj.weight"] for p in "qkv"]
            put(f"{dst}/linear_0/weight", np.concatenate(weights))
            put(f"{dst}/linear_0/bias", np.concatenate([s[f"{src}.q_proj.bias"], zeros, s[f"{src}.v_proj.bias"]]))
            last = "linear_1"
        put(f"{dst}/{last}/weight", s[f"{src}.out_proj.weight"])
        put(f"{dst}/{last}/bias", s[f"{src}.out_proj.bias"])

    def norm(src, dst):
        put(f"{dst}/gamma", s[f"{src}.weight"])
        put(f"{dst}/beta", s[f"{src}.bias"])

    config = model.config
    for side, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(layers):
            src, dst = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            attention(f"{src}.self_attn", f"{dst}/self_attention", cross=False)
            norm(f"{src}.self_attn_layer_norm", f"{dst}/self_attention/layer_norm")
            if side == "decoder":
                attention(f"{src}.encoder_attn", f"{dst}/attention", cross=True)
                norm(f"{src}.encoder_attn_layer_norm", f"{dst}/attention/layer_norm")
            for j, fc in enumerate(("fc1", "fc2")):
                put(f"{dst}/ffn/linear_{j}/weight", s[f"{src}.{fc}.weight"])
                put(f"{dst}/ffn/linear_{j}/bias", s[f"{src}.{fc}.bias"])
            norm(f"{src}.final_layer_norm", f"{dst}/ffn/layer_norm")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        put(f"{side}/position_encodings/encodings", s[f"model.{side}.embed_positions.weight"])
        out[f"{side}/num_heads"] = np.array(2, dtype=np.int16)
    for conv in ("conv1", "conv2"):
        put(f"encoder/{conv}/weight", s[f"model.encoder.{conv}.weight"])
        put(f"encoder/{conv}/bias", s[f"model.encoder.{conv}.bias"])
    put("decoder/embeddings/weight", s["model.decoder.embed_tokens.weight"])
    return out, {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_tiny_whisper_round_trips_through_the_ctranslate2_layout(tmp_path):
    original = tiny_whisper()
    # The file holds float16: compare with the original rounded the same way.
    with torch.no_grad():
        for parameter in original.parameters():
            parameter.copy_(parameter.half().float())
    variables, aliases = as_ct2(original)
    raw = tmp_path / "model.bin"
    write_ct2(raw, "WhisperSpec", 3, variables, aliases)
    data = raw.read_bytes()
    (tmp_path / "model.bin.part1").write_bytes(data[: len(data) // 2])
    (tmp_path / "model.bin.part2").write_bytes(data[len(data) // 2 :])

    tokens_config = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1}
    loaded = whisper_from_ct2([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"], tokens_config)
    assert loaded.config.encoder_layers == 2 and loaded.config.d_model == 16 and loaded.config.num_mel_bins == 8
    features = torch.randn(1, 8, 40)  # 40 frames -> 20 positions after the stride-2 convolution
    tokens = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        expected = original(input_features=features, decoder_input_ids=tokens).logits
        actual = loaded(input_features=features, decoder_input_ids=tokens).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert loaded.proj_out.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr()  # tied


def test_a_non_whisper_file_is_refused(tmp_path):
    write_ct2(tmp_path / "m.bin", "TransformerSpec", 1, {"x": np.zeros(2, np.float32)}, {})
    with pytest.raises(ModelError, match="expected a CTranslate2 Whisper model"):
        whisper_from_ct2(tmp_path / "m.bin")
