"""Text encoders from transformers (BERT-like), run embedding layer then one encoder layer at a time."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.types import TextInputs
from ..errors import ModelError
from .base import Backbone, State


def locate_layers(net: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """Find the embedding module and the list of encoder layers of a BERT-like encoder."""
    embeddings = getattr(net, "embeddings", None)
    encoder = getattr(net, "encoder", None) or getattr(net, "transformer", None)
    layers = getattr(encoder, "layer", None) if encoder is not None else None
    if embeddings is None or not isinstance(layers, nn.ModuleList):
        raise ModelError(f"unsupported text architecture {type(net).__name__}: expected .embeddings and .encoder.layer")
    return embeddings, layers


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, length) 0/1 mask -> (batch, 1, 1, length) additive mask understood by eager and SDPA."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def trim_padding(state: State) -> State:
    """Drop trailing positions that are padding for every example in the batch."""
    mask = state.get("attention_mask", state.get("mask"))
    if mask is None or mask.shape[1] == 0:
        return state
    length = max(int(mask.sum(dim=1).max()), 1)
    return {k: v[:, :length] if v.dim() >= 2 else v for k, v in state.items()}


class HFTextBackbone(Backbone):
    kind = "hf-text"
    modality = "text"

    def __init__(
        self,
        name: str,
        net: nn.Module,
        tokenizer: Any,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int = 128,
    ) -> None:
        super().__init__(name)
        if pooling not in ("mean", "cls"):
            raise ModelError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.net = net
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        # Plain attributes, not registered submodules: they alias parts of `net`, and registering them
        # twice would duplicate every tensor in the state dict.
        self.__dict__["embeddings"], self.__dict__["layers"] = locate_layers(net)
        self.check_layer_by_layer_matches_model()

    @property
    def group_names(self) -> list[str]:
        return ["embeddings", *[f"layer.{i}" for i in range(len(self.layers))]]

    def group_modules(self) -> list[nn.Module]:
        return [self.embeddings, *self.layers]

    @property
    def num_features(self) -> int:
        return int(self.net.config.hidden_size)

    def set_max_length(self, max_length: int) -> None:
        self.max_length = int(max_length)

    # -- preprocessing ------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> State:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def prepare(self, inputs: TextInputs, index: Sequence[int], train: bool = False) -> State:
        return self.tokenize([inputs.texts[int(i)] for i in index])

    def inference_order(self, inputs: TextInputs) -> np.ndarray:
        # Batches pad to their longest text: sorted by length, a batch of short queries stays short
        # (sentence-transformers' encode does the same). Characters stand in for tokens.
        return np.argsort([len(text) for text in inputs.texts], kind="stable")

    def preprocessing_signature(self, train: bool = False) -> str:
        return json.dumps(
            {
                "tokenizer": type(self.tokenizer).__name__,
                "vocab": len(self.tokenizer),
                "name": getattr(self.tokenizer, "name_or_path", ""),
                "max_length": self.max_length,
            },
            sort_keys=True,
        )

    def state_lengths(self, state: State) -> np.ndarray | None:
        mask = state.get("attention_mask", state.get("mask"))
        return None if mask is None else mask.sum(dim=1).numpy()

    # -- computation --------------------------------------------------------------------------
    def run_groups(self, state: State, start: int, stop: int) -> State:
        state = trim_padding(state)
        if start == 0 and stop > 0:
            kwargs = {"input_ids": state["input_ids"]}
            if "token_type_ids" in state:
                kwargs["token_type_ids"] = state["token_type_ids"]
            state = {"hidden": self.embeddings(**kwargs), "mask": state["attention_mask"]}
            start = 1
        if start >= stop:
            return state
        hidden, mask = state["hidden"], state["mask"]
        extended = additive_mask(mask, hidden.dtype)
        for layer in self.layers[start - 1 : stop - 1]:
            out = layer(hidden, attention_mask=extended)
            hidden = out[0] if isinstance(out, tuple) else out
        return {"hidden": hidden, "mask": mask}

    def pool(self, state: State) -> torch.Tensor:
        hidden, mask = state["hidden"], state["mask"].to(state["hidden"].dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        if not self.normalize:
            return pooled
        # Unit-norm embeddings (the sentence-transformers recipe) scaled by sqrt(width): a new head on
        # unit vectors produces tiny logits and learns slowly; the scale keeps entries near unit variance
        # and changes nothing for cosine-based scores.
        return nn.functional.normalize(pooled, dim=-1) * math.sqrt(pooled.shape[-1])

    def check_layer_by_layer_matches_model(self) -> None:
        """Running our groups must equal the library's own forward, else layer-wise tricks are wrong."""
        was_training = self.net.training
        self.net.eval()
        state = self.tokenize(["a short check", "a somewhat longer sentence to check padding works"])
        with torch.no_grad():
            ours = self.run_groups(state, 0, self.num_groups)["hidden"]
            reference = self.net(**state).last_hidden_state
        self.net.train(was_training)
        valid = state["attention_mask"].bool()
        if not torch.allclose(ours[valid], reference[valid], atol=1e-4, rtol=1e-3):
            raise ModelError(f"{self.name}: layer-by-layer run does not match the model; architecture unsupported")

    # -- saving -------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
        }

    def export(self, directory: Path) -> None:
        self.net.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def default_lora_targets(self) -> list[str]:
        names = {n.rsplit(".", 1)[-1] for n, m in self.net.named_modules() if isinstance(m, nn.Linear)}
        for pair in (("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"), ("q", "v")):
            if set(pair) <= names:
                return list(pair)
        return sorted(names)
