r"""VAE-IAT: the adversarially trained variational cover generator of seed 001 (torch).

Seed 001 (Ji, Jin & Chen 2025, section II.B) describes VAE-IAT for sequences of tokens; this
module builds it for images, reading an image as a sequence of rows. The parts and where they
come from in the paper:

**Encoder** :math:`E_\alpha` (II.B.2, eqs. 6-9). Two feature extractors read the image:

* a *short-range* branch, an LSTM that reads the image row by row (each row, all its pixels
  and channels, is one time step); its last hidden state, through a fully connected layer, is
  the short-range feature :math:`f^l`;
* a *long-range* branch, a CNN (strided convolutions, leaky ReLU) whose flattened output,
  through a fully connected layer, is the long-range feature :math:`f^c`.

The feature-processing layers map them to the mean :math:`\mu` and the log-variance
:math:`\log\sigma^2` of :math:`q(z \mid x)`. With ``fusion="paper"`` the mapping is the
paper's: :math:`\mu` from :math:`f^l`, :math:`\log\sigma^2` from :math:`f^c`; with
``fusion="concat"`` both come from the concatenation :math:`[f^l, f^c]`. The style embedding
is appended to the features (a conditional VAE), so :math:`z` can spend its capacity on what
varies within a style. The fused latent is drawn with the reparameterization trick,
:math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim N(0, I)` (eq. 8), and the KL
divergence to :math:`N(0, I)` is eq. 9.

**Generator** :math:`G_\theta` (eqs. 10-11). An LSTM over rows conditioned on :math:`z` and on
the style: at step :math:`t` it takes :math:`[z, s, x_{t-1}]` (the previous row, zeros at
:math:`t = 1`) and the state :math:`h_{t-1}` and emits row :math:`t` (a linear layer and
``tanh`` on :math:`h_t`); :math:`[z, s]` also sets the initial state. For pixels the softmax of
eq. 11 becomes a Gaussian mean and the NLL of eq. 12 a squared error. ``row_feedback=False``
drops :math:`x_{t-1}` from the input (a non-autoregressive row LSTM). ``decoder="conv"``
replaces the LSTM by a DCGAN-style transposed-convolution decoder
(:class:`~covercast.generators.dcgan.ConvDecoder`).

**Discriminator** :math:`D_\phi` (II.B.3, eq. 13): a CNN (:class:`ConvDiscriminator` without
batch norm) giving the probability that an image is real. The paper's model has no style, so
its discriminator is unconditional (``conditional_discriminator=False``); by default ours also
sees the style weights as constant input channels (a cGAN critic, Mirza & Osindero 2014), so
that phase 2 penalises prior samples that do not look like the style they were asked for --
the "semantic accuracy" of generated covers.

**Training** (eqs. 16-17), in two phases as the paper (after SeqGAN):

1. *Pre-training* of encoder and generator on :math:`l_{G_\theta} + l_{E_\alpha}` -- the
   reconstruction NLL plus :math:`\beta` KL (with a KL warm-up). The pixel likelihood is a
   Gaussian whose variance is, by default, calibrated to the current reconstruction error
   (sigma-VAE, Rybkin et al. 2021), which keeps the two terms balanced. The LSTM generator is trained
   with teacher forcing (the real previous row as input, eq. 10 as written), free-running (its
   own previous row, as when sampling) or both (``phase1_mode``).
2. *Adversarial training* in the manner of VAE/GAN (Larsen et al. 2016): the discriminator
   learns to tell real images from reconstructions and from samples of the prior; the
   reconstruction error is measured in the discriminator's last hidden layer
   (:math:`\mathcal{L}^{Dis_l}_{llike}`) as well as in pixels; the encoder minimises
   :math:`\beta\,KL + \mathcal{L}^{Dis_l}_{llike} + \lambda_{pix}\mathcal{L}^{pix}`, the
   generator :math:`\gamma\mathcal{L}^{Dis_l}_{llike} + \lambda_{pix}\mathcal{L}^{pix} +
   \lambda_{adv}\mathcal{L}_{GAN}` (non-saturating), the discriminator the GAN loss; each
   network's gradient is taken of its own loss only.

**Why the reparameterized gradient and not the paper's policy gradient.** The paper trains
the generator in phase 2 with SeqGAN's Monte-Carlo policy gradient (eqs. 14, 15, 18): each next
token is a *discrete* draw from a softmax, so :math:`D(G(z))` is not differentiable in
:math:`\theta`; SeqGAN treats the token as an action, completes partial sequences by Monte-Carlo
roll-outs to estimate :math:`Q(a = x_t, s = x_{1:t-1})` with the discriminator, and follows the
REINFORCE gradient :math:`E[\nabla_\theta \log G_\theta(x_t \mid s) Q]`. Pixels are continuous:
the generator emits each row as a deterministic, differentiable function of :math:`z`, the style
and its previous rows, so the discriminator's score of a whole free-running image can be
differentiated exactly through all rows and, through the reparameterization
:math:`z = \mu + \sigma\epsilon`, into the encoder. That pathwise gradient is unbiased and of far
lower variance than REINFORCE with roll-outs, and it needs no roll-outs at all (a roll-out of
the rest of an image *is* the free-running decode, computed once). The quantity optimised is the
same -- the discriminator's judgement of complete generated images, credited to every row --
so the method keeps the paper's intent while using the estimator that fits continuous outputs.

**Speed.** Decoding is fast on a CPU: the LSTM's input projection of :math:`[z, s]` is computed
once per image and each row step is two small matrix products (figures in
``docs/results/notes/generators.md``; ``covercast bench generators`` measures them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from covercast._io import check_fields, check_int
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.generators.data import ImageDataset
from covercast.generators.dcgan import ConvDecoder, ConvDiscriminator
from covercast.generators.training import (
    CoverGenerator,
    ModelConfig,
    StyleSpec,
    TrainResult,
    batch_indices,
    check_dataset,
    check_image_size,
    check_power_of_two_size,
    config_to_dict,
    images_to_tensor,
    labels_to_weights,
    randn,
    resolve_device,
    run_training,
    seeded_init,
    set_learning_rate,
    style_weights,
    tensor_to_images,
)

_FUSIONS = ("paper", "concat")
_DECODERS = ("lstm", "conv")
_PHASE1_MODES = ("teacher", "free", "both")


@dataclass(frozen=True)
class VAEIATConfig(ModelConfig):
    """Architecture of a :class:`VAEIAT` model (defaults: 32x32 RGB covers)."""

    _TINY = dict(latent_dim=8, style_embed_dim=4, encoder_channels=(8, 16),
                 encoder_lstm_hidden=16, feature_dim=16, generator_hidden=32, conv_width=8,
                 disc_width=8)
    _TUPLES = ("encoder_channels",)

    styles: tuple[str, ...] = DEFAULT_STYLES
    """Style names, in label order."""
    image_size: int = 32
    """Side of the square images: ``4 * 2**k`` and a multiple of
    ``2 ** len(encoder_channels)`` (16, 32, 64 with the defaults)."""
    channels: int = 3
    """Image channels: 3 (RGB) or 1 (grey)."""
    latent_dim: int = 32
    """Dimension of the fused latent ``z``."""
    style_embed_dim: int = 16
    """Dimension of the learned style embedding given to the encoder heads and the generator."""
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    """Widths of the CNN (long-range) branch, one stride-2 convolution each."""
    encoder_lstm_hidden: int = 128
    """Hidden size of the row LSTM (short-range) branch."""
    feature_dim: int = 128
    """Size of each of the features ``f^l`` and ``f^c``."""
    fusion: str = "paper"
    """``"paper"``: mu from ``f^l`` and log-variance from ``f^c`` (section II.B.2);
    ``"concat"``: both from ``[f^l, f^c]``."""
    decoder: str = "lstm"
    """Generator: ``"lstm"`` (the paper's LSTM over rows) or ``"conv"`` (DCGAN-style)."""
    generator_hidden: int = 256
    """Hidden size of the LSTM generator."""
    row_feedback: bool = True
    """Feed the previous row to the LSTM generator (eq. 10); False: only ``[z, s]``."""
    conv_width: int = 32
    """Width of the conv decoder at its last upsampling (``decoder="conv"``)."""
    disc_width: int = 32
    """Discriminator width at its first convolution."""
    conditional_discriminator: bool = True
    """Give the discriminator the style weights as extra input channels (a cGAN critic), so
    that phase 2 also penalises samples that do not look like their style. ``False`` is the
    paper's unconditional discriminator."""

    def __post_init__(self) -> None:
        self._check_common()
        check_fields(self, ints=("latent_dim", "style_embed_dim", "encoder_lstm_hidden",
                                 "feature_dim", "generator_hidden", "conv_width", "disc_width"),
                     choices={"fusion": _FUSIONS, "decoder": _DECODERS})
        if not self.encoder_channels:
            raise ValueError("`encoder_channels` needs at least one width, got ().")
        for w in self.encoder_channels:
            check_int(w, "encoder_channels entries")
        check_power_of_two_size(self.image_size, 4, "VAE-IAT's discriminator")
        check_image_size(self.image_size, 2 ** len(self.encoder_channels),
                         f"VAE-IAT's CNN encoder branch ({len(self.encoder_channels)} stride-2 "
                         "convolutions)")


@dataclass(frozen=True)
class VAEIATTrainConfig:
    """How a :class:`VAEIAT` is trained (:func:`train_vae_iat`): phase 1 then phase 2."""

    phase1_steps: int = 4000
    """Pre-training steps of encoder and generator (reconstruction + KL)."""
    phase2_steps: int = 4000
    """Adversarial steps (VAE/GAN)."""
    batch_size: int = 64
    """Images per step."""
    lr: float = 1e-3
    """Adam learning rate of phase 1 (after warm-up)."""
    warmup_steps: int = 200
    """Linear learning-rate warm-up of phase 1."""
    lr_phase2: float = 2e-4
    """Adam learning rate of the three networks in phase 2 (betas 0.5, 0.999)."""
    kl_weight: float = 1.0
    """beta of the KL term (1: the ELBO under ``pixel_sigma``)."""
    kl_warmup_steps: int = 1000
    """Phase-1 steps over which beta rises linearly from 0."""
    pixel_sigma: float | None = None
    """Standard deviation of the Gaussian pixel likelihood (pixels in [-1, 1]); the pixel
    NLL per pixel is ``(x - x_hat)**2 / (2 sigma**2) + log sigma``. ``None``: *calibrated*, the
    maximum-likelihood ``sigma**2`` = the batch's mean squared error (sigma-VAE, Rybkin et al.
    2021), which keeps reconstruction and KL balanced as the reconstructions improve."""
    phase1_mode: str = "both"
    """LSTM generator in phase 1: ``"teacher"`` forcing, ``"free"``-running, or ``"both"``
    (mean of the two reconstruction losses). Ignored by the conv decoder."""
    gamma: float = 1.0
    """Weight of the discriminator-feature reconstruction in the generator's loss."""
    pixel_weight: float = 1.0
    """Weight of the pixel reconstruction NLL in phase 2 (0: pure VAE/GAN)."""
    adv_weight: float = 1.0
    """Weight of the generator's adversarial loss in phase 2."""
    grad_clip: float = 5.0
    """Gradient-norm clipping per network (0: none)."""
    seed: int = 0
    """Seed of the batch order and of every latent and noise draw."""

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size",), positive=("lr", "lr_phase2"),
                     counts=("phase1_steps", "phase2_steps", "warmup_steps", "kl_warmup_steps",
                             "seed"),
                     nonneg=("kl_weight", "gamma", "pixel_weight", "adv_weight", "grad_clip"),
                     choices={"phase1_mode": _PHASE1_MODES})
        if self.pixel_sigma is not None and not self.pixel_sigma > 0:
            raise ValueError(f"`pixel_sigma` must be > 0 or None (calibrated), got "
                             f"{self.pixel_sigma!r}.")

    @property
    def steps(self) -> int:
        """Steps of the whole run (phase 1 + phase 2)."""
        return self.phase1_steps + self.phase2_steps


