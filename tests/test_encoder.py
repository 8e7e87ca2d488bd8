"""The model layer against the transformers pipeline, on tiny models loaded by path."""

import shutil

import numpy as np
import pytest

from smart_sorter import sort_images
from smart_sorter.errors import ModelError
from smart_sorter.pipeline.encoder import DualEncoder, PipelineClassifier, load_encoder, load_model_parts
from smart_sorter.pipeline.preprocessing import Preprocessor
from tests.factories import image_bytes, noise_image

LABELS = ["screenshot of a newspaper article", "a picture of a person", "a picture of a politician", "memes"]


@pytest.fixture(scope="module")
def mixed_images(tmp_path_factory, corpus):
    """Real Telegram JPEGs plus a PNG and a portrait JPEG."""
    folder = tmp_path_factory.mktemp("mixed")
    for path in sorted(corpus.iterdir())[:6]:
        shutil.copy(path, folder / path.name)
    noise_image(7, size=(90, 50)).save(folder / "wide.png")
    noise_image(8, size=(40, 120)).save(folder / "tall.jpg")
    return folder


def pipeline_scores(model_path, folder, labels):
    from transformers import pipeline

    classify = pipeline("zero-shot-image-classification", model=str(model_path))
    scores = {}
    for path in sorted(folder.iterdir()):
        result = classify(str(path), candidate_labels=labels)
        scores[path.name] = {item["label"]: item["score"] for item in result}
    return scores


def sorted_scores(table, labels):
    scores = {}
    for _, row in table.iterrows():
        ranked = [(row["label"], row["score"])] + [
            (row[f"label_{k}"], row[f"score_{k}"]) for k in range(2, len(labels) + 1)
        ]
        scores[row["file"]] = dict(ranked)
    return scores


@pytest.mark.parametrize("model_fixture", ["tiny_clip", "tiny_siglip"])
def test_exact_preprocessing_matches_the_pipeline(request, model_fixture, mixed_images, tmp_path):
    model_path = request.getfixturevalue(model_fixture)
    result = sort_images(
        mixed_images,
        tmp_path / "out",
        LABELS,
        model=str(model_path),
        preprocess="exact",
        top_k=len(LABELS),
        batch_size=3,
        progress_bar=False,
    )
    ours = sorted_scores(result.table, LABELS)
    theirs = pipeline_scores(model_path, mixed_images, LABELS)
    assert ours.keys() == theirs.keys()
    spread = []
    for name in theirs:
        for label in LABELS:
            assert ours[name][label] == pytest.approx(theirs[name][label], abs=1e-4), (name, label)
            spread.append(theirs[name][label])
    assert np.ptp(spread) > 0.01  # the model tells labels apart, so equality means something


@pytest.mark.parametrize("processor_class", ["CLIPImageProcessor", "SiglipImageProcessor"])
def test_fast_pixels_stay_close_to_the_models_processor_at_real_size(processor_class, mixed_images):
    import transformers

    processor = getattr(transformers, processor_class)()  # 224 px, as the real models
    fast, exact = Preprocessor(processor, "fast"), Preprocessor(processor, "exact")
    assert fast.mode == "fast" and exact.mode == "exact"
    for path in sorted(mixed_images.iterdir()):
        data = path.read_bytes()
        fast_pixels = fast.collate([fast.prepare(data)]).numpy()
        exact_pixels = exact.collate([exact.prepare(data)]).numpy()
        assert fast_pixels.shape == exact_pixels.shape == (1, 3, 224, 224)
        assert np.abs(fast_pixels - exact_pixels).mean() < 0.02, path.name


def test_fast_embeddings_stay_close_to_exact(tiny_clip, mixed_images):
    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    fast = Preprocessor(encoder.image_processor, "fast")
    exact = Preprocessor(encoder.image_processor, "exact")
    for path in sorted(mixed_images.iterdir()):
        data = path.read_bytes()
        fast_embedding = encoder.embed_images(fast.collate([fast.prepare(data)]))[0]
        exact_embedding = encoder.embed_images(exact.collate([exact.prepare(data)]))[0]
        cosine = fast_embedding @ exact_embedding / np.linalg.norm(fast_embedding) / np.linalg.norm(exact_embedding)
        assert cosine > 0.995, path.name


