"""A deterministic stand-in for the model, for fast tests of the orchestration around it.

`FakeEncoder` has the surface of `smart_sorter.pipeline.encoder.DualEncoder` that the runs use
(`load`, `describe`, `device`, `head`, `image_processor`, `embed_texts`, `embed_images`, `kind`,
`model_id`) and embeds by colour: an image is its mean colour (R, G, B), a text is the colours it
names ("red" -> (1, 0, 0), ...) or a neutral grey. So a red picture sorts to "a red thing", and a
test can say which folder each file must reach. It counts what it embedded, so a test can show that
the cache spared the model. It imports neither transformers nor a model: real models stay in the
end-to-end tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from smart_sorter.core.scoring import ScoreHead

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220)}
TEXT_VECTORS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
NEUTRAL = (1.0, 1.0, 1.0)  # a text naming no colour: as close to every colour, like "something else"
EDGE = 8  # the fake model's input size, in pixels


class FakeImageProcessor:
    """The attributes `FastPlan` copies from a CLIP image processor (shortest edge, centre crop,
    rescale to 0..1, no normalisation), and a call like a processor's for the exact mode."""

    do_resize = True
    size = {"shortest_edge": EDGE}
    do_center_crop = True
    crop_size = {"height": EDGE, "width": EDGE}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = False
    image_mean = (0.0, 0.0, 0.0)
    image_std = (1.0, 1.0, 1.0)
    resample = None  # bilinear
    do_pad = False

    def __call__(self, *, images: list[Image.Image], return_tensors: str = "np") -> dict[str, np.ndarray]:
        arrays = [np.asarray(image.convert("RGB").resize((EDGE, EDGE)), dtype=np.float32) / 255 for image in images]
        return {"pixel_values": np.stack(arrays).transpose(0, 3, 1, 2)}


class FakeEncoder:
    """Colour embeddings, counted: `embedded_images` and `embedded_texts` list every item embedded."""

    kind = "dual"

    def __init__(self, model_id: str = "fake/colour-encoder", *, scale: float = 100.0) -> None:
        self.model_id = model_id
        self.revision = None
        self.device = "cpu"
        self.head = ScoreHead(scale)  # CLIP's softmax at CLIP's scale
        self.image_processor = FakeImageProcessor()
        self.loads = 0
        self.embedded_images = 0  # images embedded, over all calls
        self.embedded_texts: list[str] = []
        self.image_batches: list[int] = []

    def load(self) -> FakeEncoder:
        self.loads += 1
        return self

    def describe(self) -> dict[str, Any]:
        return {"id": self.model_id, "revision": None, "model_type": "fake-colour", "kind": self.kind,
                "device": self.device, "dtype": "float32"}  # fmt: skip

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.embedded_texts.extend(texts)
        return np.array([text_vector(text) for text in texts], dtype=np.float32)

    def embed_images(self, pixel_values: Any) -> np.ndarray:
        """The mean colour of each image of an NCHW batch (values from 0 to 1)."""
        pixels = np.asarray(pixel_values, dtype=np.float32)
        self.embedded_images += len(pixels)
        self.image_batches.append(len(pixels))
        return pixels.mean(axis=(2, 3))


def text_vector(text: str) -> tuple[float, float, float]:
    """The sum of the colours a text names, or neutral grey when it names none."""
    words = text.lower().replace(".", " ").replace(",", " ").split()
    named = [TEXT_VECTORS[word] for word in words if word in TEXT_VECTORS]
    if not named:
        return NEUTRAL
    return tuple(float(sum(channel)) for channel in zip(*named))


def colour_image(colour: str, seed: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    """A picture of one colour with a little noise, so that every seed gives other bytes."""
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], dtype=np.int16)
    noise = rng.integers(-12, 13, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_colour_images(folder: Path, colours: list[str], *, start: int = 0) -> dict[str, str]:
    """JPEGs of the given colours (`red_00.jpg`, ...) in `folder`; returns file name -> colour, the truth
    against which the fake sorts."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for index, colour in enumerate(colours, start=start):
        name = f"{colour}_{index:02d}.jpg"
        colour_image(colour, seed=index).save(folder / name, quality=92)
        truth[name] = colour
    return truth


COLOUR_LABELS = ["a red thing", "a green thing", "a blue thing"]
LABEL_OF = {"red": "a red thing", "green": "a green thing", "blue": "a blue thing"}


@pytest.fixture
def fake_encoder(tmp_path, monkeypatch) -> FakeEncoder:
    """A fresh FakeEncoder with an embedding cache of its own (a new SMART_SORTER_HOME), so that its
    counts say what this test embedded and not what an earlier test cached."""
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "smart-sorter-home"))
    return FakeEncoder()