def image_to_rows(x: torch.Tensor) -> torch.Tensor:
    """Images ``(n, C, H, W)`` to row sequences ``(n, H, W * C)``."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h, w * c)


def rows_to_image(rows: torch.Tensor, channels: int) -> torch.Tensor:
    """Row sequences ``(n, H, W * C)`` to images ``(n, C, H, W)``."""
    n, h, wc = rows.shape
    return rows.reshape(n, h, wc // channels, channels).permute(0, 3, 1, 2)


class VAEIATEncoder(nn.Module):
    """The encoder :math:`E_\\alpha`: a row-LSTM branch and a CNN branch fused into
    ``(mu, log_var)`` (see the module docstring)."""

    def __init__(self, config: VAEIATConfig) -> None:
        super().__init__()
        c, s = config.channels, config.image_size
        self.fusion = config.fusion
        convs: list[nn.Module] = []
        cin = c
        for w in config.encoder_channels:
            convs += [nn.Conv2d(cin, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            cin = w
        self.cnn = nn.Sequential(*convs, nn.Flatten())
        side = s // 2 ** len(config.encoder_channels)
        self.fc_long = nn.Sequential(nn.Linear(cin * side * side, config.feature_dim),
                                     nn.LeakyReLU(0.2, inplace=True))
        self.row_lstm = nn.LSTM(s * c, config.encoder_lstm_hidden, batch_first=True)
        self.fc_short = nn.Sequential(nn.Linear(config.encoder_lstm_hidden, config.feature_dim),
                                      nn.LeakyReLU(0.2, inplace=True))
        f, e, d = config.feature_dim, config.style_embed_dim, config.latent_dim
        if self.fusion == "paper":
            self.to_mu = nn.Linear(f + e, d)
            self.to_logvar = nn.Linear(f + e, d)
        else:
            self.to_stats = nn.Linear(2 * f + e, 2 * d)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The short-range and long-range features ``(f_l, f_c)`` (eq. 6)."""
        _, (h, _) = self.row_lstm(image_to_rows(x))
        return self.fc_short(h[-1]), self.fc_long(self.cnn(x))

    def forward(self, x: torch.Tensor, style_emb: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)`` of ``q(z | x, s)`` (eq. 7), each ``(n, latent_dim)``."""
        f_l, f_c = self.features(x)
        if self.fusion == "paper":
            mu = self.to_mu(torch.cat([f_l, style_emb], 1))
            logvar = self.to_logvar(torch.cat([f_c, style_emb], 1))
        else:
            mu, logvar = self.to_stats(torch.cat([f_l, f_c, style_emb], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class RowLSTMGenerator(nn.Module):
    """The generator :math:`G_\\theta`: an LSTM that emits one image row per step.

    The input of step ``t`` is ``[z, s, x_{t-1}]`` (``[z, s]`` without ``row_feedback``);
    ``[z, s]`` also sets the initial state. :meth:`forward` runs free (its own rows fed back,
    as when sampling) unless ``teacher`` rows are given (teacher forcing).
    """

    def __init__(self, cond_dim: int, image_size: int, channels: int, hidden: int,
                 row_feedback: bool) -> None:
        super().__init__()
        self.rows, self.channels = image_size, channels
        self.row_dim = image_size * channels
        self.cond_dim, self.hidden = cond_dim, hidden
        self.row_feedback = row_feedback
        self.init_state = nn.Linear(cond_dim, 2 * hidden)
        self.lstm = nn.LSTM(cond_dim + (self.row_dim if row_feedback else 0), hidden,
                            batch_first=True)
        self.to_row = nn.Linear(hidden, self.row_dim)

    def _state0(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0, c0 = torch.tanh(self.init_state(cond)).chunk(2, dim=1)
        return h0.contiguous(), c0.contiguous()

    def forward(self, cond: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(n, C, S, S)`` in [-1, 1] from conditioning ``[z, s]`` ``(n, cond_dim)``.

        ``teacher``: real images ``(n, C, S, S)`` whose rows are fed as the previous rows
        (teacher forcing); ``None`` decodes free-running.
        """
        n = len(cond)
        h0, c0 = self._state0(cond)
        if teacher is not None or not self.row_feedback:
            seq = cond[:, None, :].expand(n, self.rows, self.cond_dim)
            if self.row_feedback:
                prev = F.pad(image_to_rows(teacher), (0, 0, 1, 0))[:, :-1]
                seq = torch.cat([seq, prev], dim=2)
            out, _ = self.lstm(seq, (h0[None], c0[None]))
            return rows_to_image(torch.tanh(self.to_row(out)), self.channels)
        return self._free_run(cond, h0, c0)

    def _free_run(self, cond: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # The LSTM cell written out with the nn.LSTM weights (gate order i, f, g, o), with the
        # constant [z, s] part of the input projection computed once per image.
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        static = torch.addmm(self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0, cond,
                             w_ih[:, :self.cond_dim].t())
        w_row = w_ih[:, self.cond_dim:].t()
        w_hh_t = w_hh.t()
        w_out, b_out = self.to_row.weight.t(), self.to_row.bias
        row = cond.new_zeros(len(cond), self.row_dim)
        rows = []
        for _ in range(self.rows):
            gates = static + row @ w_row + h @ w_hh_t
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            row = torch.tanh(torch.addmm(b_out, h, w_out))
            rows.append(row)
        return rows_to_image(torch.stack(rows, dim=1), self.channels)


class VAEIAT(CoverGenerator):
    """VAE-IAT cover generator: encoder, generator and discriminator (module docstring).

    Parameters
    ----------
    config
        Architecture (default :class:`VAEIATConfig`).
    seed
        Seed of the weight initialisation (the global torch RNG is left untouched).

    Examples
    --------
    >>> model = VAEIAT(VAEIATConfig.tiny())
    >>> model.sample("pastel", 3, generator=torch.Generator().manual_seed(0)).shape
    (3, 32, 32, 3)
    """

    kind = "vae_iat"
    config_class = VAEIATConfig

    def __init__(self, config: VAEIATConfig | None = None, *, seed: int = 0) -> None:
        config = VAEIATConfig() if config is None else config
        if not isinstance(config, VAEIATConfig):
            raise TypeError(f"`config` must be a VAEIATConfig, got {type(config).__name__}.")
        super().__init__(config)
        cond_dim = config.latent_dim + config.style_embed_dim
        with seeded_init(seed):
            self.style_embedding = nn.Linear(len(config.styles), config.style_embed_dim,
                                             bias=False)
            self.encoder = VAEIATEncoder(config)
            if config.decoder == "lstm":
                self.generator_net: nn.Module = RowLSTMGenerator(
                    cond_dim, config.image_size, config.channels, config.generator_hidden,
                    config.row_feedback)
            else:
                self.generator_net = ConvDecoder(cond_dim, config.image_size, config.channels,
                                                 config.conv_width)
            self.discriminator = ConvDiscriminator(
                config.image_size, config.channels, config.disc_width,
                cond_dim=len(config.styles) if config.conditional_discriminator else 0,
                batchnorm=False)

    # ------------------------------------------------------------------ the model
    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def encode(self, x: torch.Tensor, weights: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)`` of images ``(n, C, S, S)`` in [-1, 1] with style weights."""
        return self.encoder(x, self.style_embedding(weights))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """``z = mu + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` from ``generator``."""
        return mu + torch.exp(0.5 * logvar) * randn(mu.shape, generator, mu.device)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) of each sample, ``(n,)`` (eq. 9)."""
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)

    def decode(self, z: torch.Tensor, weights: torch.Tensor, *,
               teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(n, C, S, S)`` in [-1, 1] from latents and style weights.

        ``teacher`` (LSTM generator with row feedback only): real images whose rows are fed
        back instead of the generated ones (teacher forcing).
        """
        cond = torch.cat([z, self.style_embedding(weights)], dim=1)
        if isinstance(self.generator_net, RowLSTMGenerator):
            return self.generator_net(cond, teacher=teacher)
        return self.generator_net(cond)

    def discriminate(self, x: torch.Tensor, weights: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator logits ``(n,)`` and last hidden layer of images with their styles
        (the styles are ignored by an unconditional discriminator)."""
        cond = weights if self.config.conditional_discriminator else None
        return self.discriminator.features(x, cond)

    # ------------------------------------------------------------------ public helpers
    @torch.no_grad()
    def decode_latent(self, z: np.ndarray | torch.Tensor, style: StyleSpec) -> np.ndarray:
        """Covers (uint8 ``(n, H, W, 3)``) for given latents ``(n, latent_dim)`` and styles.

        Deterministic: the entry point for a conditioning chosen by an agent (a latent
        direction and/or a style mixture).
        """
        z = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z,
                            dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or not torch.isfinite(z).all():
            raise ValueError(f"`z` must be finite with shape (n, {self.latent_dim}), got "
                             f"{tuple(z.shape)}.")
        w = style_weights(style, len(z), self.styles)
        was = self.training
        self.eval()
        try:
            return tensor_to_images(self.decode(z.to(self.device), w.to(self.device)))
        finally:
            self.train(was)

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray, style: StyleSpec) -> np.ndarray:
        """Encode uint8 images (posterior means) and decode them; uint8 ``(n, H, W, 3)``."""
        x = images_to_tensor(images, self.config.channels)
        if x.shape[-1] != self.image_size:
            raise ValueError(f"Images are {x.shape[-1]}px but the model takes "
                             f"{self.image_size}px.")
        w = style_weights(style, len(x), self.styles).to(self.device)
        was = self.training
        self.eval()
        try:
            mu, _ = self.encode(x.to(self.device), w)
            return tensor_to_images(self.decode(mu, w))
        finally:
            self.train(was)

    def _check_sample_kwargs(self, temperature: float = 1.0) -> None:
        if not np.isfinite(temperature) or temperature < 0:
            raise ValueError(f"`temperature` must be finite and >= 0, got {temperature!r}.")

    def _draw_noise(self, n: int, generator: torch.Generator | None, *,
                    temperature: float = 1.0) -> torch.Tensor:
        return randn((n, self.latent_dim), generator, torch.device("cpu")) * temperature

    def _generate(self, weights: torch.Tensor, generator: torch.Generator | None, *,
                  noise: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(noise.to(weights.device), weights)

    def sample(self, style: StyleSpec, n: int, *, generator: torch.Generator | None = None,
               temperature: float = 1.0, batch_size: int = 1024, progress: bool = False
               ) -> np.ndarray:
        """Generate ``n`` covers of ``style`` from the prior; uint8 ``(n, H, W, 3)``.

        ``z ~ N(0, temperature**2 I)`` drawn from ``generator`` for all ``n`` at once, then
        decoded in batches (see :meth:`CoverGenerator.sample`).
        """
        return super().sample(style, n, generator=generator, batch_size=batch_size,
                              progress=progress, temperature=temperature)


def _set_grads(loss: torch.Tensor, params: list[nn.Parameter], clip: float) -> float:
    """Put d(loss)/d(params) in ``.grad`` (other parameters untouched); clip; return the norm."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    for p, grad in zip(params, grads, strict=True):
        p.grad = grad
    return float(nn.utils.clip_grad_norm_(params, clip)) if clip > 0 else 0.0


def train_vae_iat(model: VAEIAT, dataset: ImageDataset,
                  config: VAEIATTrainConfig | None = None, *,
                  checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1000,
                  resume: bool = True, progress: bool = True, callback: Any = None,
                  device: str | torch.device | None = None) -> TrainResult:
    """Train VAE-IAT: phase 1 (reconstruction + KL), then phase 2 (adversarial, VAE/GAN).

    Metrics per step: phase 1 -- ``loss``, ``recon`` (pixel NLL per pixel), ``mse`` (of the
    free-running reconstruction when it is computed), ``kl`` (nats per image), ``beta``;
    phase 2 -- ``d_loss``, ``g_adv``, ``feat_rec``, ``recon``, ``mse``, ``kl``, ``d_real``,
    ``d_fake``. Every metric dict has ``phase``.

    Parameters
    ----------
    model, dataset, config
        The model (trained in place), images whose class names are its styles, and the
        hyper-parameters (default :class:`VAEIATTrainConfig`).
    checkpoint_dir, checkpoint_every, resume, progress, callback
        See :func:`covercast.generators.training.run_training`. A run can be resumed with a
        larger ``phase2_steps``.
    device
        ``None``: cuda if available.
    """
    config = VAEIATTrainConfig() if config is None else config
    check_dataset(dataset, model.config, "VAE-IAT", config.batch_size)
    dev = resolve_device(device)
    model.to(dev).train()
    x_all, y_all = dataset.tensors(dev)
    k = model.n_styles
    enc_params = list(model.encoder.parameters())
    gen_params = list(model.generator_net.parameters()) + list(model.style_embedding.parameters())
    dis_params = list(model.discriminator.parameters())
    opt1 = torch.optim.Adam(enc_params + gen_params, lr=config.lr)
    betas = (0.5, 0.999)
    opt_e = torch.optim.Adam(enc_params, lr=config.lr_phase2, betas=betas)
    opt_g = torch.optim.Adam(gen_params, lr=config.lr_phase2, betas=betas)
    opt_d = torch.optim.Adam(dis_params, lr=config.lr_phase2, betas=betas)
    g = torch.Generator().manual_seed(config.seed)
    n_pix = model.config.channels * model.image_size ** 2
    is_lstm = isinstance(model.generator_net, RowLSTMGenerator) and model.config.row_feedback

    def pixel_nll(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian NLL per pixel (up to the constant log(2 pi) / 2) and the MSE."""
        mse = F.mse_loss(x_hat, x)
        if config.pixel_sigma is None:
            var = mse.detach().clamp_min(1e-6)
        else:
            var = torch.tensor(config.pixel_sigma ** 2, device=mse.device)
        return mse / (2.0 * var) + 0.5 * torch.log(var), mse

    def phase1(step: int, x: torch.Tensor, w: torch.Tensor) -> dict[str, float]:
        set_learning_rate(opt1, config.lr, step, config.warmup_steps)
        beta = config.kl_weight * (min(1.0, (step + 1) / config.kl_warmup_steps)
                                   if config.kl_warmup_steps else 1.0)
        mu, logvar = model.encode(x, w)
        z = model.reparameterize(mu, logvar, g)
        if is_lstm and config.phase1_mode != "free":
            recon, mse = pixel_nll(model.decode(z, w, teacher=x), x)
            if config.phase1_mode == "both":
                recon_free, mse_free = pixel_nll(model.decode(z, w), x)
                recon, mse = 0.5 * (recon + recon_free), mse_free
        else:
            recon, mse = pixel_nll(model.decode(z, w), x)
        kl = model.kl(mu, logvar).mean()
        loss = recon + beta * kl / n_pix
        opt1.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(enc_params + gen_params, config.grad_clip)
        opt1.step()
        return {"phase": 1.0, "loss": loss.item(), "recon": recon.item(), "mse": mse.item(),
                "kl": kl.item(), "beta": beta}

    def phase2(x: torch.Tensor, w: torch.Tensor) -> dict[str, float]:
        mu, logvar = model.encode(x, w)
        z = model.reparameterize(mu, logvar, g)
        x_rec = model.decode(z, w)
        x_prior = model.decode(randn(z.shape, g, dev), w)
        d_real, f_real = model.discriminate(x, w)
        d_rec, f_rec = model.discriminate(x_rec, w)
        d_prior, _ = model.discriminate(x_prior, w)
        ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_real)
        bce = F.binary_cross_entropy_with_logits
        d_loss = bce(d_real, ones) + 0.5 * (bce(d_rec, zeros) + bce(d_prior, zeros))
        g_adv = 0.5 * (bce(d_rec, ones) + bce(d_prior, ones))
        feat_rec = 0.5 * F.mse_loss(f_rec, f_real.detach())
        recon, mse = pixel_nll(x_rec, x)
        kl = model.kl(mu, logvar).mean()
        e_loss = config.kl_weight * kl / n_pix + feat_rec + config.pixel_weight * recon
        g_loss = (config.gamma * feat_rec + config.pixel_weight * recon
                  + config.adv_weight * g_adv)
        # Each network gets the gradient of its own loss, all taken before any update.
        _set_grads(e_loss, enc_params, config.grad_clip)
        _set_grads(g_loss, gen_params, config.grad_clip)
        _set_grads(d_loss, dis_params, config.grad_clip)
        for opt in (opt_e, opt_g, opt_d):
            opt.step()
            opt.zero_grad(set_to_none=True)
        return {"phase": 2.0, "d_loss": d_loss.item(), "g_adv": g_adv.item(),
                "feat_rec": feat_rec.item(), "recon": recon.item(), "mse": mse.item(),
                "kl": kl.item(),
                "d_real": torch.sigmoid(d_real).mean().item(),
                "d_fake": torch.sigmoid(d_prior).mean().item()}

    def step_fn(step: int) -> dict[str, float]:
        idx = batch_indices(len(dataset), config.batch_size, step, config.seed).to(dev)
        x, w = x_all[idx], labels_to_weights(y_all[idx], k)
        return phase1(step, x, w) if step < config.phase1_steps else phase2(x, w)

    result = run_training(kind="vae_iat", model_config=config_to_dict(model.config),
                          train_config=config_to_dict(config), modules={"model": model},
                          optimizers={"phase1": opt1, "encoder": opt_e, "generator": opt_g,
                                      "discriminator": opt_d},
                          generators={"train": g}, step_fn=step_fn, total_steps=config.steps,
                          device=dev, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                          callback=callback, resume_free=("phase2_steps",),
                          desc="train vae-iat")
    model.eval()
    return result


__all__ = ["VAEIAT", "VAEIATConfig", "VAEIATTrainConfig", "VAEIATEncoder",
           "RowLSTMGenerator", "train_vae_iat", "image_to_rows", "rows_to_image"]