def test_fast_equals_exact_when_no_draft_decoding_applies(tiny_clip, mixed_images):
    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    fast = Preprocessor(encoder.image_processor, "fast")
    exact = Preprocessor(encoder.image_processor, "exact")
    data = (mixed_images / "wide.png").read_bytes()
    fast_pixels, exact_pixels = fast.collate([fast.prepare(data)]).numpy(), exact.collate([exact.prepare(data)]).numpy()
    if encoder.image_processor.backend == "pil":  # the same Pillow resize in both modes
        np.testing.assert_allclose(fast_pixels, exact_pixels, atol=1e-5)
    else:  # torchvision's bicubic differs from Pillow's by a grey level or so here and there
        assert np.abs(fast_pixels - exact_pixels).max() < 0.05 and np.abs(fast_pixels - exact_pixels).mean() < 0.005


def test_exact_uses_the_image_processor_the_pipeline_uses_in_this_environment(tiny_clip, tiny_siglip):
    """transformers picks a torchvision image processor where torchvision is installed (as in Colab) and a
    Pillow one elsewhere; exact must use the pipeline's in both (the torchvision venv: bench/README.md)."""
    import importlib.util

    from transformers import pipeline

    expected = "torchvision" if importlib.util.find_spec("torchvision") is not None else "pil"
    for model_path in (tiny_clip, tiny_siglip):
        ours = DualEncoder(str(model_path), device="cpu").load().image_processor
        theirs = pipeline("zero-shot-image-classification", model=str(model_path)).image_processor
        assert type(ours) is type(theirs) and ours.backend == theirs.backend == expected
        assert ours.to_dict() == theirs.to_dict()


def test_exact_matches_the_pipeline_with_torchvision(tiny_clip, mixed_images, tmp_path):
    pytest.importorskip(
        "torchvision",
        reason="torchvision is not installed here (its PyPI build does not import beside the CPU torch 2.13.0);"
        " bench/README.md says how to run this in a venv with torch 2.14.1 and torchvision 0.29.1",
    )
    result = sort_images(mixed_images, tmp_path / "out", LABELS, model=str(tiny_clip), preprocess="exact",
                         top_k=len(LABELS), batch_size=3, progress_bar=False, use_cache=False)  # fmt: skip
    assert DualEncoder(str(tiny_clip), device="cpu").load().image_processor.backend == "torchvision"
    ours, theirs = sorted_scores(result.table, LABELS), pipeline_scores(tiny_clip, mixed_images, LABELS)
    for name in theirs:
        for label in LABELS:
            assert ours[name][label] == pytest.approx(theirs[name][label], abs=1e-4), (name, label)


def test_label_texts_are_embedded_once_per_run(tiny_clip, mixed_images, tmp_path, monkeypatch):
    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    calls = []
    original = encoder.embed_texts
    monkeypatch.setattr(encoder, "embed_texts", lambda texts: calls.append(texts) or original(texts))
    sort_images(
        mixed_images, tmp_path / "out", LABELS, model=str(tiny_clip), encoder=encoder, batch_size=2, progress_bar=False
    )
    assert len(calls) == 1 and len(calls[0]) == len(LABELS)


def test_half_precision_runs_on_the_cpu_close_to_full(tiny_clip, mixed_images):
    full = DualEncoder(str(tiny_clip), device="cpu").load()
    half = DualEncoder(str(tiny_clip), device="cpu", precision="fp16").load()
    assert half.describe()["precision"] == "fp16"
    prepare = Preprocessor(full.image_processor, "fast")
    batch = prepare.collate([prepare.prepare(p.read_bytes()) for p in sorted(mixed_images.iterdir())])
    np.testing.assert_allclose(half.embed_images(batch), full.embed_images(batch), atol=0.05)


