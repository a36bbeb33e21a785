"""Shared machinery of the learned cover generators (torch).

Everything the diffusion model, VAE-IAT, the DCGAN baseline and the cover encoder have in
common lives here, so that each model file holds only its architecture and its losses:

* **devices** -- :func:`resolve_device` picks ``cuda`` when it is available, else the CPU;
* **style conditioning** -- :func:`style_weights` turns a style given by name, index, a list of
  either, or a mixture of styles into one ``(n, n_styles)`` weight matrix (one-hot rows for
  plain styles), the one conditioning format every generator takes;
* **image conversion** -- :func:`images_to_tensor` (uint8 ``(n, H, W, C)`` to float
  ``(n, C, H, W)`` in [-1, 1]) and :func:`tensor_to_images` (back, always 3 channels);
* **the generator interface** -- :class:`CoverGenerator`: ``sample(style, n, *, generator)``
  returning uint8 ``(n, H, W, 3)`` numpy images, plus ``save_pretrained`` /
  ``from_pretrained`` on local folders (safetensors weights beside a JSON config);
* **resumable training** -- :func:`run_training`, a step loop with a tqdm progress bar and
  checkpoints (safetensors weights, optimizer and RNG state through :func:`torch.save`, loaded
  back with ``torch.load(..., weights_only=True)``, and a JSON file with the configs, the step
  and the loss history). The order of the training batches is a pure function of the seed and
  the step (:func:`batch_indices`) and every other random draw goes through explicit
  ``torch.Generator`` objects whose states are checkpointed, so interrupting a run after ``k``
  steps and resuming it gives the same weights as an uninterrupted run with the same seed.

The training command, ``covercast generators train MODEL --out DIR ...``, lives with the other
generator commands in :mod:`covercast.experiments.generators_cli` (it imports every model, and every model
imports this module).

Checkpoints and saved models are refused with a :class:`CheckpointError` (a ``ValueError``)
when a file is missing, corrupt (its SHA-256 differs from the one recorded when it was
written), of another model kind, or made with another configuration -- before any work starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from covercast._io import atomic_write, atomic_write_text, check_int, sha256_file

#: Version of the checkpoint and saved-model folder layouts written by this module.
FORMAT_VERSION = 1
#: File names inside a saved-model folder (see :meth:`CoverGenerator.save_pretrained`).
MODEL_CONFIG_FILE = "covercast_model.json"
MODEL_WEIGHTS_FILE = "model.safetensors"
#: File names inside a training checkpoint folder (see :func:`save_checkpoint`).
CHECKPOINT_META_FILE = "checkpoint.json"

StyleSpec = str | int | Sequence[str] | Sequence[int] | np.ndarray | torch.Tensor
"""A style request: a name, an index, one name or index per sample, or mixture weights
``(n_styles,)`` / ``(n, n_styles)`` (non-negative rows summing to 1)."""


class CheckpointError(ValueError):
    """A checkpoint or saved model that cannot be used: corrupt, foreign or another config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint or saved-model file that does not exist."""


# ---------------------------------------------------------------------------------- devices
def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``cuda`` when available and ``device`` is ``None``/``"auto"``.

    Parameters
    ----------
    device
        ``None`` or ``"auto"`` (cuda if available, else cpu), or anything
        :class:`torch.device` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names cuda while no GPU is visible.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:<i>', got "
                         f"{device!r}.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but no CUDA GPU is visible; pass "
                         "device='cpu' or device='auto'.")
    return dev


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules with a seeded torch RNG without touching the caller's global RNG state.

    Weight initialisation in ``torch.nn`` draws from the global generator; inside this context
    the draws are a function of ``seed`` only, and the global state is restored afterwards.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def randn(shape: Sequence[int], generator: torch.Generator | None,
          device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn from ``generator`` (or torch's global RNG when ``None``).

    The draw happens on the generator's own device and is then moved to ``device``, so a CPU
    generator gives the same numbers whether the model runs on the CPU or a GPU.
    """
    gdev = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(tuple(shape), generator=generator, device=gdev).to(device)


