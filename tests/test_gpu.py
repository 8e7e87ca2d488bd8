"""The GPU's branches that run on a CPU: pinned memory's fallback, nvJPEG's fallback, EXIF orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from smart_sorter.pipeline.gpu import decode_jpegs_on_gpu, jpeg_header, pinned, to_device, upright
from tests.factories import noise_image


def oriented_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    noise_image(orientation, size=(40, 24)).save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def test_without_cuda_a_batch_is_not_pinned_and_is_copied_plainly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: pinning works")
    batch = torch.rand(2, 3, 4, 4)
    assert pinned(batch) is batch  # no CUDA driver to lock pages with: used as it is
    moved = to_device(batch, "cpu", torch.bfloat16)
    assert moved.dtype == torch.bfloat16 and torch.allclose(moved.float(), batch, atol=1e-2)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(orientation):
    import torch

    data = oriented_jpeg(orientation)
    assert jpeg_header(data) == orientation
    stored = np.array(Image.open(io.BytesIO(data)).convert("RGB"))  # as decoded, not turned
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    turned = upright(torch.from_numpy(stored).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert turned.shape == expected.shape and np.array_equal(turned, expected)


def test_only_rgb_and_grey_jpegs_within_the_pixel_limit_are_left_to_the_gpu(monkeypatch):
    buffer = io.BytesIO()
    noise_image(1, size=(8, 8)).save(buffer, "JPEG")
    assert jpeg_header(buffer.getvalue()) == 1  # no orientation: upright
    for image, format in ((noise_image(1, size=(8, 8)), "PNG"), (noise_image(1, size=(8, 8)).convert("CMYK"), "JPEG")):
        buffer = io.BytesIO()
        image.save(buffer, format)
        assert jpeg_header(buffer.getvalue()) is None
    assert jpeg_header(b"not an image") is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the CPU's decoder says the image is too large
    assert jpeg_header(oriented_jpeg(1)) is None


def test_gpu_decoding_gives_way_to_the_cpu_on_any_error():
    assert decode_jpegs_on_gpu([b"\xff\xd8 not really a jpeg"], "cpu") == [None]
    assert decode_jpegs_on_gpu([oriented_jpeg(1), oriented_jpeg(2)], "no-such-device") == [None, None]


def test_torchvisions_jpeg_decoding_matches_pillows_upright_image():
    pytest.importorskip("torchvision", reason="torchvision is not installed (bench/README.md: the torchvision venv)")
    datas = [oriented_jpeg(orientation) for orientation in (1, 6, 8)]
    decoded = decode_jpegs_on_gpu(datas, "cpu")  # the same code as on CUDA, but for nvJPEG itself
    assert all(pixels is not None for pixels in decoded)
    for pixels, data in zip(decoded, datas):
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        found = pixels.permute(1, 2, 0).numpy()
        assert found.shape == expected.shape
        assert np.abs(found.astype(int) - expected.astype(int)).mean() < 2  # two builds of libjpeg
