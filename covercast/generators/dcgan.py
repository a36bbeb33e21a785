"""Class-conditional DCGAN: the "Baseline GAN" of seed 000's Table 1 (torch).

A DCGAN (Radford et al. 2016) made class-conditional in the simplest standard way (Mirza &
Osindero 2014): the generator maps a Gaussian latent concatenated with a learned style
embedding through a linear projection to a 4x4 map and transposed convolutions (batch norm,
ReLU, ``tanh`` output) up to the image size; the discriminator sees the image with the style
weights broadcast as extra constant channels and reduces it with strided convolutions (leaky
ReLU, batch norm after the first layer) to one logit. Training is the non-saturating GAN game
with Adam(2e-4, betas (0.5, 0.999)), as in the DCGAN paper.

The building blocks :class:`ConvDecoder` and :class:`ConvDiscriminator` are shared with
VAE-IAT (:mod:`covercast.generators.vae_iat`), whose conv decoder option is this generator
body and whose discriminator is this one without batch norm or conditioning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from covercast._io import check_fields
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.generators.data import ImageDataset
from covercast.generators.training import (
    CoverGenerator,
    ModelConfig,
    TrainResult,
    batch_indices,
    check_dataset,
    check_power_of_two_size,
    config_to_dict,
    labels_to_weights,
    randn,
    resolve_device,
    run_training,
    seeded_init,
)


class ConvDecoder(nn.Module):
    """DCGAN generator body: a vector ``(n, in_dim)`` to images ``(n, channels, S, S)``.

    ``S = 4 * 2**k``: a linear projection to ``(width * 2**(k-1), 4, 4)``, then ``k``
    transposed convolutions (kernel 4, stride 2) halving the width each time, batch norm and
    ReLU between them, ``tanh`` at the end.
    """

    def __init__(self, in_dim: int, image_size: int, channels: int, width: int) -> None:
        super().__init__()
        k = check_power_of_two_size(image_size, 4, "a DCGAN-style conv decoder")
        c0 = width * 2 ** (k - 1)
        self.c0 = c0
        self.project = nn.Sequential(nn.Linear(in_dim, c0 * 16, bias=False),
                                     nn.BatchNorm1d(c0 * 16), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c = c0
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(h).view(len(h), self.c0, 4, 4))


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: images ``(n, channels, S, S)`` to logits ``(n,)``.

    ``S = 4 * 2**k``: ``k`` strided convolutions (kernel 4, stride 2, leaky ReLU 0.2) doubling
    the width from ``width``, then a 4x4 convolution to one logit. With ``cond_dim > 0`` the
    conditioning vector is broadcast as ``cond_dim`` constant input channels. :meth:`features`
    also returns the last hidden layer, flattened (the "Dis_l" layer of VAE/GAN).
    """

    def __init__(self, image_size: int, channels: int, width: int, cond_dim: int = 0,
                 batchnorm: bool = True) -> None:
        super().__init__()
        k = check_power_of_two_size(image_size, 4, "a DCGAN-style conv discriminator")
        self.cond_dim = cond_dim
        layers: list[nn.Module] = [nn.Conv2d(channels + cond_dim, width, 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for _ in range(k - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=not batchnorm)]
            if batchnorm:
                layers += [nn.BatchNorm2d(2 * c)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c *= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 1, 4, 1, 0)
        self.feature_dim = c * 16

    def _input(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.cond_dim:
            if cond is None:
                raise ValueError("This discriminator is conditional: pass `cond` (n, "
                                 f"{self.cond_dim}).")
            maps = cond[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, maps.to(x.dtype)], dim=1)
        return x

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(n,)`` and the last hidden layer ``(n, feature_dim)``."""
        h = self.body(self._input(x, cond))
        return self.head(h).flatten(), h.flatten(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(self._input(x, cond))).flatten()


@dataclass(frozen=True)
class DCGANConfig(ModelConfig):
    """Architecture of a :class:`DCGAN`."""

    _TINY = dict(latent_dim=16, style_embed_dim=4, gen_width=8, disc_width=8)

    styles: tuple[str, ...] = DEFAULT_STYLES
    """Style names, in label order."""
    image_size: int = 32
    """Side of the square images: ``4 * 2**k`` (16, 32, 64, ...)."""
    channels: int = 3
    """Image channels: 3 (RGB) or 1 (grey)."""
    latent_dim: int = 64
    """Dimension of the Gaussian latent."""
    style_embed_dim: int = 16
    """Dimension of the learned style embedding concatenated to the latent."""
    gen_width: int = 64
    """Generator width at the last upsampling (doubles towards the 4x4 projection)."""
    disc_width: int = 64
    """Discriminator width at the first convolution (doubles with each downsampling)."""

    def __post_init__(self) -> None:
        self._check_common()
        check_power_of_two_size(self.image_size, 4, "the DCGAN")
        check_fields(self, ints=("latent_dim", "style_embed_dim", "gen_width", "disc_width"))


@dataclass(frozen=True)
class DCGANTrainConfig:
    """How a :class:`DCGAN` is trained (:func:`train_dcgan`)."""

    steps: int = 10_000
    """Optimisation steps (one discriminator and one generator update each)."""
    batch_size: int = 64
    """Real images per step (and as many generated ones)."""
    lr: float = 2e-4
    """Adam learning rate of both networks."""
    beta1: float = 0.5
    """Adam's first-moment decay (0.5 as in DCGAN)."""
    beta2: float = 0.999
    """Adam's second-moment decay."""
    seed: int = 0
    """Seed of the batch order and of the latents."""

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size",), counts=("steps", "seed"), positive=("lr",),
                     fractions=("beta1", "beta2"))


