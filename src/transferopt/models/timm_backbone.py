"""Image backbones from timm, split into layer groups that can run one after another."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data.types import ImageInputs
from .base import Backbone, State

# Input side used when the user's images are much smaller than the model's native size: upsampling
# 28 px X-rays to 224 px costs 16x the compute for no new information. Twice the source side (at least
# 64 px) is enough: measured on pneumoniamnist (28 px, efficientnet_lite0, default settings), 64 px
# against 128 px (the earlier 4x rule): linear probe test AUC 0.9288 against 0.9269, LoRA 0.9696 against
# 0.9674, for about half the compute (LoRA: 48 s an epoch at 64 px; 45 s at 128 px on a day when the
# machine ran about 2.4x faster).
AUTO_SIZE_FACTOR = 2
MIN_AUTO_SIZE = 64
# Few training images pay for a larger side: their compute is small either way, and a probe on a few
# examples per class reads finer features better. Measured on pneumoniamnist at 10 shots per class (3
# seeds, efficientnet_lite0 linear probe): test AUC 0.858 / 0.862 / 0.881 at 128 px against 0.777 / 0.855
# / 0.847 at 64 px, while on all 3,882 training images the two sizes tied (above). Below this many
# training images an epoch at four times the side costs no more than one at twice the side does on
# pneumoniamnist's full training set.
FEW_IMAGES = 1000
FEW_IMAGES_SIZE_FACTOR = 4


def split_into_groups(net: nn.Module) -> tuple[list[str], list[list[str]], bool]:
    """Return (group names, submodule paths per group, sequential?) for the timm families we can run
    stage by stage.

    Group boundaries follow each model's own `group_matcher` (stem, each block stage, final conv).
    Families outside the list are one group: every strategy still works, only partial caching does not.
    Paths, not module objects, are kept: adapters (peft) replace submodules such as `conv_head` in place.
    """

    def has(*names: str) -> bool:
        return all(hasattr(net, n) for n in names)

    if has("conv_stem", "bn1", "blocks", "conv_head", "bn2"):  # EfficientNet / MobileNet
        stages = [f"blocks.{i}" for i in range(len(net.blocks))]
        return (
            ["stem", *stages, "head_conv"],
            [["conv_stem", "bn1"], *[[s] for s in stages], ["conv_head", "bn2"]],
            True,
        )
    if has("conv1", "bn1", "act1", "maxpool", "layer1", "layer4"):  # ResNet
        layers = [f"layer{i}" for i in range(1, 5)]
        return ["stem", *layers], [["conv1", "bn1", "act1", "maxpool"], *[[name] for name in layers]], True
    if has("stem", "stages", "norm_pre"):  # ConvNeXt and similar
        stages = [f"stages.{i}" for i in range(len(net.stages))]
        return ["stem", *stages, "norm_pre"], [["stem"], *[[s] for s in stages], ["norm_pre"]], True
    return ["features"], [[""]], False


class TimmBackbone(Backbone):
    kind = "timm"
    modality = "image"

    def __init__(self, name: str, net: nn.Module, arch: str, data_config: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        import timm.data

        self.arch = arch
        # The source (e.g. ImageNet) classifier is kept aside for transferability scores such as LEEP;
        # it is not part of the trainable network.
        classifier = net.get_classifier()
        self.__dict__["source_head"] = classifier if isinstance(classifier, nn.Linear) else None
        net.reset_classifier(0)
        self.net = net
        self.data_config = dict(data_config or timm.data.resolve_data_config({}, model=net))
        self.data_config["input_size"] = tuple(self.data_config["input_size"])
        self.data_config.setdefault("hflip", 0.5)  # augmented training flips half the images (see set_flip)
        self._names, self._paths, self.sequential = split_into_groups(net)
        self._transforms: dict[bool, Callable] = {}

    # -- structure ----------------------------------------------------------------------------
    @property
    def group_names(self) -> list[str]:
        return list(self._names)

    def group_modules(self) -> list[nn.Module]:
        return [nn.ModuleList(self.net.get_submodule(p) for p in paths) for paths in self._paths]

    @property
    def num_features(self) -> int:
        return int(self.net.num_features)

    def cache_boundaries(self) -> list[int]:
        return list(range(self.num_groups + 1)) if self.sequential else [0, self.num_groups]

    # -- preprocessing ------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    def set_image_size(self, size: int | None, source_side: int | None = None, n_images: int | None = None) -> None:
        """Use `size`, or pick one from the source images' side (and how many training images there are)
        when they are much smaller."""
        native = self.image_size
        few = n_images is not None and n_images < FEW_IMAGES
        factor = FEW_IMAGES_SIZE_FACTOR if few else AUTO_SIZE_FACTOR
        if size is None and source_side is not None and factor * source_side < native:
            size = max(MIN_AUTO_SIZE, 32 * round(factor * source_side / 32))
        if size is None or size == native:
            return
        self.data_config["input_size"] = (3, int(size), int(size))
        if size < native:
            # Small source images: keep the whole picture rather than centre-cropping part of it away.
            self.data_config["crop_pct"] = 1.0
        self._transforms.clear()

    def set_flip(self, enabled: bool) -> None:
        """Whether augmented training flips images left-right (not label-preserving for digits, text or
        left-right anatomy). Kept in the data config, so a saved model remembers it."""
        self.data_config["hflip"] = 0.5 if enabled else 0.0
        self._transforms.clear()

    def transform(self, train: bool) -> Callable:
        if train not in self._transforms:
            import timm.data

            cfg = self.data_config
            options = dict(
                input_size=cfg["input_size"],
                interpolation=cfg.get("interpolation", "bilinear"),
                mean=cfg["mean"],
                std=cfg["std"],
            )
            if train:
                options.update(is_training=True, scale=(0.5, 1.0), hflip=cfg["hflip"], color_jitter=0.0)
            else:
                options.update(crop_pct=cfg.get("crop_pct", 0.875), crop_mode=cfg.get("crop_mode", "center"))
            self._transforms[train] = timm.data.create_transform(**options)
        return self._transforms[train]

    def prepare(self, inputs: ImageInputs, index: Sequence[int], train: bool = False) -> State:
        transform = self.transform(train)
        return {"x": torch.stack([transform(inputs.load(int(i))) for i in index])}

    def preprocessing_signature(self, train: bool = False) -> str:
        # Only training transforms flip: evaluation inputs (and their cached states) do not depend on it.
        config = self.data_config if train else {k: v for k, v in self.data_config.items() if k != "hflip"}
        return json.dumps({"data_config": config, "train": train}, sort_keys=True, default=str)

    @property
    def deterministic_preprocessing(self) -> bool:
        return True

    # -- computation --------------------------------------------------------------------------
    def run_groups(self, state: State, start: int, stop: int) -> State:
        x = state["x"]
        if not self.sequential:
            return {"x": self.net.forward_features(x) if start < stop else x}
        for paths in self._paths[start:stop]:
            for path in paths:
                x = self.net.get_submodule(path)(x)
        return {"x": x}

    def pool(self, state: State) -> torch.Tensor:
        return self.net.forward_head(state["x"], pre_logits=True)

    # -- saving -------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "arch": self.arch, "data_config": self.data_config}

    def default_lora_targets(self) -> list[str]:
        # Pointwise (1x1) convolutions and linear layers carry most parameters in timm CNNs and ViTs.
        names = {n.rsplit(".", 1)[-1] for n, m in self.net.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}
        preferred = [
            t for t in ("conv_pw", "conv_pwl", "conv1", "conv2", "conv3", "qkv", "proj", "fc1", "fc2") if t in names
        ]
        return preferred or sorted(names)
