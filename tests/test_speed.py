"""Precision, text-only loading for re-sorts, and the estimate of a long run's time."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from smart_sorter import sort_images
from smart_sorter.errors import OptionError
from smart_sorter.options import SortOptions
from smart_sorter.pipeline.embedding_cache import model_key
from smart_sorter.pipeline.encoder import DualEncoder, load_encoder
from smart_sorter.pipeline.precision import REQUIRED_GAIN, choose_precision, cpu_capabilities, native_bf16
from tests.toy_clip import TOY_LABELS, write_shapes


def timer(seconds: dict[str, float], calls: list[str]):
    def time_pass(precision: str) -> float:
        calls.append(precision)
        return seconds[precision]

    return time_pass


# The decision ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "native", "seconds", "chosen"),
    [
        ("cpu", True, {"fp32": 1.0, "bf16": 0.25}, "bf16"),  # native and clearly faster
        ("cpu", True, {"fp32": 1.0, "bf16": 10.0}, "fp32"),  # native but slower (it happens)
        ("cpu", True, {"fp32": 1.0, "bf16": REQUIRED_GAIN + 0.05}, "fp32"),  # within the noise: fp32 kept
        ("mps", False, {"fp32": 1.0, "fp16": 0.5}, "fp16"),
        ("mps", False, {"fp32": 1.0, "fp16": 1.5}, "fp32"),
    ],
)
def test_auto_chooses_the_reduced_precision_only_when_the_probe_shows_it_faster(device, native, seconds, chosen):
    calls: list[str] = []
    assert choose_precision("auto", device, time_pass=timer(seconds, calls), native=lambda: native) == chosen
    assert set(calls) == set(seconds)


NO_PROBE = [("auto", "cuda", "fp16"), ("auto", "cuda:1", "fp16"), ("auto", "cpu", "fp32"), ("fp32", "cuda", "fp32"),
            ("bf16", "cpu", "bf16"), ("fp16", "cpu", "fp16")]  # fmt: skip


@pytest.mark.parametrize(("requested", "device", "chosen"), NO_PROBE)
def test_no_probe_when_nothing_needs_measuring(requested, device, chosen):
    calls: list[str] = []
    time_pass = timer({"fp32": 1.0, "bf16": 0.1, "fp16": 0.1}, calls)
    assert choose_precision(requested, device, time_pass=time_pass, native=lambda: False) == chosen
    assert calls == []  # a CPU without native bf16 is never asked to time bf16 (ten times slower there)


def test_this_cpus_capabilities_are_read():
    found = cpu_capabilities()
    assert set(found["flags"]) >= {"amx_bf16", "avx512_bf16"} and isinstance(found["mkldnn_bf16"], bool)
    without = {**found, "mkldnn_bf16": True, "flags": {**found["flags"], "amx_bf16": False, "avx512_bf16": False}}
    assert not native_bf16(without)
    assert native_bf16({**without, "flags": {**without["flags"], "avx512_bf16": True}})
    assert not native_bf16({**without, "mkldnn_bf16": False, "flags": {"amx_bf16": True}})


def test_auto_loads_fp32_on_a_cpu_without_native_bf16(tiny_clip):
    if native_bf16():
        pytest.skip("this CPU has native bf16: auto measures")
    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    assert encoder.precision == "fp32" and encoder.describe()["precision"] == "fp32"


def test_autos_choice_is_remembered_so_the_next_run_finds_the_cache(tiny_clip, tmp_path, monkeypatch):
    from smart_sorter.pipeline import precision as precision_module

    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    probes: list[str] = []
    real_choose = precision_module.choose_precision
    monkeypatch.setattr(
        precision_module, "choose_precision", lambda *a, **k: probes.append("probe") or real_choose(*a, **k)
    )
    first = DualEncoder(str(tiny_clip), device="cpu").load().precision
    key = precision_module.choice_key(str(tiny_clip), None, "cpu")
    assert precision_module.remembered_precision(key) == first and probes == ["probe"]
    assert DualEncoder(str(tiny_clip), device="cpu").load().precision == first and probes == ["probe"]  # not measured
    other = "bf16" if first == "fp32" else "fp32"
    precision_module.remember_precision(key, other)  # as a first run that timed the race the other way
    again = DualEncoder(str(tiny_clip), device="cpu").load()
    assert again.precision == other and again.describe()["precision"] == other and probes == ["probe"]
    assert DualEncoder(str(tiny_clip), device="cpu", precision=first).load().precision == first  # asked: obeyed


def test_a_home_that_cannot_be_written_only_means_measuring_again(tiny_clip, tmp_path, monkeypatch):
    from smart_sorter.pipeline import precision as precision_module

    (tmp_path / "home").write_text("a file where the folder would be")
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    assert DualEncoder(str(tiny_clip), device="cpu").load().precision in ("fp32", "bf16")
    assert precision_module.remembered_precision(precision_module.choice_key(str(tiny_clip), None, "cpu")) is None
    (tmp_path / "home").unlink()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / precision_module.CHOICES_FILE_NAME).write_text("{not json")
    assert DualEncoder(str(tiny_clip), device="cpu").load().precision in ("fp32", "bf16")  # rewritten whole
    assert precision_module.remembered_precision(precision_module.choice_key(str(tiny_clip), None, "cpu"))


# Options ----------------------------------------------------------------------------------------
def test_precision_is_an_option_and_exact_preprocessing_implies_fp32():
    assert SortOptions().precision == "auto" and SortOptions(precision="bf16").model_precision == "bf16"
    assert SortOptions(preprocess="exact").model_precision == "fp32"
    with pytest.raises(OptionError, match="precision must be one of auto, fp32, bf16, fp16"):
        SortOptions(precision="int8")
    with pytest.raises(OptionError, match="needs fp32"):
        SortOptions(preprocess="exact", precision="bf16")


def test_the_command_line_takes_a_precision():
    from smart_sorter.cli.sorting import build_parser, options_from

    arguments = build_parser().parse_args(["--source", "s", "--destination", "d", "--labels", "a,b",
                                           "--precision", "fp16"])  # fmt: skip
    assert options_from(arguments).precision == "fp16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--source", "s", "--destination", "d", "--labels", "a", "--precision", "int8"])


def test_the_precision_is_part_of_the_cache_key_and_fp32_keeps_the_old_key():
    model = {"id": "org/model", "revision": "abc"}
    assert model_key({**model, "precision": "fp32"}, "fast") == model_key(model, "fast") == "org/model@abc#fast"
    keys = {model_key({**model, "precision": precision}, "fast") for precision in ("fp32", "bf16", "fp16")}
    assert len(keys) == 3


# Reduced precisions, forced on this CPU ----------------------------------------------------------
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precisions_sort_as_fp32_does(toy_clip, tmp_path, precision):
    write_shapes(tmp_path / "shapes", 16, seed=5)
    tables = {}
    for name in ("fp32", precision):
        result = sort_images(tmp_path / "shapes", tmp_path / name, list(TOY_LABELS), model=str(toy_clip),
                             precision=name, progress_bar=False, top_k=4)  # fmt: skip
        tables[name] = result.table.set_index("file").sort_index()
        manifest = pd.read_json(result.manifest_path, typ="series")
        assert manifest["model"]["precision"] == name  # recorded in the manifest
    fp32, reduced = tables["fp32"], tables[precision]
    assert (fp32["label"] == reduced["label"]).all()
    assert np.abs(fp32["score"] - reduced["score"]).max() < 0.05
    assert fp32["score"].max() > 0.5  # the toy model is confident, so agreement means something


def test_the_text_tower_stays_fp32_when_images_run_in_bf16(tiny_clip):
    import torch

    encoder = DualEncoder(str(tiny_clip), device="cpu", precision="bf16").load()
    network = encoder.network
    assert network.vision_model.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    assert network.text_model.embeddings.token_embedding.weight.dtype == torch.float32
    full = DualEncoder(str(tiny_clip), device="cpu", precision="fp32").load()
    assert np.array_equal(encoder.embed_texts(["a cat"]), full.embed_texts(["a cat"]))


# Text-only loading -------------------------------------------------------------------------------
def test_the_text_tower_alone_embeds_texts_as_the_whole_model(tiny_clip):
    text_only = DualEncoder(str(tiny_clip), device="cpu", precision="fp32", towers="text").load()
    assert not text_only.has_image_tower and text_only.network.vision_model is None
    whole = DualEncoder(str(tiny_clip), device="cpu", precision="fp32").load()
    prompts = ["This is a photo of a cat.", "a dog"]
    assert np.array_equal(text_only.embed_texts(prompts), whole.embed_texts(prompts))
    assert text_only.head == whole.head and text_only.describe() == whole.describe()
    pixels = whole.image_processor(images=[np.zeros((40, 40, 3), np.uint8)], return_tensors="pt")["pixel_values"]
    assert np.allclose(text_only.embed_images(pixels), whole.embed_images(pixels), atol=1e-6)  # loads the rest
    assert text_only.has_image_tower


def test_a_fully_cached_resort_never_builds_the_image_tower(toy_clip, tmp_path, monkeypatch):
    from smart_sorter.pipeline import encoder as encoder_module
    from smart_sorter.runs.resorting import resort

    write_shapes(tmp_path / "shapes", 12, seed=7)
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    sort_images(tmp_path / "shapes", tmp_path / "out", list(TOY_LABELS), model=str(toy_clip), progress_bar=False)
    loaded = []
    original = encoder_module.load_model_parts

    def spy(model, **options):
        parts = original(model, **options)
        loaded.append(parts[0].vision_model is not None)
        return parts

    monkeypatch.setattr(encoder_module, "load_model_parts", spy)
    result = resort(tmp_path / "out", ["blue square", "red circle", "green triangle", "yellow cross"])
    assert loaded == [False]  # one load, of the text tower alone
    assert result.moved == 0 and result.unchanged == 12

    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "empty-home"))  # nothing cached: images embedded
    loaded.clear()
    result = resort(tmp_path / "out", list(TOY_LABELS))
    assert loaded == [False, True]  # the text tower first, then the whole model when an image was missing
    assert result.unchanged == 12


def test_load_encoder_keeps_the_whole_model_for_text_only_with_a_precision_to_measure(tiny_clip, monkeypatch):
    from smart_sorter.pipeline import encoder as encoder_module

    monkeypatch.setattr(encoder_module, "_auto_is_known", lambda device: False)  # as on a CPU with native bf16
    encoder = load_encoder(str(tiny_clip), device="cpu", towers="text")
    assert encoder.has_image_tower


# The estimate --------------------------------------------------------------------------------------
def test_a_run_of_over_a_minute_is_given_an_estimate():
    from smart_sorter.runs.sorting import speed_estimate

    assert speed_estimate(7.0, 5000) == "About 12 minutes for 5,000 files at 7.0 files/s."
    assert speed_estimate(2.0, 150) == "About 75 seconds for 150 files at 2.0 files/s."
    assert speed_estimate(0.5, 10_000) == "About 5.6 hours for 10,000 files at 0.5 files/s."
    assert speed_estimate(10.0, 500) == ""  # under a minute: no note


def test_the_estimate_is_a_note_after_the_first_batch(tiny_clip, tmp_path):
    from smart_sorter.runs.sorting import Sorter

    notes: list[str] = []
    sorter = Sorter(SortOptions(model=str(tiny_clip), device="cpu"), notify=notes.append, progress_bar=False)
    sorter._advise_on_speed(4, 2.0, 400)  # 2 files/s: 200 seconds
    assert notes == ["About 3 minutes for 400 files at 2.0 files/s."]
    sorter._advise_on_speed(4, 2.0, 2000)  # over ten minutes on a CPU: and what would be faster
    assert notes[-1].startswith("About 17 minutes for 2,000 files") and "GPU" in notes[-1]


# Threads ---------------------------------------------------------------------------------------
def test_the_command_line_lets_idle_model_threads_sleep_before_torch_loads():
    import os
    import subprocess
    import sys

    code = (
        "import os, sys; from smart_sorter.cli import main; assert 'torch' not in sys.modules\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    found = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert found.stdout.strip().splitlines()[-1] == "PASSIVE"
    found = subprocess.run([sys.executable, "-c", code], env={**environment, "OMP_WAIT_POLICY": "ACTIVE"},
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.strip().splitlines()[-1] == "ACTIVE"  # the user's own choice is kept


def test_the_wait_policy_is_left_alone_once_torch_is_loaded(monkeypatch):
    import sys

    from smart_sorter.pipeline.cpu_threads import let_idle_threads_sleep

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch", object()))
    assert not let_idle_threads_sleep()  # OpenMP has read its settings: changing them would only mislead
    assert "OMP_WAIT_POLICY" not in __import__("os").environ


def test_durations_are_said_in_words_with_the_right_number():
    from smart_sorter.runs.outcome import spoken_duration

    assert [spoken_duration(s) for s in (0.2, 1.4, 45, 119.4)] == ["1 second", "1 second", "45 seconds", "119 seconds"]
    assert (spoken_duration(600), spoken_duration(4 * 3600)) == ("10 minutes", "4.0 hours")


@pytest.mark.parametrize(
    ("device", "precision", "cores", "threads"),
    [
        ("cpu", "fp32", 2, 2),
        ("cpu", "bf16", 2, 2),
        ("cpu", "fp32", 16, 4),
        ("cpu", "bf16", 16, 8),
        ("cpu", "fp16", 16, 8),
        ("cuda:0", "fp16", 2, 2),
        ("cuda:0", "fp16", 16, 16),
    ],
)
def test_decoding_threads_follow_the_device_the_precision_and_the_cores(monkeypatch, device, precision, cores, threads):
    from smart_sorter.runs.sorting import Sorter

    class Loaded:  # the two things the rule reads of a loaded encoder
        def __init__(self):
            self.device, self.precision = device, precision

        def load(self):
            return self

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert Sorter(SortOptions(), encoder=Loaded()).decode_workers() == threads
    assert Sorter(SortOptions(decode_workers=3), encoder=Loaded()).decode_workers() == 3


@pytest.mark.parametrize("model", ["tiny_clip", "tiny_siglip"])
def test_the_probe_times_copies_of_the_first_layers_and_leaves_the_model_as_it_was(model, request, monkeypatch):
    import torch

    from smart_sorter.pipeline import precision
    from smart_sorter.pipeline.encoder import load_model_parts

    network = load_model_parts(str(request.getfixturevalue(model)))[0]
    before = {name: value.clone() for name, value in network.state_dict().items()}
    shapes = []
    monkeypatch.setattr(precision, "_tower_pass_timer", lambda *arguments: pytest.fail("the whole tower was timed"))
    layer = network.vision_model.encoder.layers[0]
    original = type(layer).forward
    monkeypatch.setattr(type(layer), "forward", lambda self, hidden, *rest, **options: (
        shapes.append((tuple(hidden.shape), hidden.dtype)) or original(self, hidden, *rest, **options)))  # fmt: skip
    timer = precision.image_pass_timer(network, 32, "cpu")
    assert timer("fp32") > 0 and timer("bf16") > 0
    tokens = (32 // network.config.vision_config.patch_size) ** 2 + 1
    rows = {shape[0] * shape[1] for shape, _ in shapes[1:]}  # after the one-row call that checks the signature
    assert min(rows) >= precision.PROBE_ROWS and min(rows) < precision.PROBE_ROWS + tokens
    assert {dtype for _, dtype in shapes[1:]} == {torch.float32, torch.bfloat16}
    assert all(torch.equal(value, before[name]) for name, value in network.state_dict().items())
