"""The GPU's branches that run on a CPU: pinned memory's fallback, nvJPEG's fallback, EXIF orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from smart_sorter.pipeline.gpu import decode_jpegs_on_gpu, exif_orientation, pinned, to_device, upright
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
    assert exif_orientation(data) == orientation
    stored = np.array(Image.open(io.BytesIO(data)).convert("RGB"))  # as decoded, not turned
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    turned = upright(torch.from_numpy(stored).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert turned.shape == expected.shape and np.array_equal(turned, expected)


def test_a_file_without_orientation_is_upright():
    assert exif_orientation(b"not an image") == 1
    buffer = io.BytesIO()
    noise_image(1, size=(8, 8)).save(buffer, "PNG")
    assert exif_orientation(buffer.getvalue()) == 1


def test_gpu_decoding_gives_way_to_the_cpu_on_any_error():
    assert decode_jpegs_on_gpu([b"\xff\xd8 not really a jpeg"], "cpu") is None
    assert decode_jpegs_on_gpu([oriented_jpeg(1)], "no-such-device") is None


def test_torchvisions_jpeg_decoding_matches_pillows_upright_image():
    pytest.importorskip("torchvision", reason="torchvision is not installed (bench/README.md: the torchvision venv)")
    datas = [oriented_jpeg(orientation) for orientation in (1, 6, 8)]
    decoded = decode_jpegs_on_gpu(datas, "cpu")  # the same code as on CUDA, but for nvJPEG itself
    assert decoded is not None
    for pixels, data in zip(decoded, datas):
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        found = pixels.permute(1, 2, 0).numpy()
        assert found.shape == expected.shape
        assert np.abs(found.astype(int) - expected.astype(int)).mean() < 2  # two builds of libjpeg
