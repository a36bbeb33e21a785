"""DiffusionCoverGenerator: a style-conditioned pixel-space diffusion model (diffusers).

The model is a diffusers :class:`~diffusers.UNet2DModel` whose class embedding holds one
vector per style plus a *null* style (index ``n_styles``), the unconditional label of
classifier-free guidance (Ho & Salimans 2021). It is trained as a DDPM (Ho et al. 2020): a
clean cover ``x0`` of style ``s`` is noised to ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``
at a uniform timestep ``t`` and the UNet learns to predict ``eps`` (or ``v``) from
``(x_t, t, s)``; with probability ``cond_drop_prob`` the style is replaced by the null label,
so the same network also learns the unconditional model. Covers are sampled with DDIM (Song
et al. 2021) in ``num_inference_steps`` steps with guidance

    eps = eps(x_t, t, null) + guidance_scale * (eps(x_t, t, s) - eps(x_t, t, null)).

Style *mixtures* (weights over the styles, e.g. from an agent choosing a continuous
conditioning) are supported by mixing the style embedding vectors with those weights; a plain
style is the one-hot special case.

The default :class:`DiffusionConfig` ("small") is sized for 32x32 covers on a CPU: about
0.95 M parameters (speed in ``docs/results/notes/generators.md``; ``guidance_scale=1`` skips
the unconditional pass, halving the work). :meth:`DiffusionConfig.tiny` is for tests.

Saved models are diffusers-compatible folders: ``unet/`` (``UNet2DModel.save_pretrained``,
safetensors), ``scheduler/`` (the DDPM scheduler config) and ``covercast_model.json`` (our
config, with the SHA-256 of the weights). Everything loads from local paths only.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from torch import nn
from torch.nn import functional as F

from covercast._io import atomic_write_text, check_fields, check_int, sha256_file
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.generators.data import CoverDataset, ImageDataset, cover_dataset
from covercast.generators.training import (
    FORMAT_VERSION,
    MODEL_CONFIG_FILE,
    CheckpointError,
    CheckpointNotFoundError,
    CoverGenerator,
    ModelConfig,
    TrainResult,
    _checked_file,
    batch_indices,
    check_dataset,
    check_image_size,
    config_from_dict,
    config_to_dict,
    labels_to_weights,
    randn,
    read_model_folder,
    resolve_device,
    run_training,
    seeded_init,
    set_learning_rate,
)

_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_PREDICTIONS = ("epsilon", "v_prediction")
#: Samplers of :meth:`DiffusionCoverGenerator.sample`: DDIM (with ``eta``) and diffusers'
#: second-order multistep DPM-Solver++ (Lu et al. 2022).
SAMPLERS = ("ddim", "dpmsolver++")
#: Sampling options of a new model; a saved model keeps its own in ``sampling.json`` (the
#: committed checkpoint's were chosen on a validation split by ``covercast generators
#: sampler-sweep``). Any of them can be overridden per call of ``sample``.
DEFAULT_SAMPLING: dict[str, Any] = {"sampler": "ddim", "num_inference_steps": 20, "eta": 1.0,
                                    "guidance_scale": 2.0}
SAMPLING_FILE = "sampling.json"
_UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class DiffusionConfig(ModelConfig):
    """Architecture and noise schedule of a :class:`DiffusionCoverGenerator`.

    The defaults are the "small" model for 32x32 covers; :meth:`tiny` (two levels of 16 and
    32 channels, 100 timesteps) is for tests.
    """

    _TINY = dict(block_out_channels=(16, 32), attention_levels=(False, False),
                 mid_attention=False, norm_num_groups=8, num_train_timesteps=100)
    _TUPLES = ("block_out_channels",)

    styles: tuple[str, ...] = DEFAULT_STYLES
    """Style names, in label order; the UNet gets ``len(styles) + 1`` class embeddings (the
    last one is the null style of classifier-free guidance)."""
    image_size: int = 32
    """Side of the square images; a multiple of ``2 ** (len(block_out_channels) - 1)``."""
    channels: int = 3
    """Image channels: 3 (RGB covers) or 1 (grey data such as MNIST)."""
    block_out_channels: tuple[int, ...] = (32, 48, 64)
    """UNet width at each resolution level (one downsampling between levels)."""
    layers_per_block: int = 1
    """ResNet layers per UNet block."""
    attention_levels: tuple[bool, ...] = (False, False, True)
    """Whether each level's blocks have self-attention (one flag per level)."""
    mid_attention: bool = True
    """Self-attention in the UNet's middle block (lowest resolution)."""
    attention_head_dim: int = 8
    """Channels per attention head."""
    norm_num_groups: int = 8
    """Groups of the GroupNorm layers; must divide every width."""
    num_train_timesteps: int = 1000
    """Diffusion steps of the DDPM training process."""
    beta_schedule: str = "squaredcos_cap_v2"
    """Noise schedule: ``"linear"``, ``"scaled_linear"`` or ``"squaredcos_cap_v2"`` (cosine)."""
    prediction_type: str = "v_prediction"
    """What the UNet predicts: ``"v_prediction"`` (``v = sqrt(abar) eps - sqrt(1 - abar) x0``,
    Salimans & Ho 2022; the default: it sets a cover's global colour at the noisiest steps,
    where an epsilon model cannot) or ``"epsilon"`` (the noise)."""
    rescale_betas_zero_snr: bool = False
    """Rescale the betas to zero terminal SNR (Lin et al. 2024, diffusers'
    ``rescale_betas_zero_snr``): the last training step is pure noise, as at sampling.
    Needs ``v_prediction`` (an epsilon model cannot predict anything from pure noise)."""
    topics: tuple[str, ...] = ()
    """Topic names, in label order, for topic conditioning (empty: style only). The class
    embedding then holds ``len(styles) + 1 + len(topics) + 1`` rows: the styles and a null
    style, then the topics and a null topic; a cover's conditioning vector is the sum of its
    style's and its topic's rows."""

    def __post_init__(self) -> None:
        self._check_common()
        topics = tuple(str(t) for t in self.topics)
        if len(set(topics)) != len(topics) or any(not t for t in topics):
            raise ValueError(f"`topics` must be distinct non-empty names, got {topics}.")
        object.__setattr__(self, "topics", topics)
        object.__setattr__(self, "attention_levels", tuple(bool(a) for a in
                                                           self.attention_levels))
        levels = len(self.block_out_channels)
        if levels < 1:
            raise ValueError("`block_out_channels` needs at least one level, got ().")
        for w in self.block_out_channels:
            check_int(w, "block_out_channels entries")
            if w % self.norm_num_groups:
                raise ValueError(f"Every width in `block_out_channels` {self.block_out_channels}"
                                 f" must be divisible by `norm_num_groups`={self.norm_num_groups}"
                                 f"; {w} is not. Change the width or the group count.")
        if len(self.attention_levels) != levels:
            raise ValueError(f"`attention_levels` needs one flag per level ({levels}), got "
                             f"{self.attention_levels}.")
        for w, a in zip(self.block_out_channels, self.attention_levels, strict=True):
            if a and w % self.attention_head_dim:
                raise ValueError(f"Width {w} of an attention level must be divisible by "
                                 f"`attention_head_dim`={self.attention_head_dim}.")
        check_int(self.num_train_timesteps, "num_train_timesteps", 2)
        check_image_size(self.image_size, 2 ** (levels - 1),
                         f"a UNet with {levels} resolution levels")
        check_fields(self, ints=("layers_per_block",),
                     choices={"beta_schedule": _BETA_SCHEDULES, "prediction_type": _PREDICTIONS})
        if self.rescale_betas_zero_snr and self.prediction_type != "v_prediction":
            raise ValueError("`rescale_betas_zero_snr=True` needs prediction_type="
                             "'v_prediction': at zero terminal SNR the noise is the whole "
                             "input and an epsilon model learns nothing about the image.")

    @property
    def n_class_embeds(self) -> int:
        """Rows of the UNet's class embedding: styles + null, then topics + null if any."""
        return len(self.styles) + 1 + (len(self.topics) + 1 if self.topics else 0)

    @classmethod
    def small(cls, **overrides: Any) -> DiffusionConfig:
        """The default CPU-sized model for 32x32 covers (about 0.95 M parameters)."""
        return cls(**overrides)

    @classmethod
    def compact(cls, **overrides: Any) -> DiffusionConfig:
        """A lighter model (16, 32, 64 channels, no attention; about 0.62 M parameters):
        about twice as fast to train and sample as :meth:`small` on a CPU."""
        base = dict(block_out_channels=(16, 32, 64), attention_levels=(False, False, False),
                    mid_attention=False)
        base.update(overrides)
        return cls(**base)


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """How a :class:`DiffusionCoverGenerator` is trained (:func:`train_diffusion`)."""

    steps: int = 20_000
    """Optimisation steps of the whole run."""
    batch_size: int = 64
    """Images per step."""
    lr: float = 2e-4
    """Adam learning rate (after warm-up)."""
    warmup_steps: int = 500
    """Steps of linear learning-rate warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    cond_drop_prob: float = 0.1
    """Probability of replacing the style by the null label (classifier-free guidance)."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average of the weights used for sampling (0: none).
    The effective decay warms up as ``min(ema_decay, (1 + step) / (10 + step))``."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold (0: no clipping)."""
    min_snr_gamma: float = 0.0
    """Min-SNR-gamma loss weighting (Hang et al. 2023; 0: plain MSE): each sample's loss is
    weighted by ``min(SNR_t, gamma) / SNR_t`` (epsilon) or ``min(SNR_t, gamma) / (SNR_t + 1)``
    (v), i.e. an x0-loss clipped at ``gamma``; 5 is the paper's value."""
    offset_noise: float = 0.0
    """Offset noise (Guttenberg 2023): add ``offset_noise * N(0, 1)`` per image and channel to
    the training noise, so an epsilon model can shift a cover's mean colour (0: off)."""
    fresh_covers: bool = False
    """Render fresh procedural covers every epoch (epoch ``e > 0`` from
    ``SeedSequence([render seed, e])``; the dataset must come from
    :func:`~covercast.generators.data.cover_dataset`) instead of revisiting the same ones."""
    topic_drop_prob: float = 0.1
    """Probability of replacing the topic by the null topic on top of ``cond_drop_prob``
    (topic-conditioned models only), so that a cover can be asked for a style alone."""
    seed: int = 0
    """Seed of the batch order, the noise, the timesteps and the label dropout."""

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size",), counts=("steps", "warmup_steps", "seed"),
                     positive=("lr",), fractions=("cond_drop_prob", "ema_decay",
                                                  "topic_drop_prob"),
                     nonneg=("min_snr_gamma", "offset_noise", "grad_clip", "weight_decay"))


