"""Session-wide tiny models (built once, loaded by path like a user's model) and image helpers."""

from __future__ import annotations

import os
import tempfile

# No network here or in CI: fail fast instead of retrying the Hub for half a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The embedding cache of the whole test session lives in a temporary folder, never the user's.
os.environ["SMART_SORTER_HOME"] = tempfile.mkdtemp(prefix="smart-sorter-test-home-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.factories import noise_image, save_clip, save_siglip  # noqa: E402

pytest_plugins = ["tests.fakes", "tests.vlm_server"]  # `fake_encoder`; `server`, `llava_says_yes`, `llava_random`

CORPUS = Path(
    os.environ.get("SMART_SORTER_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus" / "telegram-32")
)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A random-weight CLIP: proves the plumbing, not the sorting."""
    return save_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory) -> Path:
    return save_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def tiny_owlv2(tmp_path_factory) -> Path:
    """A random-weight OWLv2 detector: proves the plumbing of detection mode."""
    from tests.factories import save_owlv2

    return save_owlv2(tmp_path_factory.mktemp("tiny-owlv2"))


@pytest.fixture(scope="session")
def tiny_grounding_dino(tmp_path_factory) -> Path:
    from tests.factories import save_grounding_dino

    return save_grounding_dino(tmp_path_factory.mktemp("tiny-grounding-dino"))


@pytest.fixture(scope="session")
def toy_clip(tmp_path_factory) -> Path:
    """A tiny CLIP trained on coloured shapes: proves that sorting sorts."""
    from tests.toy_clip import train_toy_clip

    return train_toy_clip(tmp_path_factory.mktemp("toy-clip"))


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Six small random photos, two in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for index in range(6):
        target = folder / ("sub" if index >= 4 else "") / f"photo_{index}.jpg"
        noise_image(index).save(target, quality=90)
    return folder


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the telegram-32 corpus is not at {CORPUS}")
    return CORPUS


def sort_shapes(toy_clip: Path, folder: Path, count: int = 24, **options) -> tuple[Path, dict[str, str]]:
    """Shapes sorted by the trained toy model into folder/sorted; returns it and file -> true label."""
    from smart_sorter import sort_images
    from tests.toy_clip import TOY_LABELS, write_shapes

    truth = write_shapes(folder / "shapes", count, seed=21)
    # auto's timing probe may choose bf16 on a CPU with native bf16, and differently from one run to the next
    options.setdefault("precision", "fp32")
    sort_images(
        folder / "shapes", folder / "sorted", list(TOY_LABELS), model=str(toy_clip), progress_bar=False, **options
    )
    return folder / "sorted", truth


@pytest.fixture
def sorted_shapes(toy_clip, tmp_path) -> tuple[Path, dict[str, str]]:
    return sort_shapes(toy_clip, tmp_path, operation="move")