# ---------------------------------------------------------------------------------- styles
def style_weights(style: StyleSpec, n: int, styles: Sequence[str]) -> torch.Tensor:
    """Turn a style request into float32 mixture weights of shape ``(n, n_styles)``.

    Parameters
    ----------
    style
        A style name (``"noir"``), an index (``3``), one name or index per sample (length
        ``n``), or mixture weights: ``(n_styles,)`` for every sample or ``(n, n_styles)``,
        non-negative with rows summing to 1. Plain styles become one-hot rows.
    n
        Number of samples (>= 1).
    styles
        The style names the model was trained on.

    Raises
    ------
    ValueError
        For an unknown style name, an index out of range, a list of the wrong length, or
        mixture weights that are negative, non-finite or do not sum to 1.
    """
    n = check_int(n, "n")
    k = len(styles)

    def index_of(s: Any) -> int:
        if isinstance(s, (str, np.str_)):
            if s not in styles:
                raise ValueError(f"Unknown style {str(s)!r}; this model knows {list(styles)}. "
                                 "Pass one of those names or an index in "
                                 f"[0, {k - 1}].")
            return list(styles).index(str(s))
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise ValueError(f"A style must be a name or an int index, got {s!r} "
                             f"({type(s).__name__}).")
        if not 0 <= int(s) < k:
            raise ValueError(f"Style index {int(s)} is out of range [0, {k - 1}] for styles "
                             f"{list(styles)}.")
        return int(s)

    eye = torch.eye(k, dtype=torch.float32)
    if isinstance(style, (str, np.str_, int, np.integer)) and not isinstance(style, bool):
        return eye[index_of(style)].expand(n, k).clone()
    if isinstance(style, (list, tuple)) and all(isinstance(s, (str, np.str_, int, np.integer))
                                               for s in style):
        if len(style) != n:
            raise ValueError(f"A list of styles must have one entry per sample (length {n}), "
                             f"got {len(style)} entries.")
        return eye[torch.as_tensor([index_of(s) for s in style], dtype=torch.long)]
    if isinstance(style, torch.Tensor):
        style = style.detach().cpu().numpy()
    arr = np.asarray(style)
    if arr.dtype.kind in "fc":
        w = arr.astype(np.float64)
        if w.ndim == 1:
            w = np.broadcast_to(w, (n, w.shape[0]))
        if w.shape != (n, k):
            raise ValueError(f"Style mixture weights must have shape ({k},) or ({n}, {k}) "
                             f"(samples, styles {list(styles)}), got {arr.shape}.")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("Style mixture weights must be finite and >= 0, got values in "
                             f"[{np.nanmin(w):.3g}, {np.nanmax(w):.3g}].")
        sums = w.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            bad = int(np.argmax(np.abs(sums - 1.0)))
            raise ValueError(f"Each row of style mixture weights must sum to 1; row {bad} sums "
                             f"to {sums[bad]:.6g}. Divide the weights by their row sums.")
        return torch.as_tensor(np.ascontiguousarray(w), dtype=torch.float32)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"A list of styles must have one entry per sample (length {n}), got "
                         f"shape {arr.shape}.")
    return eye[torch.as_tensor([index_of(s.item() if arr.dtype.kind in "iub" else str(s))
                                for s in arr], dtype=torch.long)]


def labels_to_weights(labels: torch.Tensor, n_styles: int) -> torch.Tensor:
    """One-hot float32 weights ``(n, n_styles)`` from integer labels ``(n,)``."""
    return nn.functional.one_hot(labels.long(), n_styles).float()


