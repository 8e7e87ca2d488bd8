"""Tiny image-text-to-text models (LLaVA-shaped) made on the spot, saved with `save_pretrained` and a
byte-level tokenizer, and loaded by path through the same code users run (locally or by `transformers serve`).

`save_llava(folder)` has random weights: it says garbage, which proves the plumbing (requests, tokens,
retries, error rows). `save_llava(folder, says=...)` sets its weights by hand so that it always says one
text (written as one token of its vocabulary) and then stops: a real model through a real server that
gives a known answer, for the path where the answer fits.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE, PATCH = 32, 8
HIDDEN = 32
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]


def byte_tokenizer(phrases: tuple[str, ...] = ()):
    """A byte-level BPE tokenizer without merges (every byte a token), plus special tokens and `phrases`
    as whole tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: index for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS})
    if phrases:
        tokenizer.add_tokens(list(phrases))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _config(tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=HIDDEN,
    )  # fmt: skip
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip


def _say(model, tokenizer, says: str) -> None:
    """Weights by hand: attention and MLP silent, so each position's logits depend on its own token only;
    after the generation prompt's last token (a newline) comes `says`, after `says` the end."""
    import torch

    newline = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("\n"))[0]
    spoken, end = tokenizer.convert_tokens_to_ids(says), tokenizer.eos_token_id
    language = model.model.language_model
    with torch.no_grad():
        for layer in language.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = language.embed_tokens.weight
        embeddings.normal_(0, 0.02)
        embeddings[newline] = 0
        embeddings[newline, 0] = 1.0
        embeddings[spoken] = 0
        embeddings[spoken, 1] = 1.0
        head = model.lm_head.weight
        head.zero_()
        head[spoken, 0] = 10.0
        head[end, 1] = 10.0


def save_llava(folder: Path, *, says: str | None = None, seed: int = 0) -> Path:
    """A tiny LLaVA with its processor (chat template included); random, or always saying `says`."""
    import torch
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration, LlavaProcessor

    folder = Path(folder)
    tokenizer = byte_tokenizer((says,) if says else ())
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(_config(tokenizer)).eval()
    if says:
        _say(model, tokenizer, says)
    images = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=images, tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_idefics3(folder: Path, *, seed: int = 0) -> Path:
    """A tiny random Idefics3 (SmolVLM's architecture, the local backend's default) with its processor."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    folder = Path(folder)
    tokenizer = byte_tokenizer()
    grid = [f"<row_{row}_col_{col}>" for row in range(1, 4) for col in range(1, 4)]
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [*SPECIALS, "<fake_token_around_image>", "<global-img>", *grid]}
    )
    text = dict(
        model_type="llama", vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = dict(hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=IMAGE_SIZE, patch_size=PATCH)  # fmt: skip
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"))  # fmt: skip
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    images = Idefics3ImageProcessor(
        size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}, do_image_splitting=False
    )
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=CHAT_TEMPLATE)  # fmt: skip
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
