"""JPEGs decoded a batch at a time on the model's device (nvJPEG on CUDA), run here on the CPU.

`Sorter(decode_device="cpu")` runs the GPU's code path with torch's CPU device: JPEGs left as bytes by
the decoding workers, decoded through torchvision in batches, resized and cropped with torch, the rest
given back to the CPU's decoders. Without torchvision every file is given back, so the same run must
equal the CPU path exactly; with torchvision (the second venv of `.ci/run`) the labels must.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from smart_sorter.options import SortOptions
from smart_sorter.pipeline import gpu
from smart_sorter.pipeline.decoding import decode_image
from smart_sorter.pipeline.encoder import DualEncoder
from smart_sorter.pipeline.preprocessing import FastPlan, Preprocessor
from smart_sorter.runs.sorting import Sorter
from tests.factories import noise_image
from tests.toy_clip import TOY_LABELS, write_shapes

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
# The stored image turned so that a viewer applying the EXIF orientation shows the shape upright.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(STORED_AS[orientation]) if orientation in STORED_AS else image
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shapes_and_oddities(tmp_path_factory):
    """Shapes (JPEG and PNG), JPEGs stored turned with each EXIF orientation, and the files the GPU gives
    back: a corrupt JPEG, a CMYK JPEG, a banner ten times wider than high."""
    folder = tmp_path_factory.mktemp("gpu-decoding") / "shapes"
    truth = write_shapes(folder, 24, seed=21)
    jpegs = sorted(name for name in truth if name.endswith(".jpg"))
    for orientation, name in zip(range(2, 9), jpegs):
        path = folder / name
        path.write_bytes(oriented(Image.open(path).convert("RGB"), orientation))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4)
    Image.open(folder / jpegs[-1]).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    noise_image(3, size=(400, 40)).save(folder / "banner.jpg", quality=90)
    return folder, truth


def sort_with(toy_clip, source, destination, decode_device):
    options = SortOptions(model=str(toy_clip), precision="fp32", use_cache=False, batch_size=8, top_k=len(TOY_LABELS))
    result = Sorter(options, decode_device=decode_device, progress_bar=False).run(source, destination, TOY_LABELS)
    table = result.table.set_index("file").sort_index()
    return table


def test_a_run_decoding_jpegs_on_the_device_gives_the_cpu_paths_labels(
    toy_clip, shapes_and_oddities, tmp_path, monkeypatch
):
    source, truth = shapes_and_oddities
    decoded_there = []
    decode = gpu.decode_jpegs_on_gpu

    def counting(datas, device):
        found = decode(datas, device)
        decoded_there.extend(pixels is not None for pixels in found)
        return found

    monkeypatch.setattr(gpu, "decode_jpegs_on_gpu", counting)
    on_cpu = sort_with(toy_clip, source, tmp_path / "cpu", None)
    assert not decoded_there  # the default on a CPU: JPEGs are decoded by the workers
    on_device = sort_with(toy_clip, source, tmp_path / "device", "cpu")

    jpegs = sum(name.endswith(".jpg") for name in truth) + 3  # the shapes', corrupt, CMYK, banner
    assert len(decoded_there) == jpegs  # every JPEG went through the device's decoding
    # with torchvision all but the corrupt and CMYK JPEGs decode there (the banner too, then is given back)
    assert sum(decoded_there) == (jpegs - 2 if HAS_TORCHVISION else 0)
    assert list(on_device.index) == list(on_cpu.index)
    assert on_device["status"].to_dict() == on_cpu["status"].to_dict()
    assert on_device["label"].to_dict() == on_cpu["label"].to_dict()
    assert on_device.loc["corrupt.jpg", "status"] == "error"
    assert on_device.loc["corrupt.jpg", "error"] == on_cpu.loc["corrupt.jpg", "error"]
    assert on_device.loc["cmyk.jpg", "status"] == "sorted"
    assert all(on_device.loc[name, "label"] == label for name, label in truth.items())  # turned ones too
    scores = [f"score_{rank}" for rank in range(1, len(TOY_LABELS) + 1)]
    scores = [column for column in scores if column in on_cpu.columns] or ["score"]
    difference = np.abs(on_device[scores].to_numpy(float) - on_cpu[scores].to_numpy(float))
    difference = difference[~np.isnan(difference)]
    if HAS_TORCHVISION:  # torch's bicubic and Pillow's differ by a grey level here and there
        assert difference.max() < 0.05
    else:  # every file given back to the CPU: the very same numbers
        assert difference.max() == 0


def test_without_torchvision_every_jpeg_is_given_back_to_the_cpu():
    if HAS_TORCHVISION:
        pytest.skip("torchvision is installed here")
    assert gpu.decode_jpegs_on_gpu([oriented(noise_image(1), 6)], "cpu") == [None]
    assert gpu.gpu_decoding_device("cuda:0") is None and gpu.gpu_decoding_device("cpu") is None


def test_one_bad_file_does_not_send_the_batch_to_the_cpu():
    pytest.importorskip("torchvision", reason="torchvision is not installed (the second venv of .ci/run has it)")
    good = oriented(noise_image(1), 1)
    # a JPEG header that Pillow reads, then data nvJPEG (libjpeg on the CPU) cannot decode
    broken = good[: len(good) // 3] + b"\xff\xd9"
    found = gpu.decode_jpegs_on_gpu([good, broken, b"not a jpeg", good], "cpu")
    assert found[0] is not None and found[3] is not None and found[2] is None
    assert gpu.gpu_decoding_device("cpu") is None and gpu.gpu_decoding_device("cuda:0") == "cuda:0"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_pixels_are_the_cpu_paths_upright_pixels(tiny_clip, orientation):
    pytest.importorskip("torchvision", reason="torchvision is not installed (the second venv of .ci/run has it)")
    preprocessor = Preprocessor(DualEncoder(str(tiny_clip), device="cpu").load().image_processor, "fast")
    data = oriented(noise_image(orientation, size=(90, 60)).filter(ImageFilterSmooth()), orientation)
    [pixels] = gpu.decode_jpegs_on_gpu([data], "cpu")
    on_device = gpu.device_pixels(pixels, preprocessor.plan).permute(1, 2, 0).numpy()
    on_cpu = preprocessor.prepare(data).astype(float)
    assert on_device.shape == on_cpu.shape
    assert np.abs(on_device - on_cpu).mean() < 3  # two resampling codes, two builds of libjpeg
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(np.asarray(decode_image(data)), expected)


def ImageFilterSmooth():  # noqa: N802 - reads as the Pillow filter it is
    from PIL import ImageFilter

    return ImageFilter.GaussianBlur(2)  # noise has no low frequencies: resampling codes would disagree on it


def test_images_smaller_than_the_crop_are_padded_where_the_cpu_pads_them():
    import torch

    # a processor resizing to 20 x 40 and cropping 32 x 32: cut across, padded with black along
    plan = FastPlan(("exact", 20, 40), (32, 32), int(Image.Resampling.BICUBIC), 1 / 255, (0.5,) * 3, (0.5,) * 3)
    for size in ((50, 30), (24, 16)):
        white = Image.new("RGB", size, "white")
        on_device = gpu.device_pixels(torch.from_numpy(np.array(white)).permute(2, 0, 1), plan)
        on_cpu = plan.pixels(white)
        assert tuple(on_device.shape) == (3, *on_cpu.shape[:2]) == (3, 32, 32)
        assert np.array_equal(on_device.permute(1, 2, 0).numpy(), on_cpu.astype(np.float32))
