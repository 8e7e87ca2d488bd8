import numpy as np
import pytest
from PIL import Image

from smart_sorter.errors import DecodeError
from smart_sorter.pipeline.decoding import decode_image
from tests.factories import image_bytes, noise_image


def solid(mode, colour, size=(20, 10)):
    return Image.new(mode, size, colour)


def test_rgb_jpeg_decodes_to_rgb():
    image = decode_image(image_bytes(noise_image(1), "JPEG"))
    assert image.mode == "RGB" and image.size == (64, 48)


def test_transparency_is_composited_on_white():
    clear = solid("RGBA", (255, 0, 0, 0))
    image = decode_image(image_bytes(clear, "PNG"))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    half = decode_image(image_bytes(solid("LA", (0, 128)), "PNG"))
    assert half.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_palette_with_transparency_uses_white():
    palette = solid("P", 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert decode_image(image_bytes(palette, "PNG", transparency=0)).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb():
    image = decode_image(image_bytes(solid("CMYK", (0, 255, 255, 0)), "JPEG"))
    red, green, blue = image.getpixel((5, 5))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_greyscale_is_scaled_not_clipped():
    values = np.full((10, 20), 32768, dtype=np.uint16)
    image = decode_image(image_bytes(Image.fromarray(values), "PNG"))
    assert image.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_animation_uses_the_first_frame():
    frames = [solid("RGB", (255, 0, 0)), solid("RGB", (0, 0, 255))]
    data = image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    red, _, blue = decode_image(data).getpixel((0, 0))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied():
    wide = solid("RGB", (0, 255, 0), size=(40, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    assert decode_image(image_bytes(wide, "JPEG", exif=exif)).size == (10, 40)


def test_draft_decoding_shrinks_large_jpegs_but_covers_the_size():
    data = image_bytes(noise_image(2, size=(1600, 1200)), "JPEG")
    image = decode_image(data, draft_size=(224, 224))
    assert 224 <= min(image.size) < 600


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am text", "not an image"),
        (image_bytes(noise_image(3, size=(200, 200)), "JPEG")[:600], "truncated"),
        (image_bytes(noise_image(3), "PNG")[:60], "unreadable"),
    ],
)
def test_bad_files_raise_a_decode_error_with_the_reason(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(data)


def test_decompression_bombs_are_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DecodeError, match="too large"):
        decode_image(image_bytes(noise_image(4, size=(40, 40)), "PNG"))


def test_heic_files_decode():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        data = image_bytes(solid("RGB", (0, 0, 255), size=(32, 32)), "HEIF")
    except (KeyError, OSError, ValueError) as error:
        pytest.skip(f"this pillow-heif cannot encode HEIF: {error}")
    red, _, blue = decode_image(data).getpixel((16, 16))
    assert blue > 200 and red < 50


def test_transparency_can_be_dropped_as_transformers_drops_it():
    assert decode_image(image_bytes(solid("RGBA", (255, 0, 0, 0)), "PNG"), on_white=False).getpixel((0, 0)) == (
        255, 0, 0,
    )  # fmt: skip
    assert decode_image(image_bytes(solid("LA", (0, 128)), "PNG"), on_white=False).getpixel((0, 0)) == (0, 0, 0)
    palette = solid("P", 0)
    palette.putpalette([10, 20, 30] * 256)
    data = image_bytes(palette, "PNG", transparency=0)
    assert decode_image(data, on_white=False).getpixel((0, 0)) == (10, 20, 30)
    values = np.full((10, 20), 32768, dtype=np.uint16)  # 16-bit is still scaled, not clipped white
    grey = decode_image(image_bytes(Image.fromarray(values), "PNG"), on_white=False)
    assert grey.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def transparent_images(folder):
    """An RGBA, an LA and a palette PNG with transparency, over colourful noise."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    noise_image(1, size=(80, 60), mode="RGBA").save(folder / "rgba.png")
    noise_image(2, size=(60, 80), mode="LA").save(folder / "la.png")
    palette = Image.fromarray(rng.integers(0, 8, size=(50, 70), dtype=np.uint8), "P")
    palette.putpalette(rng.integers(0, 256, size=768, dtype=np.uint8).tolist())
    palette.save(folder / "palette.png", transparency=0)
    return folder


def test_exact_matches_the_pipeline_on_transparent_images(tiny_clip, tmp_path):
    from smart_sorter import sort_images
    from tests.test_encoder import LABELS, pipeline_scores, sorted_scores

    folder = transparent_images(tmp_path / "transparent")
    result = sort_images(folder, tmp_path / "out", LABELS, model=str(tiny_clip), preprocess="exact",
                         top_k=len(LABELS), progress_bar=False, use_cache=False)  # fmt: skip
    ours = sorted_scores(result.table, LABELS)
    theirs = pipeline_scores(tiny_clip, folder, LABELS)
    assert ours.keys() == theirs.keys() == {"rgba.png", "la.png", "palette.png"}
    for name in theirs:
        for label in LABELS:
            assert ours[name][label] == pytest.approx(theirs[name][label], abs=1e-4), (name, label)
