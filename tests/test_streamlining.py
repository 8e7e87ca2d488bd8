"""CLIP's image tower streamlined (QuickGELU folded into SiLU, the last layer for the class token
alone): the same embeddings as the model's own forward pass, less work, and the model's own way
whenever that cannot be shown."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from smart_sorter.pipeline import streamlining
from smart_sorter.pipeline.encoder import DualEncoder
from tests.factories import VIT_B32, clip_config, save_clip


def _pixels(size: int, count: int = 5) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(7))


def _relative_difference(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(found - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def vit_b32(tmp_path_factory):
    """The real ViT-B/32 shape (random weights): 12 layers, 50 tokens, QuickGELU."""
    return save_clip(tmp_path_factory.mktemp("vit-b32"), config=clip_config(**VIT_B32))


@pytest.mark.parametrize("shape", ["tiny", "vit-b32"])
def test_the_streamlined_tower_embeds_as_the_models_own_forward_pass(shape, tiny_clip, vit_b32):
    model, size = (tiny_clip, 32) if shape == "tiny" else (vit_b32, 224)
    streamlined = DualEncoder(str(model), device="cpu", precision="fp32").load()
    own = DualEncoder(str(model), device="cpu", precision="fp32", streamline=False).load()
    # it is really the other computation: SiLU in every MLP
    activations = {type(layer.mlp.activation_fn).__name__ for layer in streamlined.network.vision_model.encoder.layers}
    assert activations == {"SiLU"}
    assert streamlined.streamlined and not own.streamlined
    pixels = _pixels(size)
    assert _relative_difference(streamlined.embed_images(pixels), own.embed_images(pixels)) < 1e-5
    # the text side is untouched
    texts = ["a red circle", "a blue square"]
    assert np.array_equal(streamlined.embed_texts(texts), own.embed_texts(texts))


def test_in_bf16_the_streamlined_tower_stays_as_close_to_fp32_as_the_models_own(vit_b32):
    pixels = _pixels(224, 8)
    reference = DualEncoder(str(vit_b32), device="cpu", precision="fp32", streamline=False).load().embed_images(pixels)

    def cosines(encoder):
        found = encoder.embed_images(pixels)
        return (found * reference).sum(1) / np.linalg.norm(found, axis=1) / np.linalg.norm(reference, axis=1)

    streamlined = cosines(DualEncoder(str(vit_b32), device="cpu", precision="bf16").load())
    own = cosines(DualEncoder(str(vit_b32), device="cpu", precision="bf16", streamline=False).load())
    assert streamlined.min() > 0.9995 and own.min() > 0.9995
    assert abs(streamlined.mean() - own.mean()) < 2e-4


def test_a_tower_not_built_like_clips_keeps_its_own_forward_pass(tiny_siglip):
    encoder = DualEncoder(str(tiny_siglip), device="cpu", precision="fp32").load()
    assert not encoder.streamlined
    pixels = _pixels(32)
    own = encoder.network.get_image_features(pixel_values=pixels)
    own = own if hasattr(own, "shape") else own.pooler_output
    assert np.array_equal(encoder.embed_images(pixels), own.detach().numpy())


def test_when_the_probe_disagrees_the_weights_are_given_back(tiny_clip, monkeypatch):
    """A transformers whose layers compute otherwise: the class-token path would be wrong, so it is not
    used, and the folded weights are unfolded (within rounding)."""
    before = DualEncoder(str(tiny_clip), device="cpu", precision="fp32", streamline=False).load().network
    monkeypatch.setattr(streamlining, "class_token_features", lambda network, pixels: torch.zeros(2, 16))
    encoder = DualEncoder(str(tiny_clip), device="cpu", precision="fp32").load()
    assert not encoder.streamlined
    for mine, theirs in zip(encoder.network.vision_model.encoder.layers, before.vision_model.encoder.layers):
        assert type(mine.mlp.activation_fn).__name__ == "QuickGELUActivation"
        assert torch.allclose(mine.mlp.fc1.weight, theirs.mlp.fc1.weight, rtol=1e-6, atol=0)
        assert torch.allclose(mine.mlp.fc2.weight, theirs.mlp.fc2.weight, rtol=1e-6, atol=0)
    pixels = _pixels(32)
    own = DualEncoder(str(tiny_clip), device="cpu", precision="fp32", streamline=False).load()
    assert _relative_difference(encoder.embed_images(pixels), own.embed_images(pixels)) < 1e-6


def test_a_layer_that_fails_in_the_probe_means_the_models_own_way(tiny_clip, monkeypatch):
    def broken(network, pixels):
        raise TypeError("forward() takes 2 positional arguments but 3 were given")

    monkeypatch.setattr(streamlining, "class_token_features", broken)
    encoder = DualEncoder(str(tiny_clip), device="cpu", precision="fp32").load()
    assert not encoder.streamlined
    assert encoder.embed_images(_pixels(32)).shape == (5, 16)


@pytest.mark.parametrize(("preprocess", "streamlined"), [("fast", True), ("exact", False)])
def test_the_exact_preprocessing_runs_the_models_own_forward_pass(
    tiny_clip, photo_folder, tmp_path, preprocess, streamlined
):
    from smart_sorter.options import SortOptions
    from smart_sorter.runs.sorting import Sorter

    sorter = Sorter(SortOptions(model=str(tiny_clip), preprocess=preprocess, use_cache=False), progress_bar=False)
    result = sorter.run(photo_folder, tmp_path / "out", ["a photo", "a drawing"])
    assert result.status_counts == {"sorted": 6}
    assert sorter.encoder.streamlined is streamlined


def test_an_encoder_handed_in_runs_its_own_pass_for_the_exact_preprocessing(tiny_clip, photo_folder, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    from smart_sorter import sort_images
    from smart_sorter.pipeline.encoder import load_encoder

    encoder = load_encoder(str(tiny_clip), device="cpu", precision="fp32")
    assert encoder.streamlined
    streamlined_batches = []
    original = encoder._streamlined
    encoder._streamlined = lambda pixels: streamlined_batches.append(len(pixels)) or original(pixels)
    sort_images(photo_folder, tmp_path / "exact", ["a photo", "a drawing"], model=str(tiny_clip), encoder=encoder,
                preprocess="exact", progress_bar=False, use_cache=False)  # fmt: skip
    assert streamlined_batches == []
    sort_images(photo_folder, tmp_path / "fast", ["a photo", "a drawing"], model=str(tiny_clip), encoder=encoder,
                progress_bar=False, use_cache=False)  # fmt: skip
    assert sum(streamlined_batches) == 6


def test_a_tower_whose_layers_share_an_mlp_is_not_folded_twice(tiny_clip):
    """Folding a shared fc1 once per layer would scale it twice; a probe through the first and last layers
    alone would not see it in the layers between."""
    from smart_sorter.pipeline.encoder import load_model_parts

    def four_layers_sharing():
        network, tokenizer, processor = load_model_parts(str(tiny_clip))
        layers = network.vision_model.encoder.layers
        layers.append(copy.deepcopy(layers[0]))
        layers.append(copy.deepcopy(layers[1]))
        layers[2].mlp.fc1, layers[2].mlp.fc2 = layers[1].mlp.fc1, layers[1].mlp.fc2
        return network, tokenizer, processor

    encoder = DualEncoder(str(tiny_clip), device="cpu", precision="fp32", parts=four_layers_sharing()).load()
    own = DualEncoder(str(tiny_clip), device="cpu", precision="fp32", streamline=False,
                      parts=four_layers_sharing()).load()  # fmt: skip
    assert not encoder.streamlined
    pixels = _pixels(32)
    assert _relative_difference(encoder.embed_images(pixels), own.embed_images(pixels)) < 1e-6


def test_an_mlp_without_a_bias_is_folded_and_one_that_fails_half_way_is_given_back_whole(tiny_clip, monkeypatch):
    from smart_sorter.pipeline.encoder import load_model_parts

    network = load_model_parts(str(tiny_clip))[0]
    network.vision_model.encoder.layers[-1].mlp.fc1.bias = None
    own = network.get_image_features(pixel_values=_pixels(32)).pooler_output.detach().numpy()
    embed = streamlining.streamlined_embedder(network, 32)
    assert embed is not None
    with torch.inference_mode():
        assert _relative_difference(embed(_pixels(32)).numpy(), own) < 1e-5

    network = load_model_parts(str(tiny_clip))[0]
    before = {name: value.clone() for name, value in network.state_dict().items()}
    scale = streamlining._scale_mlp
    calls = []

    def failing_at_the_second_layer(mlp, factor):
        calls.append(factor)
        if len(calls) == 2:
            raise RuntimeError("cannot scale this weight in place")
        scale(mlp, factor)

    monkeypatch.setattr(streamlining, "_scale_mlp", failing_at_the_second_layer)
    assert streamlining.streamlined_embedder(network, 32) is None
    assert calls[0] == streamlining.QUICK_GELU_FACTOR and calls[-1] == 1 / streamlining.QUICK_GELU_FACTOR  # undone
    for layer in network.vision_model.encoder.layers:
        assert type(layer.mlp.activation_fn).__name__ == "QuickGELUActivation"
    for name, value in network.state_dict().items():
        assert torch.allclose(value, before[name], rtol=1e-6, atol=0), name