# ---------------------------------------------------------------------------------- images
def images_to_tensor(images: np.ndarray | torch.Tensor, channels: int = 3) -> torch.Tensor:
    """uint8 images ``(n, H, W, C)`` (or ``(n, H, W)``) to float32 ``(n, channels, H, W)``
    in [-1, 1].

    A grey image is repeated to 3 channels when ``channels == 3``; an RGB image is turned to
    grey (channel mean) when ``channels == 1``.

    Raises
    ------
    ValueError
        If the images are not uint8 or do not have 1 or 3 channels.
    """
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.dtype != torch.uint8:
        raise ValueError(f"Images must be uint8 in [0, 255] of shape (n, H, W, C), got dtype "
                         f"{t.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8).")
    if t.ndim == 3:
        t = t[..., None]
    if t.ndim != 4 or t.shape[-1] not in (1, 3):
        raise ValueError(f"Images must have shape (n, H, W, 1 or 3), got {tuple(t.shape)}.")
    x = t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[1] != channels:
        x = x.expand(-1, 3, -1, -1).contiguous() if channels == 3 else x.mean(1, keepdim=True)
    return x


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """Float images ``(n, C, H, W)`` in [-1, 1] to uint8 numpy ``(n, H, W, 3)``.

    Values outside [-1, 1] are clamped (generators may overshoot slightly); one channel is
    repeated to three, so every generator hands out RGB covers.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"Expected images of shape (n, 1 or 3, H, W), got {tuple(x.shape)}.")
    u8 = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    return u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def check_image_size(size: int, multiple: int, what: str) -> None:
    """Refuse an image size that is not a positive multiple of ``multiple``.

    ``what`` names the architecture in the message (e.g. ``"a UNet with 3 levels"``).
    """
    if check_int(size, "image_size") % multiple:
        lo = max(multiple, size - size % multiple)
        raise ValueError(f"`image_size` {size} cannot be taken by {what}: it must be a "
                         f"multiple of {multiple}. Use {lo} or {lo + multiple} (pad or resize "
                         "the images, e.g. `mnist_5k(size=32)`).")


def check_power_of_two_size(size: int, base: int, what: str) -> int:
    """Refuse a size that is not ``base * 2**k`` (k >= 1); returns ``k``."""
    check_int(size, "image_size")
    k = math.log2(size / base) if size >= base else -1.0
    if k < 1 or k != int(k):
        raise ValueError(f"`image_size` {size} cannot be taken by {what}: it must be "
                         f"{base} * 2**k with k >= 1 (e.g. 16, 32, 64). Pad or resize the "
                         "images to one of those sizes.")
    return int(k)


def check_dataset(dataset: Any, config: Any, model: str, batch_size: int) -> None:
    """Refuse a dataset that does not fit a model config, before any training work.

    The images must have the config's ``image_size`` and ``channels``, the dataset's class
    names must be the config's ``styles`` in the same order (labels are style indices), and
    it must hold at least ``batch_size`` images.
    """
    if len(dataset) == 0:
        raise ValueError("The training dataset is empty.")
    if batch_size > len(dataset):
        raise ValueError(f"`batch_size` {batch_size} exceeds the {len(dataset)} images; "
                         f"use batch_size <= {len(dataset)}.")
    if dataset.image_size != config.image_size:
        raise ValueError(f"The dataset has {dataset.image_size}x{dataset.image_size} images but "
                         f"the {model} config has image_size={config.image_size}; build the "
                         f"config with image_size={dataset.image_size} or fit the data to "
                         f"{config.image_size}.")
    if dataset.channels != config.channels:
        raise ValueError(f"The dataset has {dataset.channels}-channel images but the {model} "
                         f"config has channels={config.channels}; set channels="
                         f"{dataset.channels} or load the data with channels={config.channels}.")
    if list(dataset.class_names) != list(config.styles):
        raise ValueError(f"The dataset's classes {list(dataset.class_names)} differ from the "
                         f"{model} config's styles {list(config.styles)}; build the config "
                         "with styles=tuple(dataset.class_names).")


def check_styles(styles: Any) -> tuple[str, ...]:
    """A non-empty tuple of distinct style names."""
    if isinstance(styles, str):
        raise ValueError(f"`styles` must be a sequence of names, got the string {styles!r}; "
                         f"write ({styles!r},).")
    out = tuple(styles)
    if not out or not all(isinstance(s, str) and s for s in out) or len(set(out)) != len(out):
        raise ValueError(f"`styles` must be a non-empty sequence of distinct names, got "
                         f"{list(out)!r}.")
    return out


class ModelConfig:
    """Base of the generators' architecture configs (frozen dataclasses with ``styles`` and
    ``channels`` fields): :meth:`_check_common` checks what they share and :meth:`tiny` builds
    a very small model for tests from the class's :attr:`_TINY` settings."""

    _TINY: ClassVar[dict[str, Any]] = {}
    """Settings of :meth:`tiny`."""
    _TUPLES: ClassVar[tuple[str, ...]] = ()
    """Sequence fields stored as tuples."""

    def _check_common(self) -> None:
        """Make ``styles`` a checked tuple (and the :attr:`_TUPLES` fields tuples) and refuse
        ``channels`` other than 1 or 3."""
        object.__setattr__(self, "styles", check_styles(self.styles))
        for name in self._TUPLES:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, got {self.channels!r}.")

    @classmethod
    def tiny(cls, **overrides: Any) -> Any:
        """A very small model for tests (the class's :attr:`_TINY` settings, then
        ``overrides``)."""
        return cls(**{**cls._TINY, **overrides})


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------- configs
def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"Expected a dataclass config, got {type(config).__name__}.")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a dataclass config from :func:`config_to_dict` output.

    List values become tuples where the field's default is a tuple. Unknown keys raise
    :class:`CheckpointError`.
    """
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise CheckpointError(f"The saved config has fields {unknown} that {cls.__name__} does "
                              "not know; it was written by another covercast version or model.")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def config_differences(expected: Mapping[str, Any], found: Mapping[str, Any],
                       ignore: Sequence[str] = ()) -> list[str]:
    """Human-readable ``field: expected vs found`` lines for fields that differ."""
    exp = json.loads(json.dumps(dict(expected)))
    fnd = json.loads(json.dumps(dict(found)))
    out = []
    for key in sorted(set(exp) | set(fnd)):
        if key in ignore:
            continue
        if exp.get(key, "<absent>") != fnd.get(key, "<absent>"):
            out.append(f"{key}: {exp.get(key, '<absent>')!r} (asked) vs "
                       f"{fnd.get(key, '<absent>')!r} (saved)")
    return out


# ---------------------------------------------------------------------------------- files


def _flat_state(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            out[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return out


def _load_flat_state(modules: Mapping[str, nn.Module], flat: Mapping[str, torch.Tensor],
                     where: Path) -> None:
    """Load ``<module>.<key>`` tensors into the modules, after checking every name and shape
    first, so that a file that does not fit leaves all modules untouched."""
    subs: dict[str, dict[str, torch.Tensor]] = {}
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
        own = module.state_dict()
        missing = sorted(set(own) - set(sub))
        extra = sorted(set(sub) - set(own))
        shapes = [k for k in own if k in sub and tuple(own[k].shape) != tuple(sub[k].shape)]
        if missing or extra or shapes:
            detail = "; ".join(f"{label} {keys[:3]}{' ...' if len(keys) > 3 else ''}"
                               for label, keys in (("missing", missing), ("unexpected", extra),
                                                   ("other shapes", shapes)) if keys)
            raise CheckpointError(f"The weights in {where} do not fit {name!r} ({detail}); "
                                  "the file was written for another model or config.")
        subs[name] = sub
    for name, module in modules.items():
        module.load_state_dict(subs[name], strict=True)


def _check_optimizer_state(opt: torch.optim.Optimizer, state: Mapping[str, Any], name: str,
                           where: Path) -> None:
    groups = state.get("param_groups", [])
    ours = [len(g["params"]) for g in opt.param_groups]
    theirs = [len(g.get("params", [])) for g in groups]
    if ours != theirs:
        raise CheckpointError(f"The optimizer state {name!r} in {where} has parameter groups of "
                              f"sizes {theirs}, this model's have {ours}; the checkpoint was "
                              "written for another model.")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointNotFoundError(f"No {what} at {path}: the file is missing. Point to a "
                                      "folder written by covercast, or train the model first.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); delete it and retrain, or restore "
                              "a good copy.") from e
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a covercast {what} of format {FORMAT_VERSION} "
                              f"(found format {data.get('format_version') if isinstance(data, dict) else None!r}).")
    return data


def _checked_file(folder: Path, name: str, sha: str | None) -> Path:
    path = folder / name
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path} is missing: the folder {folder} is incomplete. "
                                      "Restore the file or retrain.")
    if sha is not None and sha256_file(path) != sha:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 differs from the one recorded "
                              "when it was written. Restore the file or retrain.")
    return path


def _load_safetensors(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); restore it or "
                              "retrain.") from e


def save_model_folder(path: str | os.PathLike, kind: str, config: Mapping[str, Any],
                      modules: Mapping[str, nn.Module], extra: Mapping[str, Any] | None = None
                      ) -> Path:
    """Save weights (safetensors) and config (JSON) of a model in a folder, atomically per file.

    The JSON records the SHA-256 of the weights file and is written last, so a folder whose
    write was interrupted is detected as corrupt when loaded.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    flat = _flat_state(modules)
    atomic_write(folder / MODEL_WEIGHTS_FILE,
                  lambda tmp: save_file(flat, tmp, metadata={"kind": kind}))
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": dict(config),
            "sha256": {MODEL_WEIGHTS_FILE: sha256_file(folder / MODEL_WEIGHTS_FILE)},
            **(dict(extra) if extra else {})}
    atomic_write_text(folder / MODEL_CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True))
    return folder