def test_the_pipeline_fallback_scores_like_the_pipeline(tiny_clip, mixed_images, tmp_path):
    parts = load_model_parts(str(tiny_clip))
    classifier = PipelineClassifier(str(tiny_clip), device="cpu", parts=parts)
    result = sort_images(
        mixed_images,
        tmp_path / "out",
        LABELS,
        model=str(tiny_clip),
        encoder=classifier,
        top_k=len(LABELS),
        batch_size=4,
        progress_bar=False,
    )
    ours = sorted_scores(result.table, LABELS)
    theirs = pipeline_scores(tiny_clip, mixed_images, LABELS)
    for name in theirs:
        for label in LABELS:
            assert ours[name][label] == pytest.approx(theirs[name][label], abs=1e-4)
    assert result.table["status"].eq("sorted").all()


def test_load_encoder_picks_the_dual_path_for_clip_and_siglip(tiny_clip, tiny_siglip):
    assert isinstance(load_encoder(str(tiny_clip), device="cpu"), DualEncoder)
    siglip = load_encoder(str(tiny_siglip), device="cpu")
    assert isinstance(siglip, DualEncoder) and siglip.head.activation == "sigmoid"


@pytest.mark.parametrize(
    "model, message",
    [
        ("no-such-org/no-such-model", "HF_HUB_OFFLINE"),
        ("./missing/model/folder", "does not exist"),
    ],
)
def test_unreachable_models_give_a_sentence(model, message):
    with pytest.raises(ModelError, match=message):
        load_model_parts(model)


def test_a_folder_that_is_not_a_model_is_explained(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelError, match="not a zero-shot image classification model"):
        load_model_parts(str(tmp_path))


def test_asking_for_cuda_without_a_gpu_is_explained(tiny_clip):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        DualEncoder(str(tiny_clip), device="cuda").load()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(3, 5000), (6000, 2), (224, 1200)])
def test_elongated_images_are_cut_not_blown_up_and_both_modes_agree(size):
    import transformers
    from PIL import Image

    from tests.factories import image_bytes

    processor = transformers.CLIPImageProcessor()
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    data = image_bytes(image, "PNG")
    fast, exact = Preprocessor(processor, "fast"), Preprocessor(processor, "exact")
    fast_pixels = fast.collate([fast.prepare(data)]).numpy()
    exact_pixels = exact.collate([exact.prepare(data)]).numpy()
    reference = np.asarray(processor(images=[image], return_tensors="np")["pixel_values"])
    assert fast_pixels.shape == exact_pixels.shape == reference.shape == (1, 3, 224, 224)
    # within a few grey levels (one level is about 0.015 here) where the cut changes Pillow's rounding
    assert np.abs(exact_pixels - reference).max() < 0.07
    assert np.abs(exact_pixels - reference).mean() < 0.015
    assert np.abs(fast_pixels - reference).mean() < 0.02


def test_an_unreachable_hub_is_said_within_seconds_and_leaves_nothing_behind(monkeypatch, tmp_path):
    import time

    from huggingface_hub import constants

    from smart_sorter import sort_images

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty local cache
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jpg").write_bytes(image_bytes(noise_image(1)))
    started = time.perf_counter()
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub") as raised:
        sort_images(tmp_path / "src", tmp_path / "out", "cat,dog", model="no-such-org/no-such-model")
    assert time.perf_counter() - started < 10
    assert "set HF_HUB_OFFLINE=1" in str(raised.value)  # not set yet: the advice is to set it
    assert not (tmp_path / "out").exists()  # a failed start leaves nothing behind


def test_offline_mode_already_on_is_not_advised_again(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="offline mode") as raised:
        load_model_parts("no-such-org/no-such-model")
    assert "set HF_HUB_OFFLINE" not in str(raised.value)
