"""Builders of tiny data sets and a tiny BERT, shared by the tests (no downloads, a few KB each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}

INTENTS = {
    "food": [
        "i am hungry order a pizza",
        "find a good restaurant for dinner",
        "order some sushi for lunch",
        "where can i eat a burger",
        "book a table at the italian restaurant",
        "i want pasta for dinner tonight",
        "order pizza with extra cheese",
        "recommend a cheap place to eat lunch",
        "deliver noodles to my home",
        "what restaurant serves good sushi",
    ],
    "music": [
        "play some jazz music",
        "play my favourite song",
        "skip to the next song",
        "turn up the music volume",
        "play the new album by that band",
        "shuffle my rock playlist",
        "put on some relaxing piano music",
        "play songs by the beatles",
        "stop the music please",
        "add this song to my playlist",
    ],
    "weather": [
        "will it rain tomorrow",
        "what is the weather forecast today",
        "is it sunny outside right now",
        "how cold will it be tonight",
        "will there be snow this weekend",
        "do i need an umbrella today",
        "what is the temperature outside",
        "is a storm coming this afternoon",
        "how windy is it at the beach",
        "forecast for rain on saturday",
    ],
}

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary() -> list[str]:
    words = sorted({w for sentences in INTENTS.values() for s in sentences for w in s.split()})
    extra = ["hello", "world", "check", "short", "somewhat", "longer", "sentence", "works", "padding", "a"]
    return list(dict.fromkeys(SPECIAL_TOKENS + words + extra))


def make_tiny_bert(directory: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Save a randomly initialised 2-layer BERT and its WordPiece tokenizer into `directory`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    words = vocabulary()
    # transformers 5: the (fast) BERT tokenizer takes the WordPiece vocabulary as `vocab`.
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(words)}, do_lower_case=True)
    assert len(tokenizer) == len(words), "tiny tokenizer lost its vocabulary"
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def colour_image(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 16) -> Image.Image:
    noise = rng.integers(-20, 21, size=(size, size, 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def write_colour_images(
    root: Path,
    layout: str = "split",
    per_class: int = 8,
    val: int = 3,
    test: int = 3,
    classes: dict[str, tuple[int, int, int]] | None = None,
    seed: int = 0,
) -> Path:
    """Write 16x16 PNG squares, one colour per class, as `<split>/<class>/` or `<class>/` folders."""
    rng = np.random.default_rng(seed)
    classes = classes or COLOURS
    root = Path(root)
    if layout == "split":
        plan = {"train": per_class, "val": val, "test": test}
        for split, count in plan.items():
            for name, colour in classes.items():
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    colour_image(colour, rng).save(folder / f"{name}_{i}.png")
    elif layout == "flat":
        for name, colour in classes.items():
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                colour_image(colour, rng).save(folder / f"{name}_{i}.png")
    else:
        raise ValueError(layout)
    return root


def intent_rows(indices: range | list[int]) -> list[dict[str, str]]:
    return [{"text": INTENTS[label][i], "label": label} for label in INTENTS for i in indices]


def write_intent_tables(root: Path, fmt: str = "csv") -> Path:
    """train (6 per class) / val (2) / test (2) tables of the three intents."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, index in (("train", range(0, 6)), ("val", range(6, 8)), ("test", range(8, 10))):
        write_table(root / f"{split}.{fmt}", intent_rows(index))
    return root