def read_model_folder(path: str | os.PathLike, kind: str,
                      expected_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read and check the JSON of a saved-model folder; returns its metadata dict.

    Raises
    ------
    CheckpointNotFoundError
        If the folder or one of its files is missing.
    CheckpointError
        If the JSON is corrupt, the folder holds another kind of model, or its config differs
        from ``expected_config``.
    """
    folder = Path(path)
    meta = _read_json(folder / MODEL_CONFIG_FILE, f"saved {kind} model")
    if meta.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a {meta.get('kind')!r} model, not {kind!r}; "
                              f"load it with the {meta.get('kind')!r} class instead.")
    if expected_config is not None:
        diff = config_differences(expected_config, meta.get("config", {}))
        if diff:
            raise CheckpointError(f"{folder} was saved with another config: "
                                  + "; ".join(diff)
                                  + ". Load it without `config=` to use its own config, or "
                                  "point to a model saved with this one.")
    return meta


def load_model_weights(path: str | os.PathLike, meta: Mapping[str, Any],
                       modules: Mapping[str, nn.Module], device: torch.device) -> None:
    """Load the safetensors weights of a saved-model folder into ``modules`` (checked)."""
    folder = Path(path)
    file = _checked_file(folder, MODEL_WEIGHTS_FILE,
                         meta.get("sha256", {}).get(MODEL_WEIGHTS_FILE))
    _load_flat_state(modules, _load_safetensors(file, device), file)


# ---------------------------------------------------------------------------------- checkpoints
@dataclass
class CheckpointState:
    """What :func:`load_checkpoint` hands back besides the weights it loads in place."""

    step: int
    """Number of training steps completed when the checkpoint was written."""
    history: list[dict[str, float]]
    """Per-step metrics up to ``step``."""
    path: Path
    """The checkpoint folder."""


def save_checkpoint(folder: str | os.PathLike, *, kind: str, model_config: Mapping[str, Any],
                    train_config: Mapping[str, Any], step: int,
                    modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer],
                    generators: Mapping[str, torch.Generator],
                    history: Sequence[Mapping[str, float]]) -> Path:
    """Write a resumable training checkpoint into ``folder``; returns the folder.

    Layout: ``weights-<step>.safetensors`` (all modules, keys ``<module>.<param>``),
    ``state-<step>.pt`` (optimizer state dicts and RNG states, :func:`torch.save`) and
    ``checkpoint.json`` (kind, configs, step, history, file names and their SHA-256). The JSON
    is written last and atomically and the previous step's files are removed only afterwards,
    so an interrupted write leaves the previous checkpoint intact.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wname, sname = f"weights-{step:08d}.safetensors", f"state-{step:08d}.pt"
    flat = _flat_state(modules)
    atomic_write(folder / wname, lambda tmp: save_file(flat, tmp, metadata={"kind": kind}))
    state = {"optimizers": {k: o.state_dict() for k, o in optimizers.items()},
             "rng": {k: g.get_state() for k, g in generators.items()}}
    atomic_write(folder / sname, lambda tmp: torch.save(state, tmp))
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "step": int(step),
            "model_config": dict(model_config), "train_config": dict(train_config),
            "files": {"weights": wname, "state": sname},
            "sha256": {wname: sha256_file(folder / wname), sname: sha256_file(folder / sname)},
            "history": [dict(h) for h in history]}
    atomic_write_text(folder / CHECKPOINT_META_FILE, json.dumps(meta))
    for old in list(folder.glob("weights-*.safetensors")) + list(folder.glob("state-*.pt")):
        if old.name not in (wname, sname):
            old.unlink()
    return folder