class _MixableEmbedding(nn.Embedding):
    """An ``nn.Embedding`` that also takes mixture weights ``(n, num_embeddings)``.

    Integer labels give rows of the table as usual; float weights give the weighted sum of
    the rows (a one-hot row is the same as its label). The state dict is an ``nn.Embedding``'s,
    so diffusers saves and loads it unchanged.
    """

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.is_floating_point():
            return labels.to(self.weight.dtype) @ self.weight
        return super().forward(labels)


def _mixable(unet: UNet2DModel) -> UNet2DModel:
    old = unet.class_embedding
    if not isinstance(old, _MixableEmbedding):
        new = _MixableEmbedding(old.num_embeddings, old.embedding_dim)
        new.weight = old.weight
        unet.class_embedding = new
    return unet


def build_unet(config: DiffusionConfig) -> UNet2DModel:
    """The diffusers UNet of a config (randomly initialised from torch's RNG)."""
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels))
    unet = UNet2DModel(sample_size=config.image_size, in_channels=config.channels,
                       out_channels=config.channels,
                       block_out_channels=config.block_out_channels,
                       layers_per_block=config.layers_per_block, down_block_types=down,
                       up_block_types=up, norm_num_groups=config.norm_num_groups,
                       attention_head_dim=config.attention_head_dim,
                       add_attention=config.mid_attention,
                       num_class_embeds=config.n_class_embeds)
    return _mixable(unet)