def write_table(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        raise ValueError(suffix)
    return path


def write_npz(
    path: Path, n_train: int = 12, n_val: int = 6, n_test: int = 6, seed: int = 0, label_shape: str = "column"
) -> Path:
    """MedMNIST-style archive: (N, 28, 28) uint8 grey images, labels (N, 1); class = bright or dark."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        labels = np.arange(n) % 2
        base = np.where(labels[:, None, None] == 1, 200, 40)
        images = np.clip(base + rng.integers(-20, 21, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1) if label_shape == "column" else labels
    np.savez(path, **arrays)
    return path


def write_corrupt(path: Path, size: int = 200, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


TONES = {"high": 1800.0, "low": 300.0, "mid": 800.0}


def tone_clip(hz: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """A short noisy tone of random length (0.3-0.6 s): classes differ by pitch, clips by length."""
    seconds = rng.uniform(0.3, 0.6)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * hz * t + rng.uniform(0, np.pi)) + 0.05 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def write_tone_clips(root: Path, per_split: dict[str, int] | None = None, seed: int = 0) -> Path:
    """`<split>/<tone>/*.wav` at 16 kHz: three pitches, 6 train / 2 val / 2 test clips each by default."""
    import soundfile

    rng = np.random.default_rng(seed)
    for split, count in (per_split or {"train": 6, "val": 2, "test": 2}).items():
        for name, hz in TONES.items():
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                soundfile.write(folder / f"{name}_{i}.wav", tone_clip(hz, rng), 16000)
    return Path(root)


def tiny_speech_encoder(family: str):
    """(encoder, feature extractor) of a 2-layer, 32-wide random speech model of the given family."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    if family == "whisper":
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = WhisperConfig(
            num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=64,
            pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2, suppress_tokens=[],
            begin_suppress_tokens=[],
        )  # fmt: skip
        return WhisperEncoder(config), WhisperFeatureExtractor(feature_size=16)
    small = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, vocab_size=32,
    )  # fmt: skip
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True)
    if family == "wav2vec2":
        return Wav2Vec2Model(Wav2Vec2Config(**small)), extractor
    if family == "hubert":
        return HubertModel(HubertConfig(**small)), extractor
    raise ValueError(family)


def make_tiny_ctc(directory: Path, family: str = "wav2vec2") -> Path:
    """A saved 2-layer, 32-wide random wav2vec2 (or HuBERT) CTC model with a capital-letter vocabulary
    (as facebook/wav2vec2-base-960h writes), its feature extractor and tokenizer."""
    import string

    import torch
    from transformers import (
        HubertConfig,
        HubertForCTC,
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "'": 5}
    vocab.update({c: 6 + i for i, c in enumerate(string.ascii_uppercase)})
    (directory / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True)
    small = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, vocab_size=len(vocab), pad_token_id=0,
    )  # fmt: skip
    config_cls, model_cls = (Wav2Vec2Config, Wav2Vec2ForCTC) if family == "wav2vec2" else (HubertConfig, HubertForCTC)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = model_cls(config_cls(**small))
    model.save_pretrained(directory)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def tiny_whisper_transcriber():
    """(WhisperForConditionalGeneration, WhisperProcessor): 2+2 layers, 32 wide, random, with the real
    Whisper tokenizer and generation settings of the packaged whisper-base (so prompts and decoding are
    Whisper's own)."""
    import json

    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from transferopt.models.whisper_ct2 import (
        generation_config,
        load_packaged_processor,
        packaged_whisper_base_files,
        token_config,
    )

    files = packaged_whisper_base_files()
    tokenizer_json = json.loads(files["tokenizer"].read_text(encoding="utf-8"))
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_target_positions=64, **token_config(tokenizer_json),
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config(json.loads(files["config"].read_text()), tokenizer_json)
    return model, load_packaged_processor(num_mel_bins=80)


def write_transcribed_tones(root: Path, seed: int = 0) -> Path:
    """A transcription data set: each clip a tone whose pitch stands for the word in its transcript."""
    import soundfile

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 8), ("val", 3), ("test", 3)):
        rows = []
        for i in range(count):
            word = list(TONES)[i % len(TONES)]
            path = root / "wav" / f"{split}{i}.wav"
            soundfile.write(path, tone_clip(TONES[word], rng), 16000)
            rows.append({"audio": f"wav/{path.name}", "text": f"a {word} tone"})
        write_table(root / f"{split}.csv", rows)
    return root