def has_checkpoint(folder: str | os.PathLike | None) -> bool:
    """Whether ``folder`` holds a checkpoint (its JSON exists; validity is checked on load)."""
    return folder is not None and (Path(folder) / CHECKPOINT_META_FILE).is_file()


def load_checkpoint(folder: str | os.PathLike, *, kind: str, model_config: Mapping[str, Any],
                    train_config: Mapping[str, Any], modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer],
                    generators: Mapping[str, torch.Generator], device: torch.device,
                    resume_free: Sequence[str] = ("steps",)) -> CheckpointState:
    """Load a checkpoint written by :func:`save_checkpoint` into live objects, after checks.

    The model config must match exactly; the training config must match except for the
    fields in ``resume_free`` (by default only the total number of ``steps``, so a finished run
    can be continued). Nothing is modified when a check fails.

    Raises
    ------
    CheckpointNotFoundError
        If the folder or one of its files is missing.
    CheckpointError
        If a file is corrupt, the checkpoint is of another model kind, or a config differs.
    """
    folder = Path(folder)
    meta = _read_json(folder / CHECKPOINT_META_FILE, "training checkpoint")
    if meta.get("kind") != kind:
        raise CheckpointError(f"{folder} is a checkpoint of a {meta.get('kind')!r} model, not "
                              f"{kind!r}; use another checkpoint folder.")
    diff = config_differences(model_config, meta.get("model_config", {}))
    if diff:
        raise CheckpointError(f"The checkpoint in {folder} was written for another model "
                              "config: " + "; ".join(diff) + ". Use the config it was "
                              "trained with, or another `checkpoint_dir`.")
    diff = config_differences(train_config, meta.get("train_config", {}), ignore=resume_free)
    if diff:
        raise CheckpointError(f"The checkpoint in {folder} was written with another training "
                              "config: " + "; ".join(diff) + ". Resuming would not reproduce "
                              "that run; use the same config or another `checkpoint_dir` "
                              "(or resume=False to start over).")
    shas = meta.get("sha256", {})
    files = meta.get("files", {})
    wfile = _checked_file(folder, files.get("weights", ""), shas.get(files.get("weights")))
    sfile = _checked_file(folder, files.get("state", ""), shas.get(files.get("state")))
    flat = _load_safetensors(wfile, device)
    try:
        state = torch.load(sfile, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for a bad pickle/zip
        raise CheckpointError(f"{sfile} is not a readable optimizer/RNG state ({e}); restore "
                              "it or restart training with resume=False.") from e
    missing = [k for k in optimizers if k not in state.get("optimizers", {})]
    missing += [k for k in generators if k not in state.get("rng", {})]
    if missing:
        raise CheckpointError(f"{sfile} lacks the state of {missing}; it was written for "
                              "another model.")
    for k, opt in optimizers.items():
        _check_optimizer_state(opt, state["optimizers"][k], k, sfile)
    _load_flat_state(modules, flat, wfile)
    for k, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][k])
    for k, g in generators.items():
        g.set_state(state["rng"][k].to("cpu"))
    return CheckpointState(step=int(meta["step"]), history=list(meta.get("history", [])),
                           path=folder)