class _DDIMScheduler(DDIMScheduler):
    """diffusers' DDIM with its step variance shrunk by one part in 10^4.

    At a zero-SNR timestep (``alphas_cumprod == 0``) with ``eta = 1``, DDIM's
    ``1 - alpha_prev - sigma^2`` is exactly 0 and float rounding can make it negative, so its
    square root is NaN and the whole sample turns black. The shrink keeps it positive and
    changes nothing visible.
    """

    def _get_variance(self, timestep: int, prev_timestep: int) -> torch.Tensor:
        return super()._get_variance(timestep, prev_timestep) * (1.0 - 1e-4)


def _ddpm_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                         beta_schedule=config.beta_schedule,
                         prediction_type=config.prediction_type, clip_sample=True,
                         clip_sample_range=1.0,
                         rescale_betas_zero_snr=config.rescale_betas_zero_snr,
                         timestep_spacing="trailing")


class DiffusionCoverGenerator(CoverGenerator):
    """Style-conditioned DDPM/DDIM cover generator on a diffusers ``UNet2DModel``.

    Parameters
    ----------
    config
        Architecture and noise schedule (default: :class:`DiffusionConfig` "small").
    seed
        Seed of the weight initialisation (the global torch RNG is left untouched).

    Examples
    --------
    >>> gen = DiffusionCoverGenerator(DiffusionConfig.tiny())
    >>> covers = gen.sample("noir", 4, generator=torch.Generator().manual_seed(0),
    ...                     num_inference_steps=5)
    >>> covers.shape, covers.dtype
    ((4, 32, 32, 3), dtype('uint8'))
    """

    kind = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig | None = None, *, seed: int = 0) -> None:
        config = DiffusionConfig() if config is None else config
        if not isinstance(config, DiffusionConfig):
            raise TypeError(f"`config` must be a DiffusionConfig, got {type(config).__name__}.")
        super().__init__(config)
        with seeded_init(seed):
            self.unet = build_unet(config)
        self.noise_scheduler = _ddpm_scheduler(config)
        self.sampling: dict[str, Any] = dict(DEFAULT_SAMPLING)
        """Default options of :meth:`sample` (saved with the model in ``sampling.json``)."""

    # ------------------------------------------------------------------ model
    @property
    def null_label(self) -> int:
        """Index of the unconditional (null) style embedding."""
        return self.n_styles

    @property
    def topics(self) -> list[str]:
        """The topic names this model is conditioned on (empty: style only)."""
        return list(self.config.topics)

    def class_weights(self, weights: torch.Tensor, drop: torch.Tensor | None = None,
                      topic_weights: torch.Tensor | None = None,
                      topic_drop: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's class input ``(n, n_class_embeds)``: style weights padded with the null
        style column, then (topic-conditioned models) topic weights padded with the null topic
        column. Rows where ``drop`` is True get the null style *and* the null topic (the
        unconditional model of guidance); rows where ``topic_drop`` is True, the null topic;
        ``topic_weights=None`` means the null topic for every row."""
        cw = F.pad(weights, (0, 1))
        if drop is not None:
            null = torch.zeros_like(cw)
            null[:, -1] = 1.0
            cw = torch.where(drop[:, None], null, cw)
        if not self.config.topics:
            if topic_weights is not None:
                raise ValueError("This diffusion model is not conditioned on topics "
                                 "(config.topics is empty); sample without `topic`.")
            return cw
        n_t = len(self.config.topics)
        if topic_weights is None:
            tw = torch.zeros((len(weights), n_t + 1), dtype=weights.dtype, device=weights.device)
            tw[:, -1] = 1.0
        else:
            tw = F.pad(topic_weights.to(weights.dtype), (0, 1))
            off = torch.zeros(len(weights), dtype=torch.bool, device=weights.device)
            if drop is not None:
                off = off | drop
            if topic_drop is not None:
                off = off | topic_drop
            null_t = torch.zeros_like(tw)
            null_t[:, -1] = 1.0
            tw = torch.where(off[:, None], null_t, tw)
        return torch.cat([cw, tw], dim=1)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor,
                class_weights: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction (noise or v) for noisy images at ``timesteps``."""
        return self.unet(noisy, timesteps, class_labels=class_weights).sample

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``abar_t / (1 - abar_t)`` of training timesteps."""
        abar = self.noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
        return abar / (1.0 - abar).clamp_min(1e-12)

    def loss(self, x0: torch.Tensor, labels: torch.Tensor, *,
             generator: torch.Generator | None = None, cond_drop_prob: float = 0.0,
             topics: torch.Tensor | None = None, topic_drop_prob: float = 0.0,
             min_snr_gamma: float = 0.0, offset_noise: float = 0.0) -> torch.Tensor:
        """The DDPM training loss (MSE of the predicted noise or v) on a batch.

        Noise, timesteps and label dropout are drawn from ``generator`` in a fixed order, so
        the loss of a batch is reproducible. ``topics`` (int labels) condition a
        topic-conditioned model; ``min_snr_gamma`` and ``offset_noise`` are those of
        :class:`DiffusionTrainConfig`.
        """
        n, dev = x0.shape[0], x0.device
        gdev = generator.device if generator is not None else torch.device("cpu")
        noise = randn(x0.shape, generator, dev)
        t = torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator,
                          device=gdev).to(dev)
        drop = (torch.rand(n, generator=generator, device=gdev) < cond_drop_prob).to(dev)
        tw = tdrop = None
        if self.config.topics:
            if topics is None:
                raise ValueError("This diffusion model is conditioned on topics; pass the "
                                 "batch's `topics`.")
            tw = labels_to_weights(topics, len(self.config.topics))
            tdrop = (torch.rand(n, generator=generator, device=gdev) < topic_drop_prob).to(dev)
        if offset_noise > 0:
            noise = noise + offset_noise * randn((n, x0.shape[1], 1, 1), generator, dev)
        cw = self.class_weights(labels_to_weights(labels, self.n_styles), drop, tw, tdrop)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        if self.config.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(x0, noise, t)
        per = F.mse_loss(self(noisy, t, cw), target, reduction="none").mean(dim=(1, 2, 3))
        if min_snr_gamma > 0:
            snr = self.snr(t)
            clipped = snr.clamp(max=min_snr_gamma)
            w = clipped / (snr + 1.0) if self.config.prediction_type == "v_prediction" \
                else clipped / snr.clamp_min(1e-12)
            per = per * w
        return per.mean()

    # ------------------------------------------------------------------ sampling
    def _check_sample_kwargs(self, num_inference_steps: int = 20, guidance_scale: float = 2.0,
                             eta: float = 0.0, sampler: str = "ddim",
                             topic_weights: Any = None) -> None:
        check_int(num_inference_steps, "num_inference_steps")
        if num_inference_steps > self.config.num_train_timesteps:
            raise ValueError(f"`num_inference_steps` {num_inference_steps} exceeds the "
                             f"{self.config.num_train_timesteps} training timesteps; use at most"
                             f" {self.config.num_train_timesteps}.")
        if not np.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be finite and >= 0 (1 = no guidance), got "
                             f"{guidance_scale!r}.")
        if not 0 <= eta <= 1:
            raise ValueError(f"`eta` must lie in [0, 1] (0 = deterministic DDIM), got {eta!r}.")
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        if sampler != "ddim" and eta != 0:
            raise ValueError(f"`eta` applies to sampler='ddim' only, got eta={eta!r} with "
                             f"sampler={sampler!r}.")

    def _draw_noise(self, n: int, generator: torch.Generator | None,
                    **kwargs: Any) -> torch.Tensor:
        c, s = self.config.channels, self.config.image_size
        return randn((n, c, s, s), generator, torch.device("cpu"))

    def make_scheduler(self, sampler: str = "ddim", num_inference_steps: int = 20) -> Any:
        """A diffusers sampling scheduler (DDIM or DPM-Solver++) with its timesteps set,
        configured from the training schedule ("trailing" spacing: the first step starts at
        the last training timestep)."""
        cfg = self.noise_scheduler.config
        if sampler == "ddim":
            sched = _DDIMScheduler.from_config(cfg, timestep_spacing="trailing")
        else:
            sched = DPMSolverMultistepScheduler(
                num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                prediction_type=cfg.prediction_type, algorithm_type="dpmsolver++",
                solver_order=2, timestep_spacing="trailing",
                rescale_betas_zero_snr=cfg.rescale_betas_zero_snr, final_sigmas_type="zero")
        sched.set_timesteps(num_inference_steps, device=self.device)
        return sched

    def _generate(self, weights: torch.Tensor, generator: torch.Generator | None, *,
                  noise: torch.Tensor, num_inference_steps: int = 20,
                  guidance_scale: float = 2.0, eta: float = 0.0, sampler: str = "ddim",
                  topic_weights: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.device
        sched = self.make_scheduler(sampler, num_inference_steps)
        x = noise.to(dev) * sched.init_noise_sigma
        tw = topic_weights.to(dev) if topic_weights is not None else None
        cond = self.class_weights(weights, topic_weights=tw)
        guided = guidance_scale != 1.0
        if guided:
            uncond = self.class_weights(torch.zeros_like(weights),
                                        torch.ones(len(weights), dtype=torch.bool, device=dev),
                                        topic_weights=tw)
            cw = torch.cat([cond, uncond])
        step_kw = {"eta": eta, "generator": generator} if sampler == "ddim" else {}
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            if guided:
                out_c, out_u = self(torch.cat([xin, xin]), t, cw).chunk(2)
                out = out_u + guidance_scale * (out_c - out_u)
            else:
                out = self(xin, t, cond)
            x = sched.step(out, t, x, **step_kw).prev_sample
        return x

    def sampling_options(self, **overrides: Any) -> dict[str, Any]:
        """This model's sampling options (:attr:`sampling`) with the non-None ``overrides``
        (``sampler``, ``num_inference_steps``, ``eta``, ``guidance_scale``) applied; ``eta``
        falls back to 0 for a sampler other than DDIM."""
        unknown = sorted(set(overrides) - set(DEFAULT_SAMPLING))
        if unknown:
            raise ValueError(f"Unknown sampling option(s) {unknown}; the options are "
                             f"{sorted(DEFAULT_SAMPLING)}.")
        opts = {**DEFAULT_SAMPLING, **self.sampling,
                **{k: v for k, v in overrides.items() if v is not None}}
        if opts["sampler"] != "ddim" and overrides.get("eta") is None:
            opts["eta"] = 0.0
        return opts

    def sample(self, style: Any, n: int, *, topic: Any = None,
               generator: torch.Generator | None = None, num_inference_steps: int | None = None,
               guidance_scale: float | None = None, eta: float | None = None,
               sampler: str | None = None, batch_size: int = 64, progress: bool = False
               ) -> np.ndarray:
        """Generate ``n`` covers of ``style`` (and ``topic``); uint8 ``(n, H, W, 3)``.

        Parameters
        ----------
        style
            Style name or index, one per sample, or mixture weights (see
            :func:`covercast.generators.training.style_weights`).
        n
            Number of covers.
        topic
            Topic name or index, one per sample, or mixture weights over the topics, for a
            topic-conditioned model (``config.topics``); ``None``: any topic (the null topic).
        generator
            Source of the initial noise (and of the DDIM noise when ``eta > 0``). The same
            seeded generator and batch size give the same covers. The initial noise is drawn
            for all ``n`` at once, so with ``eta = 0`` (or DPM-Solver++) the result does not
            depend on ``batch_size`` either; with ``eta > 0`` the per-step noise is drawn
            batch by batch.
        num_inference_steps, guidance_scale, eta, sampler
            ``None``: this model's :attr:`sampling` (the committed checkpoint's were chosen
            on a validation split). Sampler steps; classifier-free guidance (1 disables it and
            halves the compute, 0 gives the unconditional model); DDIM stochasticity (0
            deterministic, 1 DDPM-like; ``sampler="ddim"`` only); ``"ddim"`` or
            ``"dpmsolver++"`` (:data:`SAMPLERS`).
        batch_size
            Covers denoised at once.
        progress
            Progress bar over batches.
        """
        opts = self.sampling_options(num_inference_steps=num_inference_steps,
                                     guidance_scale=guidance_scale, eta=eta, sampler=sampler)
        return super().sample(style, n, topic=topic, generator=generator,
                              batch_size=batch_size, progress=progress, **opts)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Save as a diffusers-compatible folder: ``unet/``, ``scheduler/`` and our JSON."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.noise_scheduler.save_pretrained(folder / "scheduler")
        meta = {"format_version": FORMAT_VERSION, "kind": self.kind,
                "config": config_to_dict(self.config),
                "sha256": {_UNET_WEIGHTS: sha256_file(folder / _UNET_WEIGHTS)}}
        atomic_write_text(folder / MODEL_CONFIG_FILE, json.dumps(meta, indent=2,
                                                                 sort_keys=True))
        atomic_write_text(folder / SAMPLING_FILE, json.dumps(self.sampling, indent=2,
                                                             sort_keys=True))
        return folder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, config: DiffusionConfig | None = None,
                        device: str | torch.device | None = None) -> DiffusionCoverGenerator:
        """Load a model saved by :meth:`save_pretrained` from a local folder.

        Parameters
        ----------
        path
            The folder (local only; nothing is downloaded).
        config
            When given, the saved config must equal it.
        device
            Where to put the model (``None``: cuda if available).

        Raises
        ------
        CheckpointNotFoundError
            If the folder or a file in it is missing.
        CheckpointError
            If a file is corrupt, the folder holds another kind of model, or its config
            differs from ``config``.
        """
        dev = resolve_device(device)
        folder = Path(path)
        meta = read_model_folder(folder, cls.kind,
                                 config_to_dict(config) if config is not None else None)
        _checked_file(folder, _UNET_WEIGHTS, meta.get("sha256", {}).get(_UNET_WEIGHTS))
        cfg = config_from_dict(DiffusionConfig, meta["config"])
        model = cls(cfg)
        try:
            unet = UNet2DModel.from_pretrained(str(folder / "unet"), local_files_only=True,
                                               low_cpu_mem_usage=False)
        except (OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"Could not load the UNet in {folder / 'unet'} ({e}); "
                                  "restore the folder or retrain.") from e
        expected = build_unet(cfg)
        if tuple(unet.config.block_out_channels) != tuple(expected.config.block_out_channels) \
                or unet.config.num_class_embeds != expected.config.num_class_embeds \
                or unet.config.in_channels != expected.config.in_channels:
            raise CheckpointError(f"The UNet in {folder / 'unet'} does not match the config "
                                  f"in {MODEL_CONFIG_FILE}; the folder was assembled from two "
                                  "models.")
        model.unet = _mixable(unet)
        if (folder / SAMPLING_FILE).is_file():
            try:
                saved = json.loads((folder / SAMPLING_FILE).read_text())
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{folder / SAMPLING_FILE} is not valid JSON ({e}); "
                                      "restore it or delete it (defaults apply).") from e
            model.sampling = model.sampling_options(**{k: saved.get(k) for k in
                                                        DEFAULT_SAMPLING})
            model._check_sample_kwargs(**model.sampling)
        return model.to(dev).eval()


def _check_topics(model: DiffusionCoverGenerator, dataset: ImageDataset) -> None:
    if not model.config.topics:
        return
    if not isinstance(dataset, CoverDataset):
        raise ValueError("A topic-conditioned diffusion model needs a CoverDataset (covers "
                         f"labelled with topics), got {type(dataset).__name__}; build the "
                         "config with topics=() for data without topics.")
    if list(dataset.topics) != list(model.config.topics):
        raise ValueError(f"The dataset's topics {list(dataset.topics)} differ from the "
                         f"model's {list(model.config.topics)}; build the config with "
                         "topics=tuple(dataset.topics).")


def train_diffusion(model: DiffusionCoverGenerator, dataset: ImageDataset,
                    config: DiffusionTrainConfig | None = None, *,
                    checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1000,
                    resume: bool = True, progress: bool = True,
                    callback: Any = None, device: str | torch.device | None = None
                    ) -> TrainResult:
    """Train a :class:`DiffusionCoverGenerator` on a dataset (DDPM loss, AdamW, EMA).

    Parameters
    ----------
    model
        The model (trained in place; moved to ``device``). When ``ema_decay > 0`` its weights
        are the EMA weights at the end (the raw weights stay in the checkpoint).
    dataset
        Images whose class names are the model's styles (e.g. :func:`cover_dataset`); a
        topic-conditioned model needs a :class:`CoverDataset` with its topics, and
        ``fresh_covers`` one made by :func:`cover_dataset` (it is re-rendered every epoch).
    config
        Training hyper-parameters (default :class:`DiffusionTrainConfig`).
    checkpoint_dir, checkpoint_every, resume, progress, callback
        See :func:`covercast.generators.training.run_training`.
    device
        ``None``: cuda if available, else cpu.

    Raises
    ------
    ValueError
        If the dataset does not fit the model (size, channels, styles, topics), or the
        checkpoint in ``checkpoint_dir`` belongs to another model or config (a
        :class:`CheckpointError`).
    """
    from covercast.generators.data import fresh_cover_seed

    config = DiffusionTrainConfig() if config is None else config
    check_dataset(dataset, model.config, "diffusion", config.batch_size)
    _check_topics(model, dataset)
    render_args = getattr(dataset, "render_args", None)
    if config.fresh_covers and render_args is None:
        raise ValueError("`fresh_covers=True` needs a dataset made by cover_dataset() (it is "
                         "re-rendered every epoch); this one has no render_args.")
    dev = resolve_device(device)
    model.to(dev).train()
    topic_cond = bool(model.config.topics)
    per_epoch = len(dataset) // config.batch_size
    cache: dict[str, Any] = {}

    def epoch_tensors(epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        key = epoch if config.fresh_covers else 0
        if cache.get("epoch") != key:
            ds = dataset
            if key:
                ds = cover_dataset(**{**render_args,
                                      "seed": fresh_cover_seed(render_args["seed"], key)})
            x, y = ds.tensors(dev)
            tp = ds.topic_tensor(dev) if isinstance(ds, CoverDataset) else None
            cache.clear()
            cache.update(epoch=key, data=(x, y, tp))
        return cache["data"]

    opt = torch.optim.AdamW(model.unet.parameters(), lr=config.lr,
                            weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(config.seed)
    modules: dict[str, nn.Module] = {"unet": model.unet}
    ema: nn.Module | None = None
    if config.ema_decay > 0:
        ema = copy.deepcopy(model.unet).requires_grad_(False)
        modules["ema"] = ema

    def step_fn(step: int) -> dict[str, float]:
        x_all, y_all, t_all = epoch_tensors(step // per_epoch)
        idx = batch_indices(len(dataset), config.batch_size, step, config.seed).to(dev)
        lr = set_learning_rate(opt, config.lr, step, config.warmup_steps)
        loss = model.loss(x_all[idx], y_all[idx], generator=g,
                          cond_drop_prob=config.cond_drop_prob,
                          topics=t_all[idx] if topic_cond else None,
                          topic_drop_prob=config.topic_drop_prob,
                          min_snr_gamma=config.min_snr_gamma, offset_noise=config.offset_noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = (nn.utils.clip_grad_norm_(model.unet.parameters(), config.grad_clip)
              if config.grad_clip > 0 else torch.tensor(0.0))
        opt.step()
        if ema is not None:
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), model.unet.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - decay)
        return {"loss": loss.item(), "lr": lr, "grad_norm": float(gn)}

    result = run_training(kind="diffusion", model_config=config_to_dict(model.config),
                          train_config=config_to_dict(config), modules=modules,
                          optimizers={"opt": opt}, generators={"train": g}, step_fn=step_fn,
                          total_steps=config.steps, device=dev, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                          callback=callback, desc="train diffusion")
    if ema is not None:
        model.unet.load_state_dict(ema.state_dict())
    model.eval()
    return result


__all__ = ["DiffusionConfig", "DiffusionTrainConfig", "DiffusionCoverGenerator", "SAMPLERS",
           "DEFAULT_SAMPLING",
           "train_diffusion", "build_unet", "CheckpointError", "CheckpointNotFoundError"]
