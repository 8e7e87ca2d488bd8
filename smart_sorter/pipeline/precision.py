"""The number format the image tower runs in: the fastest one that stays faithful on this machine.

`auto` means fp16 on a CUDA GPU. On a CPU, bf16 only where the CPU computes it natively (AMX or
AVX512-BF16) *and* a short probe at load shows it faster than fp32 on the loaded model: on a CPU
without native bf16 it runs about ten times slower, and even with it only a measurement tells.
Apple's MPS is measured the same way (fp16 against fp32). The text tower always stays fp32: label
texts are embedded once per run, so its speed does not matter and its precision keeps scores close.

A measured choice is remembered per model, device, CPU and torch version (`precision-choices.json`
beside the embedding cache): two runs timing a close race could choose differently, and the cache
keeps embeddings per precision, so the second would find none of the first's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# a reduced precision must be clearly faster to be chosen: within the probe's noise, fp32 is kept
REQUIRED_GAIN = 0.8
# The probe times the tower's first encoder layers on as many token rows as a real batch feeds them: two
# ViT-B/32 images (100 rows) are too few, where oneDNN's bf16 set-up outweighs its speed and fp32 won
# one load in two on a CPU where a batch of 32 runs twice as fast in bf16.
PROBE_ROWS = 1024  # token rows per probe pass (1,600 in a batch of 32 ViT-B/32 images)
PROBE_LAYERS = 2  # encoder layers timed: the ratio is each layer's, and two are a fraction of the tower
PROBE_BATCH = 2  # images per pass when the tower has no encoder layers to time (the whole tower runs)
PROBE_PASSES = 3  # timed passes per precision, best kept, after one warm-up pass
_CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2")
CHOICES_FILE_NAME = "precision-choices.json"


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_of(dtype: Any) -> str:
    """The precision name of a torch dtype (float32 -> fp32)."""
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(dtype).replace("torch.", ""), "fp32")


@lru_cache(maxsize=1)
def cpu_capabilities() -> dict[str, Any]:
    """What this CPU offers the model: its name, cores, the relevant flags, oneDNN's bf16 support."""
    import os

    import torch

    flags: set[str] = set()
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.partition(":")[2].split())
            elif line.startswith("model name") and not name:
                name = line.partition(":")[2].strip()
    except OSError:  # not Linux: the flags are unknown, oneDNN still answers
        pass
    try:
        mkldnn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn_bf16 = False
    return {
        "name": name,
        "cores": os.cpu_count(),
        "flags": {flag: flag in flags for flag in _CPU_FLAGS},
        "mkldnn_bf16": mkldnn_bf16,
    }


def native_bf16(capabilities: dict[str, Any] | None = None) -> bool:
    """Whether the CPU computes bf16 in hardware (oneDNN agrees and AMX or AVX512-BF16 is there)."""
    found = capabilities or cpu_capabilities()
    flags = found["flags"]
    return bool(found["mkldnn_bf16"] and (flags.get("amx_bf16") or flags.get("avx512_bf16")))


def choose_precision(
    requested: str,
    device: str,
    *,
    time_pass: Callable[[str], float],
    native: Callable[[], bool] = native_bf16,
) -> str:
    """The precision to run the image tower in.

    `time_pass(precision)` returns the seconds one forward pass takes in that precision on the
    loaded model; it is called only when a choice needs measuring. `native()` tells whether this
    CPU has bf16 in hardware.
    """
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "fp16"
    if device.startswith("mps"):
        candidate = "fp16"
    elif native():
        candidate = "bf16"
    else:
        return "fp32"
    reference = time_pass("fp32")
    return candidate if time_pass(candidate) < REQUIRED_GAIN * reference else "fp32"


def choice_key(model_id: str, revision: str | None, device: str) -> str:
    """What a measured choice holds for: the model and revision, the device, this CPU and torch's version."""
    import torch

    return f"{model_id}@{revision or ''}|{device}|{cpu_capabilities()['name']}|torch {torch.__version__}"


def _choices_path() -> Path:
    from .embedding_cache import cache_home

    return cache_home() / CHOICES_FILE_NAME


