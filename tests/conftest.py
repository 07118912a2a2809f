"""Shared fixtures: offline environment, a per-session feature cache, tiny models and tiny data sets."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub/transformers (they read these at import time).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TRANSFEROPT_PROGRESS"] = "0"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Single-threaded maths. On a 2-core machine whose cores are busy (e.g. a training run next to the tests),
# OpenMP/OpenBLAS threads spin-waiting on each other made these tiny models hundreds of times slower
# (measured: 0.6 s instead of 1 ms per test_efficientnet forward; 16 s instead of 0.04 s for scikit-learn's
# L-BFGS linear probe on 50x1280 features).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests import helpers  # noqa: E402
from transferopt.models import ALIASES, ModelAlias, register_alias  # noqa: E402

torch.set_num_threads(1)

# Tiny timm models, built with fixed random weights so every build (and `load`'s rebuild) is identical.
TINY_IMAGE_MODELS = {"tiny-effnet": "test_efficientnet", "tiny-resnet": "test_resnet", "tiny-vit": "test_vit"}


def _build_tiny(alias: str, arch: str):
    def build(pretrained: bool):
        import timm

        from transferopt.models.timm_backbone import TimmBackbone

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            net = timm.create_model(arch, pretrained=False)
        return TimmBackbone(alias, net, arch=arch)

    return build


for _alias, _arch in TINY_IMAGE_MODELS.items():
    if _alias not in ALIASES:
        register_alias(
            _alias,
            ModelAlias(
                kind="timm",
                modality="image",
                description=f"tiny random {_arch} (tests)",
                build=_build_tiny(_alias, _arch),
                weights_present=lambda: True,
            ),
        )


# Tiny random speech encoders (a Whisper encoder, wav2vec2, HuBERT) with their feature extractors.
TINY_AUDIO_MODELS = ("tiny-whisper", "tiny-wav2vec2", "tiny-hubert")


def _build_tiny_audio(alias: str):
    def build(pretrained: bool):
        from transferopt.models.hf_audio import HFAudioBackbone

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            net, extractor = helpers.tiny_speech_encoder(alias.removeprefix("tiny-"))
        net.eval()
        return HFAudioBackbone(alias, net, extractor)

    return build


for _alias in TINY_AUDIO_MODELS:
    if _alias not in ALIASES:
        register_alias(
            _alias,
            ModelAlias(
                kind="hf-audio",
                modality="audio",
                description=f"tiny random {_alias.removeprefix('tiny-')} encoder (tests)",
                build=_build_tiny_audio(_alias),
                weights_present=lambda: True,
            ),
        )


def _build_tiny_whisper_transcriber(pretrained: bool):
    from transferopt.models.whisper_asr import WhisperTranscriber

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        net, processor = helpers.tiny_whisper_transcriber()
    net.eval()
    return WhisperTranscriber("tiny-whisper-asr", net, processor)


if "tiny-whisper-asr" not in ALIASES:
    register_alias(
        "tiny-whisper-asr",
        ModelAlias(
            kind="whisper-asr",
            modality="audio",
            description="tiny random Whisper encoder-decoder with Whisper's tokenizer (tests)",
            build=lambda pretrained: _build_tiny_whisper_transcriber(pretrained).encoder,
            weights_present=lambda: True,
            build_transcriber=_build_tiny_whisper_transcriber,
        ),
    )


def pytest_configure(config):
    # peft calls a transformers API that transformers 5 deprecates; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_dir(tmp_path_factory):
    """Every FeatureCache() without a directory writes into a per-session temporary folder."""
    root = tmp_path_factory.mktemp("transferopt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFEROPT_CACHE", str(root))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield root


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A saved 2-layer, 32-wide BERT with a WordPiece tokenizer over the test vocabulary."""
    return helpers.make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_name(tiny_bert_dir) -> str:
    return f"hf/{tiny_bert_dir}"


@pytest.fixture(scope="session")
def colour_folder(tmp_path_factory) -> Path:
    """`<split>/<class>/*.png`: three colours, 8 train / 3 val / 3 test images each."""
    root = tmp_path_factory.mktemp("colours-split")
    helpers.write_colour_images(root, layout="split")
    return root


@pytest.fixture(scope="session")
def colour_flat(tmp_path_factory) -> Path:
    """`<class>/*.png`: three colours, 10 images each (no split folders)."""
    root = tmp_path_factory.mktemp("colours-flat")
    helpers.write_colour_images(root, layout="flat", per_class=10)
    return root


@pytest.fixture(scope="session")
def intents_dir(tmp_path_factory) -> Path:
    """A folder with train.csv / val.csv / test.csv of three intents."""
    root = tmp_path_factory.mktemp("intents")
    helpers.write_intent_tables(root)
    return root


@pytest.fixture(scope="session")
def tones_dir(tmp_path_factory) -> Path:
    """`<split>/<pitch>/*.wav`: three tone classes, 6 train / 2 val / 2 test clips each."""
    return helpers.write_tone_clips(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def spoken_dir(tmp_path_factory) -> Path:
    """train/val/test.csv of audio paths and transcripts (tones standing in for words): 8/3/3 rows."""
    return helpers.write_transcribed_tones(tmp_path_factory.mktemp("spoken"))
