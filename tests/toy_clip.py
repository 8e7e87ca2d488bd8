"""A tiny CLIP that really classifies: trained in seconds on generated coloured shapes.

Regenerate it by hand with `python -m tests.toy_clip OUTPUT_FOLDER`; the tests build it the
same way in a session fixture. Each class is one caption, "This is a photo of {label}." (the
default template), so sorting with the labels in `TOY_LABELS` should put every shape right.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TOY_LABELS = ("red circle", "blue square", "green triangle", "yellow cross")
_COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 50), "yellow": (235, 210, 20)}
TEMPLATE = "This is a photo of {}."


def draw_shape(label: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One image of `label` at a random place and scale on a random light, noisy background."""
    colour_name, shape = label.split()
    background = tuple(int(v) for v in rng.integers(170, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(radius, size - radius, size=2))
    draw_figure(draw, label, (cx, cy), radius, rng)
    noise = rng.normal(0, 8, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def draw_figure(draw: ImageDraw.ImageDraw, label: str, centre: tuple[int, int], radius: int, rng) -> None:
    """The shape of `label` (its colour varied a little) drawn around `centre`."""
    colour_name, shape = label.split()
    cx, cy = centre
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in _COLOURS[colour_name])
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour)
    else:
        width = max(2, radius // 3)
        draw.rectangle((cx - radius, cy - width, cx + radius, cy + width), fill=colour)
        draw.rectangle((cx - width, cy - radius, cx + width, cy + radius), fill=colour)


def make_dataset(count: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    rng = np.random.default_rng(seed)
    classes = [int(i) for i in rng.integers(0, len(TOY_LABELS), size=count)]
    return [draw_shape(TOY_LABELS[c], rng) for c in classes], classes


def train_toy_clip(folder: Path, *, steps: int = 150, seed: int = 0) -> Path:
    """Train the tiny CLIP to match each shape with its caption and save it to `folder`."""
    import torch
    import torch.nn.functional as F
    from transformers import CLIPImageProcessor, CLIPModel

    from tests.factories import clip_config, save_clip, write_clip_tokenizer

    torch.manual_seed(seed)
    config = clip_config(image_size=32, patch_size=8, vision_hidden=64, text_hidden=32, projection_dim=32)
    model = CLIPModel(config)
    tokenizer = write_clip_tokenizer(Path(folder) / "tokenizer-source")
    captions = tokenizer([TEMPLATE.format(label) for label in TOY_LABELS], padding=True, return_tensors="pt")
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    images, classes = make_dataset(1024, seed)
    pixels = torch.from_numpy(np.asarray(processor(images=images, return_tensors="np")["pixel_values"]))
    targets = torch.tensor(classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(targets), (64,), generator=generator)
        output = model(pixel_values=pixels[batch], **captions)
        loss = F.cross_entropy(output.logits_per_image, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return save_clip(folder, model=model)


def write_shapes(folder: Path, count: int, seed: int) -> dict[str, str]:
    """`count` held-back shape images saved as PNG and JPEG files; returns file name -> true label."""
    folder.mkdir(parents=True, exist_ok=True)
    images, classes = make_dataset(count, seed)
    truth = {}
    for index, (image, label_index) in enumerate(zip(images, classes)):
        name = f"shape_{index:03d}.{'png' if index % 2 else 'jpg'}"
        image.save(folder / name)
        truth[name] = TOY_LABELS[label_index]
    return truth


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.toy_clip OUTPUT_FOLDER")
    print(train_toy_clip(Path(sys.argv[1])))
