"""CLIP's image tower computing only what the image embedding needs: the same numbers, less work.

Two changes, each exact in arithmetic (what differs is rounding: within 5e-7 of the largest value in fp32):

- QuickGELU, x * sigmoid(1.702 x), takes three passes over the MLP's activations (mul, sigmoid,
  mul: 9-12% of a bf16 forward pass of ViT-B/32 on a CPU). As x * sigmoid(1.702 x) equals
  silu(1.702 x) / 1.702, the factor goes into fc1's weights and bias, its inverse into fc2's
  weights, and torch's one-pass SiLU does the rest.
- The embedding is the class token after the last layer, so that layer computes keys and values
  for every token but the query, the attention output and the MLP for the class token alone (most
  of one layer in twelve, for ViT-B/32).

Both apply only to a tower built like CLIP's (`vision_model` with pre/post layer norms and encoder
layers of q/k/v/out projections and fc1/fc2 MLPs, `visual_projection`) whose MLPs share no
parameter, and only once a probe's embeddings equal the model's own `get_image_features` on the
same weights; any other model, or a transformers version whose layers differ, keeps the model's own
forward pass (and unfolded weights). The probe runs two random images through the tower cut to its
first and last layers: what it checks is how the layers are called and how the class token is read,
not the depth, so it costs a fraction of one image's pass through the whole tower.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

QUICK_GELU_FACTOR = 1.702
# a probe's embeddings may differ from the model's own by rounding only
PROBE_TOLERANCE = 1e-4  # relative to the largest value


def _is_quick_gelu(activation: Any) -> bool:
    return type(activation).__name__ == "QuickGELUActivation"


def _clip_like(network: Any) -> bool:
    vision = getattr(network, "vision_model", None)
    parts = ("embeddings", "pre_layrnorm", "post_layernorm", "encoder")
    if vision is None or not hasattr(network, "visual_projection") or not all(hasattr(vision, p) for p in parts):
        return False
    layers = getattr(vision.encoder, "layers", None)
    needed = ("layer_norm1", "self_attn", "layer_norm2", "mlp")
    attention = ("q_proj", "k_proj", "v_proj", "out_proj", "head_dim", "scale")
    return bool(layers) and all(
        all(hasattr(layer, name) for name in needed)
        and all(hasattr(layer.self_attn, name) for name in attention)
        and all(hasattr(layer.mlp, name) for name in ("fc1", "fc2", "activation_fn"))
        for layer in layers
    )


def _fold_quick_gelu(network: Any) -> list[tuple[Any, Any]]:
    """Turn every QuickGELU MLP of the image tower into fc1' -> SiLU -> fc2'; the MLPs changed, each with
    its own activation (for `_unfold`). A failure half-way gives back what was folded, then raises."""
    import torch

    folded: list[tuple[Any, Any]] = []
    try:
        with torch.no_grad():
            for layer in network.vision_model.encoder.layers:
                mlp = layer.mlp
                if _is_quick_gelu(mlp.activation_fn):
                    _scale_mlp(mlp, QUICK_GELU_FACTOR)
                    folded.append((mlp, mlp.activation_fn))
                    mlp.activation_fn = torch.nn.SiLU()
    except Exception:
        _unfold(folded)
        raise
    return folded


def _scale_mlp(mlp: Any, factor: float) -> None:
    mlp.fc1.weight.mul_(factor)
    if mlp.fc1.bias is not None:
        mlp.fc1.bias.mul_(factor)
    mlp.fc2.weight.div_(factor)


def _parameters_shared(network: Any) -> bool:
    """Whether two places of the image tower's MLPs hold the same tensor (folding it once per place would
    scale it twice; a probe through some of the layers need not see it)."""
    seen: set[int] = set()
    for layer in network.vision_model.encoder.layers:
        for module in (layer.mlp.fc1, layer.mlp.fc2):
            for parameter in module.parameters(recurse=False):
                if parameter.data_ptr() in seen:
                    return True
                seen.add(parameter.data_ptr())
    return False


def _unfold(folded: list[tuple[Any, Any]]) -> None:
    import torch

    with torch.no_grad():
        for mlp, activation in folded:
            _scale_mlp(mlp, 1.0 / QUICK_GELU_FACTOR)
            mlp.activation_fn = activation


def layer_output(output: Any) -> Any:
    """An encoder layer's hidden states, whether it returns them alone or first in a tuple."""
    return output[0] if isinstance(output, tuple) else output


