import os

from smart_sorter.pipeline.finding import find_images, sniff_image_format
from tests.factories import image_bytes, noise_image


def relatives(scan):
    return [item.relative for item in scan.files]


def test_finds_images_recursively_in_sorted_order(tmp_path):
    for name in ["b.jpg", "a.png", "z/c.webp", "y/x/d.gif", "A.JPEG"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}[
            name.rsplit(".", 1)[1].lower()
        ]
        path.write_bytes(image_bytes(noise_image(1), fmt))
    assert relatives(find_images(tmp_path)) == ["A.JPEG", "a.png", "b.jpg", "y/x/d.gif", "z/c.webp"]


def test_content_counts_as_much_as_the_name(tmp_path):
    (tmp_path / "photo.bin").write_bytes(image_bytes(noise_image(1), "JPEG"))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.jpg").write_text("not an image")
    scan = find_images(tmp_path)
    assert relatives(scan) == ["fake.jpg", "photo.bin"]
    assert scan.skipped_other == 1


def test_hidden_files_and_the_destination_are_skipped(tmp_path):
    for name in [".hidden.jpg", ".cache/a.jpg", "sorted/cat/a.jpg", "keep.jpg"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(noise_image(2), "JPEG"))
    assert relatives(find_images(tmp_path, exclude=(tmp_path / "sorted",))) == ["keep.jpg"]


def test_symlinks_do_not_lead_outside_and_loops_do_not_hang(tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(image_bytes(noise_image(3), "JPEG"))
    source = tmp_path / "source"
    source.mkdir()
    (source / "inside.jpg").write_bytes(image_bytes(noise_image(4), "JPEG"))
    os.symlink(outside, source / "link-out.jpg")
    os.symlink(source, source / "loop")
    assert relatives(find_images(source)) == ["inside.jpg"]


def test_sniffing_recognises_the_formats():
    assert sniff_image_format(image_bytes(noise_image(1), "PNG")[:16]) == "PNG"
    assert sniff_image_format(image_bytes(noise_image(1), "WEBP")[:16]) == "WEBP"
    assert sniff_image_format(image_bytes(noise_image(1), "BMP")[:16]) == "BMP"
    assert sniff_image_format(image_bytes(noise_image(1), "TIFF")[:16]) == "TIFF"
    assert sniff_image_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert sniff_image_format(b"hello world12345") is None