def _read_choices() -> dict[str, str]:
    try:
        choices = json.loads(_choices_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measured again
    return choices if isinstance(choices, dict) else {}


def remembered_precision(key: str) -> str | None:
    """The precision `auto` chose before for `key`, if it was remembered."""
    choice = _read_choices().get(key)
    return choice if choice in PRECISIONS[1:] else None


def remember_precision(key: str, precision: str) -> None:
    """Keep `auto`'s choice for `key` (written whole under a new name, then renamed); a folder that cannot be
    written only means the next run measures again."""
    path = _choices_path()
    choices = {**_read_choices(), key: precision}
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(choices, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def vision_modules(network: Any) -> list[str]:
    """Names of the network's children that make up its image tower (vision_model, visual_projection)."""
    return [name for name, _ in network.named_children() if "vision" in name or "visual" in name]


def set_image_precision(network: Any, precision: str) -> None:
    """Cast the image tower to `precision` in place; the text tower and the logit scale stay as they are.

    A network whose image tower has no recognisable name is cast whole."""
    dtype = torch_dtype(precision)
    names = vision_modules(network)
    if not names:
        network.to(dtype=dtype)
    for name in names:
        getattr(network, name).to(dtype=dtype)


def image_pass_timer(network: Any, image_size: int, device: Any) -> Callable[[str], float]:
    """A `time_pass` for `choose_precision` on the loaded network's image tower: copies of its first
    encoder layers on `PROBE_ROWS` token rows when it has such layers, else the whole tower on
    `PROBE_BATCH` images. Reduced precisions are timed on copies, so the fp32 weights stay."""
    return _layer_pass_timer(network, image_size, device) or _tower_pass_timer(network, image_size, device)


def _best_of_passes(run: Callable[[], Any], device: Any) -> float:
    import torch

    timings = []
    with torch.inference_mode():
        for _ in range(1 + PROBE_PASSES):
            started = time.perf_counter()
            run()
            if str(device).startswith("mps"):
                torch.mps.synchronize()
            timings.append(time.perf_counter() - started)
    return min(timings[1:])


def _layer_pass_timer(network: Any, image_size: int, device: Any) -> Callable[[str], float] | None:
    """Timing the first encoder layers of a ViT-like tower, or None when it has none to time."""
    import torch

    from .streamlining import layer_output

    config = getattr(network.config, "vision_config", None)
    layers = getattr(getattr(getattr(network, "vision_model", None), "encoder", None), "layers", None)
    width, patch = getattr(config, "hidden_size", None), getattr(config, "patch_size", None)
    if not layers or not width or not patch:
        return None
    tokens = (image_size // patch) ** 2 + 1
    batch = max(1, -(-PROBE_ROWS // tokens))
    hidden = torch.randn(batch, tokens, width, generator=torch.Generator().manual_seed(0)).to(device)
    probe = layers[:PROBE_LAYERS]
    try:
        with torch.inference_mode():
            layer_output(probe[0](hidden[:1], None))  # a layer that cannot be called so: the whole tower
    except Exception:  # noqa: BLE001 - any other signature
        return None

    def time_pass(precision: str) -> float:
        copies = [copy.deepcopy(layer).to(dtype=torch_dtype(precision)) for layer in probe]
        states = hidden.to(torch_dtype(precision))

        def run() -> None:
            values = states
            for layer in copies:
                values = layer_output(layer(values, None))

        return _best_of_passes(run, device)

    return time_pass


def _tower_pass_timer(network: Any, image_size: int, device: Any) -> Callable[[str], float]:
    import torch

    pixels = torch.rand(PROBE_BATCH, 3, image_size, image_size, device=device)

    def time_pass(precision: str) -> float:
        probe = network
        if precision != "fp32" and not vision_modules(network):
            probe = copy.deepcopy(network)
            set_image_precision(probe, precision)
        elif precision != "fp32":
            probe = copy.copy(network)  # shares the text tower; the image tower is copied
            probe._modules = dict(network._modules)
            for name in vision_modules(network):
                probe._modules[name] = copy.deepcopy(network._modules[name])
            set_image_precision(probe, precision)
        dtype = torch_dtype(precision)
        return _best_of_passes(lambda: probe.get_image_features(pixel_values=pixels.to(dtype)), device)

    return time_pass