# ---------------------------------------------------------------------------------- training
def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the training batch of ``step``: a pure function of ``(n, batch_size, step, seed)``.

    Epoch ``e`` is a permutation of ``range(n)`` drawn from a generator seeded with
    ``(seed, e)``; it is cut into ``n // batch_size`` batches (the remainder is dropped) and
    step ``s`` reads batch ``s mod (n // batch_size)`` of epoch ``s // (n // batch_size)``.
    Resuming at any step therefore reads exactly the batches an uninterrupted run reads.
    """
    if batch_size > n:
        raise ValueError(f"`batch_size` {batch_size} is larger than the dataset ({n} images); "
                         f"use batch_size <= {n} or a larger dataset.")
    per_epoch = n // batch_size
    epoch, pos = divmod(int(step), per_epoch)
    ss = np.random.SeedSequence([int(seed), 0x5EED, epoch])
    g = torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] >> 1))
    perm = torch.randperm(n, generator=g)
    return perm[pos * batch_size:(pos + 1) * batch_size]


def set_learning_rate(optimizer: torch.optim.Optimizer, base_lr: float, step: int,
                      warmup_steps: int) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then constant; returns the rate.

    A pure function of the step (no scheduler state to checkpoint).
    """
    lr = base_lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else base_lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


@dataclass
class TrainResult:
    """The outcome of a training run."""

    history: list[dict[str, float]]
    """One dict of metrics per completed step (``step`` plus the step function's values)."""
    steps_done: int
    """Training steps completed in total (including those of a resumed checkpoint)."""
    stopped_early: bool = False
    """True when a callback stopped the run before ``steps``."""
    checkpoint: Path | None = None
    """The checkpoint folder, when one was written."""
    resumed_from: int = 0
    """The step the run resumed from (0 for a fresh run)."""

    def metric(self, name: str) -> np.ndarray:
        """The values of one metric over the steps where it was recorded."""
        known = sorted({k for h in self.history for k in h})
        if name not in known:
            raise ValueError(f"Unknown metric {name!r}; this run recorded {known}.")
        return np.array([h[name] for h in self.history if name in h], dtype=float)


def run_training(*, kind: str, model_config: Mapping[str, Any], train_config: Mapping[str, Any],
                 modules: Mapping[str, nn.Module],
                 optimizers: Mapping[str, torch.optim.Optimizer],
                 generators: Mapping[str, torch.Generator],
                 step_fn: Callable[[int], Mapping[str, float]], total_steps: int,
                 device: torch.device, checkpoint_dir: str | os.PathLike | None = None,
                 checkpoint_every: int = 0, resume: bool = True, progress: bool = True,
                 callback: Callable[[int, Mapping[str, float]], bool | None] | None = None,
                 resume_free: Sequence[str] = ("steps",), desc: str | None = None
                 ) -> TrainResult:
    """Run ``step_fn(step)`` for ``step`` in ``[start, total_steps)`` with checkpoints.

    Parameters
    ----------
    kind, model_config, train_config
        Written into checkpoints and compared on resume.
    modules, optimizers, generators
        Everything whose state a step changes: weights (incl. EMA copies), optimizer states
        and the ``torch.Generator`` objects the step draws from.
    step_fn
        Does one optimisation step and returns its metrics (floats). Every metric must be
        finite; a NaN or inf stops training with ``FloatingPointError`` naming the step.
    total_steps
        Steps of the whole run (a resumed run continues up to it).
    checkpoint_dir, checkpoint_every
        Write a checkpoint every ``checkpoint_every`` steps (0: only at the end) and at the
        end into ``checkpoint_dir`` (``None``: no checkpoints).
    resume
        Continue from the checkpoint in ``checkpoint_dir`` if there is one (after checking it
        belongs to this kind and config); ``False`` starts over and overwrites it.
    progress
        Show a tqdm progress bar with the latest metrics.
    callback
        ``callback(step, metrics)`` after each step; returning ``False`` stops the run (a
        checkpoint is written first when ``checkpoint_dir`` is set), like a graceful interrupt.
    """
    check_int(total_steps, "steps", 0)
    check_int(checkpoint_every, "checkpoint_every", 0)
    start, history, resumed_from = 0, [], 0
    if resume and has_checkpoint(checkpoint_dir):
        ck = load_checkpoint(checkpoint_dir, kind=kind, model_config=model_config,
                             train_config=train_config, modules=modules, optimizers=optimizers,
                             generators=generators, device=device, resume_free=resume_free)
        start, history, resumed_from = ck.step, ck.history, ck.step
        if start > total_steps:
            raise ValueError(f"The checkpoint in {checkpoint_dir} is at step {start}, past "
                             f"`steps`={total_steps}; ask for steps >= {start}.")

    def checkpoint(step: int) -> Path | None:
        if checkpoint_dir is None:
            return None
        return save_checkpoint(checkpoint_dir, kind=kind, model_config=model_config,
                               train_config=train_config, step=step, modules=modules,
                               optimizers=optimizers, generators=generators, history=history)

    written: Path | None = None
    written_step = start if resumed_from else -1
    stopped = False
    bar = tqdm(total=total_steps, initial=start, desc=desc or f"train {kind}",
               disable=not progress, dynamic_ncols=True, leave=False)
    step = start
    try:
        while step < total_steps:
            metrics = {k: float(v) for k, v in step_fn(step).items()}
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"Training {kind} diverged at step {step}: "
                                         f"{ {k: metrics[k] for k in bad} }. Lower the learning "
                                         "rate, or resume from the last checkpoint.")
            history.append({"step": step, **metrics})
            step += 1
            bar.update(1)
            if progress:
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(metrics.items())[:4]})
            if checkpoint_every and step % checkpoint_every == 0 and step < total_steps:
                written, written_step = checkpoint(step), step
            if callback is not None and callback(step - 1, metrics) is False:
                stopped = step < total_steps
                break
    finally:
        bar.close()
    if checkpoint_dir is not None and written_step != step:
        written = checkpoint(step)
    elif checkpoint_dir is not None and written is None:
        written = Path(checkpoint_dir)
    return TrainResult(history=history, steps_done=step, stopped_early=stopped,
                       checkpoint=written, resumed_from=resumed_from)