class DCGAN(CoverGenerator):
    """Class-conditional DCGAN cover generator (the baseline GAN).

    Parameters
    ----------
    config
        Architecture (default :class:`DCGANConfig`).
    seed
        Seed of the weight initialisation (DCGAN's N(0, 0.02) init).
    """

    kind = "dcgan"
    config_class = DCGANConfig

    def __init__(self, config: DCGANConfig | None = None, *, seed: int = 0) -> None:
        config = DCGANConfig() if config is None else config
        if not isinstance(config, DCGANConfig):
            raise TypeError(f"`config` must be a DCGANConfig, got {type(config).__name__}.")
        super().__init__(config)
        k = len(config.styles)
        with seeded_init(seed):
            self.style_embedding = nn.Linear(k, config.style_embed_dim, bias=False)
            self.generator_net = ConvDecoder(config.latent_dim + config.style_embed_dim,
                                             config.image_size, config.channels,
                                             config.gen_width)
            self.discriminator = ConvDiscriminator(config.image_size, config.channels,
                                                   config.disc_width, cond_dim=k)
            self.apply(dcgan_init)

    def generate(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Images ``(n, C, S, S)`` in [-1, 1] from latents ``(n, latent_dim)`` and style
        weights ``(n, n_styles)``."""
        return self.generator_net(torch.cat([z, self.style_embedding(weights)], dim=1))

    def _draw_noise(self, n: int, generator: torch.Generator | None,
                    **kwargs: Any) -> torch.Tensor:
        return randn((n, self.config.latent_dim), generator, torch.device("cpu"))

    def _generate(self, weights: torch.Tensor, generator: torch.Generator | None, *,
                  noise: torch.Tensor) -> torch.Tensor:
        return self.generate(noise.to(weights.device), weights)

    def sample(self, style: Any, n: int, *, generator: torch.Generator | None = None,
               batch_size: int = 512, progress: bool = False) -> np.ndarray:
        """Generate ``n`` covers of ``style``; uint8 ``(n, H, W, 3)`` (see
        :meth:`CoverGenerator.sample`)."""
        return super().sample(style, n, generator=generator, batch_size=batch_size,
                              progress=progress)


def dcgan_init(m: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_dcgan(model: DCGAN, dataset: ImageDataset, config: DCGANTrainConfig | None = None,
                *, checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1000,
                resume: bool = True, progress: bool = True, callback: Any = None,
                device: str | torch.device | None = None) -> TrainResult:
    """Train a :class:`DCGAN` with the non-saturating GAN loss.

    Each step updates the discriminator on a real batch (with its styles) and a generated
    batch (same styles, fresh latents), then the generator. Metrics: ``d_loss``, ``g_loss``,
    ``d_real`` and ``d_fake`` (mean discriminator probabilities).

    Parameters
    ----------
    model, dataset, config
        The model (trained in place), images whose class names are its styles, and the
        hyper-parameters (default :class:`DCGANTrainConfig`).
    checkpoint_dir, checkpoint_every, resume, progress, callback
        See :func:`covercast.generators.training.run_training`.
    device
        ``None``: cuda if available.
    """
    config = DCGANTrainConfig() if config is None else config
    check_dataset(dataset, model.config, "DCGAN", config.batch_size)
    dev = resolve_device(device)
    model.to(dev).train()
    x_all, y_all = dataset.tensors(dev)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(list(model.generator_net.parameters())
                             + list(model.style_embedding.parameters()), lr=config.lr,
                             betas=betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=config.lr, betas=betas)
    g = torch.Generator().manual_seed(config.seed)
    k = model.n_styles

    def step_fn(step: int) -> dict[str, float]:
        idx = batch_indices(len(dataset), config.batch_size, step, config.seed).to(dev)
        x, w = x_all[idx], labels_to_weights(y_all[idx], k)
        z = randn((len(idx), model.config.latent_dim), g, dev)
        fake = model.generate(z, w)
        real_logit = model.discriminator(x, w)
        fake_logit = model.discriminator(fake.detach(), w)
        d_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                  + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        gen_logit = model.discriminator(fake, w)
        g_loss = F.binary_cross_entropy_with_logits(gen_logit, torch.ones_like(gen_logit))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": torch.sigmoid(real_logit).mean().item(),
                "d_fake": torch.sigmoid(fake_logit).mean().item()}

    result = run_training(kind="dcgan", model_config=config_to_dict(model.config),
                          train_config=config_to_dict(config),
                          modules={"model": model}, optimizers={"g": opt_g, "d": opt_d},
                          generators={"train": g}, step_fn=step_fn, total_steps=config.steps,
                          device=dev, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                          callback=callback, desc="train dcgan")
    model.eval()
    return result


__all__ = ["DCGAN", "DCGANConfig", "DCGANTrainConfig", "train_dcgan", "ConvDecoder",
           "ConvDiscriminator", "dcgan_init"]
