"""Tiny models and images made on the spot, for tests and benchmarks (there is no Hub here).

Models are saved with `save_pretrained` and loaded by path through the same code users run.
"""

from __future__ import annotations

import io
import json
import shutil
import string
from pathlib import Path

import numpy as np
from PIL import Image

_CHARS = string.ascii_lowercase + string.digits + ".,'-!?"


def write_clip_tokenizer(folder: Path, *, specials_last: bool = False) -> object:
    """A character-level CLIP tokenizer: a valid vocab.json and an empty merges.txt. With `specials_last` the
    start and end tokens take the last ids, as in CLIP's own vocabulary (OWL models take a query whose first
    id is 0 for padding, and pool at the highest id)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {} if specials_last else {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _CHARS:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    if specials_last:
        vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")


def save_clip(folder: Path, *, config=None, model=None, seed: int = 0) -> Path:
    """A CLIP with random weights of the shape `config` (tiny by default), or the trained `model`,
    saved with its tokenizer and image processor."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder / "tokenizer-source")
    if model is None:
        torch.manual_seed(seed)
        model = CLIPModel(config or clip_config())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    shutil.rmtree(folder / "tokenizer-source")
    size = model.config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def clip_config(
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    vision_heads: int = 2,
    vision_intermediate: int | None = None,
    text_hidden: int = 32,
    text_layers: int = 2,
    text_heads: int = 2,
    projection_dim: int = 16,
):
    from transformers import CLIPConfig

    vocab_size = 2 + 2 * len(_CHARS)
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=text_hidden,
            intermediate_size=4 * text_hidden,
            num_hidden_layers=text_layers,
            num_attention_heads=text_heads,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=vision_hidden,
            intermediate_size=vision_intermediate or 4 * vision_hidden,
            num_hidden_layers=vision_layers,
            num_attention_heads=vision_heads,
            image_size=image_size,
            patch_size=patch_size,
        ),
        projection_dim=projection_dim,
    )


# The real architectures, for benchmarks: compute cost depends on the shape, not the weights.
VIT_B32 = dict(
    image_size=224,
    patch_size=32,
    vision_hidden=768,
    vision_layers=12,
    vision_heads=12,
    text_hidden=512,
    text_layers=12,
    text_heads=8,
    projection_dim=512,
)
VIT_L14 = dict(
    image_size=224,
    patch_size=14,
    vision_hidden=1024,
    vision_layers=24,
    vision_heads=16,
    text_hidden=768,
    text_layers=12,
    text_heads=12,
    projection_dim=768,
)


def save_siglip(folder: Path, *, image_size: int = 32, seed: int = 0) -> Path:
    """A tiny SigLIP with a sentencepiece tokenizer trained in a second on a few sentences."""
    import sentencepiece
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sentences = [
        "This is a photo of a cat.",
        "This is a photo of a dog.",
        "a red circle",
        "a blue square",
        "screenshot of a newspaper article",
        "a picture of a person",
        "memes and computer-generated images",
        "a green triangle on a white background",
        "soldiers, tanks and damaged buildings",
    ] * 10
    model_file = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model_file,
        vocab_size=64,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "spiece-source.model").write_bytes(model_file.getvalue())
    tokenizer = SiglipTokenizer(str(folder / "spiece-source.model"))
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ),
    )
    SiglipModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    (folder / "spiece-source.model").unlink()
    return folder


def noise_image(seed: int, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A random image, different for each seed."""
    rng = np.random.default_rng(seed)
    channels = len(mode) if mode in ("RGB", "RGBA", "CMYK", "LA") else 1
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode if mode != "P" else "L")


def image_bytes(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def save_owlv2(folder: Path, *, image_size: int = 128, seed: int = 0) -> Path:
    """A tiny random OWLv2 (hidden size 64, image size 128, patch 16) with a CLIP tokenizer and its processor."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder / "tokenizer-source", specials_last=True)
    vocab_size = 2 + 2 * len(_CHARS)
    config = Owlv2Config(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=64, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        ),
        vision_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=16,
        ),
        projection_dim=64,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    with torch.no_grad():  # the class head's default init saturates every score at 1: spread them out
        for layer in (model.class_head.dense0, model.class_head.logit_shift, model.class_head.logit_scale):
            layer.weight.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    processor = Owlv2ImageProcessor(size={"height": image_size, "width": image_size})
    Owlv2Processor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    shutil.rmtree(folder / "tokenizer-source")
    return folder


def write_bert_tokenizer(folder: Path) -> object:
    """A character-level BERT word-piece tokenizer: every lower-case word splits into known pieces."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_CHARS, *(f"##{char}" for char in _CHARS)]
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return BertTokenizer(str(folder / "vocab.txt"))


def save_grounding_dino(folder: Path, *, seed: int = 0) -> Path:
    """A tiny random Grounding DINO (a two-stage Swin backbone, a two-layer BERT) with its processor."""
    import torch
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    folder = Path(folder)
    tokenizer = write_bert_tokenizer(folder / "tokenizer-source")
    config = GroundingDinoConfig(
        backbone_config=dict(
            model_type="swin", image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 1],
            window_size=4, out_features=["stage1", "stage2"],
        ),
        text_config=dict(
            model_type="bert", vocab_size=len(tokenizer.vocab), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
        ),
        d_model=32, num_queries=20, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32,
    )  # fmt: skip
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
    processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    shutil.rmtree(folder / "tokenizer-source")
    return folder