# ---------------------------------------------------------------------------------- base class
class CoverGenerator(nn.Module):
    """Base class of the learned cover generators: conditioning, batching, saving.

    Subclasses set :attr:`kind` and :attr:`config_class`, build their modules from
    ``self.config`` and implement :meth:`_generate` (float images in [-1, 1] from style
    weights); :meth:`sample` does the rest. Weights are saved by :meth:`save_pretrained` as
    safetensors beside a JSON config and loaded by :meth:`from_pretrained`, which compares
    configs when one is given.
    """

    kind: ClassVar[str] = "generator"
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    # ---- to implement
    def _generate(self, weights: torch.Tensor, generator: torch.Generator | None,
                  **kwargs: Any) -> torch.Tensor:
        """Images ``(n, C, H, W)`` in [-1, 1] for style weights ``(n, n_styles)``."""
        raise NotImplementedError

    def _draw_noise(self, n: int, generator: torch.Generator | None,
                    **kwargs: Any) -> torch.Tensor | None:
        """All the random input of ``n`` samples at once (so results do not depend on the
        batch size); ``None`` if the subclass draws inside :meth:`_generate`."""
        return None

    def _check_sample_kwargs(self, **kwargs: Any) -> None:
        """Refuse bad sampling options before any work (subclasses extend)."""

    def _sample_modules(self) -> dict[str, nn.Module]:
        """The modules saved by :meth:`save_pretrained` (default: all children)."""
        return dict(self.named_children())

    # ---- shared
    @property
    def styles(self) -> list[str]:
        """The style names this generator is conditioned on."""
        return list(self.config.styles)

    @property
    def n_styles(self) -> int:
        return len(self.config.styles)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def topics(self) -> list[str]:
        """The topic names this generator is conditioned on (empty: it ignores topics)."""
        return list(getattr(self.config, "topics", ()) or ())

    @torch.no_grad()
    def sample(self, style: StyleSpec, n: int, *, topic: StyleSpec | None = None,
               generator: torch.Generator | None = None, batch_size: int = 256,
               progress: bool = False, **kwargs: Any) -> np.ndarray:
        """Generate ``n`` covers for ``style``; uint8 numpy ``(n, H, W, 3)``.

        Parameters
        ----------
        style
            A style name or index, one per sample, or mixture weights (see
            :func:`style_weights`).
        n
            Number of covers.
        topic
            For a topic-conditioned generator (:attr:`topics` not empty): a topic name or
            index, one per sample, or mixture weights over the topics; ``None``: no topic.
            A generator without topics refuses a topic.
        generator
            Source of randomness (``None``: torch's global RNG). The same seeded generator
            gives the same covers; all random input is drawn before batching, so the result
            does not depend on ``batch_size`` (up to float rounding).
        batch_size
            Covers computed at once.
        progress
            Show a progress bar over batches.
        **kwargs
            Model-specific options (e.g. ``num_inference_steps`` for diffusion).
        """
        weights = style_weights(style, n, self.styles)
        check_int(batch_size, "batch_size")
        topic_w = None
        if topic is not None:
            if not self.topics:
                raise ValueError(f"This {self.kind} generator is not conditioned on topics; "
                                 "sample without `topic` (or use a topic-conditioned model).")
            topic_w = style_weights(topic, n, self.topics)
        self._check_sample_kwargs(**kwargs)
        was_training = self.training
        self.eval()
        try:
            noise = self._draw_noise(n, generator, **kwargs)
            out = []
            starts = range(0, n, batch_size)
            for i in tqdm(starts, desc=f"sample {self.kind}", disable=not progress, leave=False):
                w = weights[i:i + batch_size].to(self.device)
                nz = noise[i:i + batch_size] if noise is not None else None
                extra = {} if topic_w is None else \
                    {"topic_weights": topic_w[i:i + batch_size].to(self.device)}
                x = self._generate(w, generator, noise=nz, **extra, **kwargs)
                out.append(tensor_to_images(x))
        finally:
            self.train(was_training)
        return np.concatenate(out, axis=0)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Save weights (safetensors) and config (JSON) into the folder ``path``."""
        return save_model_folder(path, self.kind, config_to_dict(self.config),
                                 self._sample_modules())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, config: Any = None,
                        device: str | torch.device | None = None) -> CoverGenerator:
        """Load a model saved by :meth:`save_pretrained` from a local folder.

        Parameters
        ----------
        path
            The folder.
        config
            When given, the saved config must equal it (else :class:`CheckpointError`).
        device
            Where to put the model (``None``: cuda if available).
        """
        dev = resolve_device(device)
        expected = config_to_dict(config) if config is not None else None
        meta = read_model_folder(path, cls.kind, expected)
        model = cls(config_from_dict(cls.config_class, meta["config"]))
        load_model_weights(path, meta, model._sample_modules(), dev)
        return model.to(dev).eval()
