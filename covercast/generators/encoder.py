"""The cover encoder: a small CNN that predicts a cover's style and topic (torch).

It is trained on procedural covers (:func:`covercast.generators.data.cover_dataset`) and then
frozen. It serves two purposes:

* **style probabilities** of any cover (:meth:`CoverEncoder.style_probs`) -- the last entries of
  the attribute vector users respond to (:mod:`covercast.covers.attributes`), so a cover
  made by a learned generator is judged by the simulated population exactly as a procedural
  one; pass them to ``CoverBank.from_images(..., style_probs=...)``. The same probabilities give
  the "semantic accuracy" of generated covers (is a cover generated for *noir* recognised as
  *noir*?);
* a **feature space** -- its penultimate layer (:meth:`CoverEncoder.features`), in which
  Frechet distance, KID and precision/recall of generated covers are computed.
  :class:`FeatureExtractor` wraps it as the ``feature=`` module of torchmetrics'
  ``FrechetInceptionDistance`` and ``KernelInceptionDistance``.

.. important::
   Distances computed in this feature space are **not Inception-FID numbers** and cannot be
   compared with FID/KID values published for Inception-v3 features (such as the FID of 12.4
   claimed by seed 000 or the "FID < 6" of seed 001). They compare generators with each other
   on covercast data only; report them as "Frechet distance in cover-encoder features".

Architecture: ``len(widths)`` stages of (3x3 conv, batch norm, ReLU, 3x3 conv, batch norm,
ReLU, 2x2 max-pool), global average pooling, a linear layer to ``feature_dim`` with ReLU (the
features), and two linear heads (style, topic). Training uses cross-entropy on both labels and,
by default, light blur and noise augmentation so that slightly blurry or noisy generated
covers are still recognised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from covercast._io import check_fields, check_int
from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.generators.data import CoverDataset
from covercast.generators.training import (
    ModelConfig,
    TrainResult,
    batch_indices,
    check_dataset,
    check_image_size,
    config_from_dict,
    config_to_dict,
    images_to_tensor,
    load_model_weights,
    read_model_folder,
    resolve_device,
    run_training,
    save_model_folder,
    seeded_init,
    set_learning_rate,
)

_INPUT_RANGES = ("unit", "symmetric")


@dataclass(frozen=True)
class CoverEncoderConfig(ModelConfig):
    """Architecture of a :class:`CoverEncoder`."""

    _TINY = dict(widths=(8, 16), feature_dim=16)
    _TUPLES = ("widths",)

    styles: tuple[str, ...] = DEFAULT_STYLES
    """Style names (output order of :meth:`CoverEncoder.style_probs`)."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    """Topic names (output order of :meth:`CoverEncoder.topic_probs`)."""
    image_size: int = 32
    """Side of the training images; other sizes are resized to it before encoding."""
    channels: int = 3
    """Image channels (3: RGB covers)."""
    widths: tuple[int, ...] = (32, 64, 128)
    """Channels of each convolutional stage (each stage halves the resolution)."""
    feature_dim: int = 128
    """Dimension of the penultimate features (the Frechet-distance space)."""

    def __post_init__(self) -> None:
        self._check_common()
        topics = tuple(self.topics)
        if not topics or len(set(topics)) != len(topics) or \
                not all(isinstance(t, str) and t for t in topics):
            raise ValueError(f"`topics` must be a non-empty sequence of distinct names, got "
                             f"{list(topics)!r}.")
        object.__setattr__(self, "topics", topics)
        if not self.widths:
            raise ValueError("`widths` needs at least one stage, got ().")
        for w in self.widths:
            check_int(w, "widths entries")
        check_int(self.feature_dim, "feature_dim")
        check_image_size(self.image_size, 2 ** len(self.widths),
                         f"a cover encoder with {len(self.widths)} pooling stages")


@dataclass(frozen=True)
class EncoderTrainConfig:
    """How a :class:`CoverEncoder` is trained (:func:`train_cover_encoder`)."""

    steps: int = 3000
    """Optimisation steps."""
    batch_size: int = 128
    """Images per step."""
    lr: float = 2e-3
    """Adam learning rate (after warm-up)."""
    warmup_steps: int = 100
    """Linear learning-rate warm-up."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    topic_weight: float = 1.0
    """Weight of the topic cross-entropy relative to the style cross-entropy."""
    augment: bool = True
    """Random blur (mixing with a 3x3 box blur) and Gaussian noise on half of the images."""
    seed: int = 0
    """Seed of the batch order and the augmentation."""

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size",), counts=("steps", "warmup_steps", "seed"),
                     positive=("lr",), nonneg=("weight_decay", "topic_weight"))