def _class_token_layer(layer: Any, hidden: Any) -> Any:
    """The last encoder layer for the class token alone: keys and values from every token."""
    import torch

    attention = layer.self_attn
    batch, tokens, width = hidden.shape
    normed = layer.layer_norm1(hidden)
    heads = (batch, -1, width // attention.head_dim, attention.head_dim)
    query = attention.q_proj(normed[:, :1]).view(heads).transpose(1, 2)
    key = attention.k_proj(normed).view(heads).transpose(1, 2)
    value = attention.v_proj(normed).view(heads).transpose(1, 2)
    attended = torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=attention.scale)
    hidden = hidden[:, :1] + attention.out_proj(attended.transpose(1, 2).reshape(batch, 1, width))
    return hidden + layer.mlp(layer.layer_norm2(hidden))


def class_token_features(network: Any, pixel_values: Any) -> Any:
    """Image embeddings of a CLIP-like network, computed as `streamlined_embedder` describes."""
    vision = network.vision_model
    hidden = vision.pre_layrnorm(vision.embeddings(pixel_values))
    *layers, last = vision.encoder.layers
    for layer in layers:
        hidden = layer_output(layer(hidden, None))
    hidden = _class_token_layer(last, hidden)
    return network.visual_projection(vision.post_layernorm(hidden[:, 0]))


@contextlib.contextmanager
def _first_and_last_layers(network: Any) -> Iterator[None]:
    """The tower with its first and last encoder layers only, for the probe; given back whole after."""
    import torch

    encoder = network.vision_model.encoder
    layers = encoder.layers
    if len(layers) > 2:
        encoder.layers = torch.nn.ModuleList([layers[0], layers[-1]])
    try:
        yield
    finally:
        encoder.layers = layers


def _agree(found: Any, expected: Any) -> bool:
    scale = float(expected.abs().max()) or 1.0
    return found.shape == expected.shape and float((found.float() - expected.float()).abs().max()) <= (
        PROBE_TOLERANCE * scale
    )


def streamlined_embedder(network: Any, image_size: int) -> Callable[[Any], Any] | None:
    """Fold QuickGELU into `network`'s image tower and return `pixels -> embeddings` by the class token,
    or None (with the weights as they were) when the network is not built like CLIP or a probe disagrees.

    Call it with the image tower in fp32, before any cast to a reduced precision."""
    import torch

    if not _clip_like(network) or _parameters_shared(network):
        return None
    device = next(network.parameters()).device
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(2, 3, image_size, image_size, generator=generator).to(device)

    def own(pixels: Any) -> Any:
        output = network.get_image_features(pixel_values=pixels)
        return output if hasattr(output, "shape") else output.pooler_output

    with torch.inference_mode(), _first_and_last_layers(network):
        try:
            expected = own(probe)
        except Exception:  # noqa: BLE001 - a model that cannot run a probe keeps its own path, which says why
            return None
    try:
        folded = _fold_quick_gelu(network)
    except Exception:  # noqa: BLE001 - an MLP of another shape: given back as it was, the model's own pass
        return None

    def embed(pixels: Any) -> Any:
        return class_token_features(network, pixels)

    with torch.inference_mode(), _first_and_last_layers(network):
        try:
            agrees = _agree(embed(probe), expected)
        except Exception:  # noqa: BLE001 - any other layer shape: the model's own forward pass
            agrees = False
    if agrees:
        return embed
    _unfold(folded)
    return None