class CoverEncoder(nn.Module):
    """A CNN predicting the style and topic of covers; its penultimate layer is the feature
    space of the generation metrics (which are **not** Inception-FID numbers).

    Parameters
    ----------
    config
        Architecture (default :class:`CoverEncoderConfig`).
    seed
        Seed of the weight initialisation.
    """

    kind = "cover_encoder"

    def __init__(self, config: CoverEncoderConfig | None = None, *, seed: int = 0) -> None:
        super().__init__()
        config = CoverEncoderConfig() if config is None else config
        if not isinstance(config, CoverEncoderConfig):
            raise TypeError(f"`config` must be a CoverEncoderConfig, got "
                            f"{type(config).__name__}.")
        self.config = config
        with seeded_init(seed):
            layers: list[nn.Module] = []
            c = config.channels
            for w in config.widths:
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                           nn.ReLU(inplace=True), nn.Conv2d(w, w, 3, padding=1, bias=False),
                           nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
                c = w
            self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(c, config.feature_dim), nn.ReLU(inplace=True))
            self.style_head = nn.Linear(config.feature_dim, len(config.styles))
            self.topic_head = nn.Linear(config.feature_dim, len(config.topics))

    # ------------------------------------------------------------------ tensors
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def styles(self) -> list[str]:
        return list(self.config.styles)

    @property
    def topics(self) -> list[str]:
        return list(self.config.topics)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(n, feature_dim)`` of float images ``(n, C, S, S)`` in
        [-1, 1] at the config's size."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Style and topic logits of float images ``(n, C, S, S)`` in [-1, 1]."""
        h = self.trunk(x)
        return self.style_head(h), self.topic_head(h)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Resize float images ``(n, C, H, W)`` in [-1, 1] to the config's size (if needed)
        and move them to the encoder's device."""
        s = self.config.image_size
        if x.shape[1] != self.config.channels:
            raise ValueError(f"The encoder takes {self.config.channels}-channel images, got "
                             f"{x.shape[1]} channels.")
        x = x.to(self.device, torch.float32)
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > s)
        return x

    # ------------------------------------------------------------------ numpy API
    @torch.no_grad()
    def _run(self, images: np.ndarray, fn: Any, batch_size: int) -> np.ndarray:
        x = images_to_tensor(images, self.config.channels)
        was = self.training
        self.eval()
        try:
            out = [fn(self.prepare(x[i:i + batch_size])).float().cpu()
                   for i in range(0, len(x), batch_size)]
        finally:
            self.train(was)
        if not out:
            raise ValueError("No images given (n = 0).")
        return torch.cat(out).numpy()

    def style_probs(self, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
        """Style probabilities of uint8 images ``(n, H, W, 3)``: float32 ``(n, n_styles)``.

        Images of another size are resized to the encoder's. Rows sum to 1.
        """
        return self._run(images, lambda x: F.softmax(self(x)[0], dim=1), batch_size)

    def topic_probs(self, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
        """Topic probabilities of uint8 images: float32 ``(n, n_topics)``."""
        return self._run(images, lambda x: F.softmax(self(x)[1], dim=1), batch_size)

    def features(self, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
        """Penultimate features of uint8 images: float32 ``(n, feature_dim)``.

        The space of the Frechet distance / KID / precision-recall of this package (not
        Inception features: the numbers are not Inception-FID numbers).
        """
        return self._run(images, self.embed, batch_size)

    def feature_extractor(self, input_range: str = "unit") -> FeatureExtractor:
        """A frozen :class:`FeatureExtractor` on this encoder, for torchmetrics."""
        return FeatureExtractor(self, input_range=input_range)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Save weights (safetensors) and config (JSON) into the folder ``path``."""
        return save_model_folder(path, self.kind, config_to_dict(self.config), {"model": self})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *,
                        config: CoverEncoderConfig | None = None,
                        device: str | torch.device | None = None) -> CoverEncoder:
        """Load an encoder saved by :meth:`save_pretrained` (config compared when given)."""
        dev = resolve_device(device)
        meta = read_model_folder(path, cls.kind,
                                 config_to_dict(config) if config is not None else None)
        model = cls(config_from_dict(CoverEncoderConfig, meta["config"]))
        load_model_weights(path, meta, {"model": model}, dev)
        return model.to(dev).eval()


class FeatureExtractor(nn.Module):
    """The cover encoder's penultimate features as a frozen ``nn.Module``: ``imgs -> (n, d)``.

    Made for the ``feature=`` argument of torchmetrics' ``FrechetInceptionDistance`` and
    ``KernelInceptionDistance``::

        fid = FrechetInceptionDistance(feature=encoder.feature_extractor(), normalize=True)
        fid.update(real_float01, real=True)
        fid.update(fake_float01, real=False)

    With ``normalize=False`` torchmetrics passes uint8 images in [0, 255]; with
    ``normalize=True`` float images, read in ``input_range`` (``"unit"``: [0, 1], torchmetrics'
    convention; ``"symmetric"``: [-1, 1]). Images are channels-first ``(n, C, H, W)`` of any size
    (resized to the encoder's). The encoder stays in eval mode whatever ``train()`` is called
    with. The values it leads to are **not Inception-FID numbers**.
    """

    def __init__(self, encoder: CoverEncoder, input_range: str = "unit") -> None:
        super().__init__()
        if input_range not in _INPUT_RANGES:
            raise ValueError(f"`input_range` must be one of {_INPUT_RANGES}, got "
                             f"{input_range!r}.")
        self.encoder = encoder.eval().requires_grad_(False)
        self.input_range = input_range
        self.num_features = int(encoder.config.feature_dim)

    def train(self, mode: bool = True) -> FeatureExtractor:
        self.training = mode
        self.encoder.eval()
        return self

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        if imgs.ndim != 4:
            raise ValueError(f"Expected images (n, C, H, W), got shape {tuple(imgs.shape)}.")
        if imgs.dtype == torch.uint8:
            x = imgs.float() / 127.5 - 1.0
        elif imgs.is_floating_point():
            x = imgs.float() * 2.0 - 1.0 if self.input_range == "unit" else imgs.float()
        else:
            raise ValueError(f"Images must be uint8 or float, got {imgs.dtype}.")
        c = self.encoder.config.channels
        if x.shape[1] != c:
            if x.shape[1] == 1 and c == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and c == 1:
                x = x.mean(1, keepdim=True)
            else:
                raise ValueError(f"Expected 1 or 3 channels, got {x.shape[1]}.")
        return self.encoder.embed(self.encoder.prepare(x))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur half the images by a random amount, then add noise of random strength."""
    n, dev = len(x), x.device
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = torch.rand(n, generator=g) * (torch.rand(n, generator=g) < 0.5)
    sigma = torch.rand(n, generator=g) * 0.1
    noise = torch.randn(x.shape, generator=g)
    x = x + amount.to(dev)[:, None, None, None] * (blur - x)
    return (x + sigma.to(dev)[:, None, None, None] * noise.to(dev)).clamp(-1, 1)


def train_cover_encoder(encoder: CoverEncoder, dataset: CoverDataset,
                        config: EncoderTrainConfig | None = None, *,
                        checkpoint_dir: str | os.PathLike | None = None,
                        checkpoint_every: int = 1000, resume: bool = True, progress: bool = True,
                        callback: Any = None, device: str | torch.device | None = None
                        ) -> TrainResult:
    """Train the cover encoder on procedural covers (cross-entropy on style and topic).

    Metrics per step: ``loss``, ``style_acc`` and ``topic_acc`` (on the training batch).

    Raises
    ------
    ValueError
        If the dataset is not a :class:`CoverDataset` with the encoder's styles, topics,
        image size and channels.
    """
    config = EncoderTrainConfig() if config is None else config
    if not isinstance(dataset, CoverDataset):
        raise ValueError(f"The cover encoder is trained on a CoverDataset (style and topic "
                         f"labels), got {type(dataset).__name__}; use cover_dataset().")
    check_dataset(dataset, encoder.config, "cover encoder", config.batch_size)
    if dataset.topics != list(encoder.config.topics):
        raise ValueError(f"The dataset's topics {dataset.topics} differ from the encoder's "
                         f"{list(encoder.config.topics)}; build the config with the dataset's "
                         "names.")
    dev = resolve_device(device)
    encoder.to(dev).train()
    x_all, s_all = dataset.tensors(dev)
    t_all = dataset.topic_tensor(dev)
    opt = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(config.seed)

    def step_fn(step: int) -> dict[str, float]:
        idx = batch_indices(len(dataset), config.batch_size, step, config.seed).to(dev)
        x, s, t = x_all[idx], s_all[idx], t_all[idx]
        if config.augment:
            x = _augment(x, g)
        set_learning_rate(opt, config.lr, step, config.warmup_steps)
        ls, lt = encoder(x)
        loss = F.cross_entropy(ls, s) + config.topic_weight * F.cross_entropy(lt, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(),
                "style_acc": (ls.argmax(1) == s).float().mean().item(),
                "topic_acc": (lt.argmax(1) == t).float().mean().item()}

    result = run_training(kind=CoverEncoder.kind, model_config=config_to_dict(encoder.config),
                          train_config=config_to_dict(config), modules={"model": encoder},
                          optimizers={"opt": opt}, generators={"train": g}, step_fn=step_fn,
                          total_steps=config.steps, device=dev, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                          callback=callback, desc="train cover encoder")
    encoder.eval()
    return result


def evaluate_encoder(encoder: CoverEncoder, dataset: CoverDataset) -> dict[str, float]:
    """Style and topic accuracy of the encoder on a cover dataset (e.g. held-out covers)."""
    if list(dataset.styles) != encoder.styles or list(dataset.topics) != encoder.topics:
        raise ValueError("The dataset's styles/topics differ from the encoder's.")
    sp = encoder.style_probs(dataset.images)
    tp = encoder.topic_probs(dataset.images)
    return {"style_accuracy": float(np.mean(sp.argmax(1) == dataset.style)),
            "topic_accuracy": float(np.mean(tp.argmax(1) == dataset.topic))}


__all__ = ["CoverEncoder", "CoverEncoderConfig", "EncoderTrainConfig", "FeatureExtractor",
           "train_cover_encoder", "evaluate_encoder"]
