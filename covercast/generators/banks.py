"""Cover banks from any generator: procedural, diffusion, VAE-IAT or the DCGAN baseline.

:func:`build_bank` makes ``per_style`` covers for every style and packs them into a
:class:`~covercast.covers.bank.CoverBank`, the one cover format every environment and the
population engine take (``Population(params, n, bank=bank)``). What each field holds:

==============  =====================================  =========================================
field           procedural                             learned generators
==============  =====================================  =========================================
``images``      :func:`procedural_bank` covers         ``model.sample(style, per_style)`` from a
                                                       seeded ``torch.Generator``
``style``       the style the cover was rendered for   the style the cover was *asked for*
``topic``       the topic it was rendered for          the cover encoder's most likely topic
                                                       (what a user sees). A topic-conditioned
                                                       generator (the committed diffusion model)
                                                       is *asked* for every style x topic,
                                                       cycling through the topics as procedural
                                                       covers do; the asked topics and how often
                                                       the encoder agrees are in ``meta``.
                                                       VAE-IAT and DCGAN are conditioned on style
                                                       only.
style probs     one-hot (the exact label)              the trained cover encoder's
                                                       :meth:`~covercast.generators.encoder.
                                                       CoverEncoder.style_probs`, so users judge
                                                       a generated cover by what it looks like
``quality``     the cover's craft (a property of the   the *aesthetic proxy* below
                pixels, see :mod:`procedural`)
==============  =====================================  =========================================

Quality of generated covers (the aesthetic proxy)
-------------------------------------------------
A procedural cover's quality is its *craft*: how clean, saturated and well aligned it was drawn
(defects are noise, a wash towards grey, a misplaced and tilted motif). A generated cover has
no craft value, so it is **estimated** (``quality="craft"``, the default): a ridge regression
to craft is fitted on freshly rendered procedural covers (:func:`fit_quality_model`, seeded,
``QUALITY_FIT_PER_STYLE_TOPIC`` covers per style x topic, cached per encoder), and a generated
cover's quality is its prediction, clipped to [0, 1]. The regressors
(:func:`quality_design`) are the cover encoder's penultimate features, the five raw image
attributes and their squares, and those attributes weighted by each style probability (a
noisy cover is "busy" in a different way for a minimal than for a retro style); with the
committed encoder the held-out R^2 is about 0.75 (encoder features alone: about 0.3). Quality therefore means the same thing for every generator -- "how well made does this
cover look, on the scale of procedural craft" -- and blurry or noisy generations score low. The
fit's R^2 on held-out procedural covers is written into the bank's ``meta``. Two alternatives:
``quality="confidence"``, the encoder's largest style probability (how clearly the cover reads
as one style), and ``quality="constant"`` (0.5, i.e. no quality effect on opens).

Checkpoints
-----------
``checkpoint=None`` loads the small models trained by the project and committed under
``covercast/data/checkpoints/`` (:func:`committed_checkpoint`; its ``README.md`` gives the
command that rebuilds each). Any folder written by ``save_pretrained`` works as well.

Banks by name
-------------
:func:`named_bank` is what ``bank="diffusion"`` (``"vae-iat"``, ``"dcgan"``, ``"procedural"``)
means in every environment, benchmark and reproduction (``--bank`` on the command line;
:func:`covercast.envs.base.resolve_bank`): ``"procedural"`` is the default procedural bank
(4 covers per style x topic, 32 px, seed 0); a learned name is :func:`build_bank` from the
committed checkpoint with :data:`NAMED_BANK_PER_STYLE_TOPIC` x 6 topics = 24 covers per style
(as many as the default bank), seed :data:`NAMED_BANK_SEED`, craft quality, on the CPU, with
the checkpoint's own sampler (the committed diffusion model: 20 DDIM steps, eta 1, guidance
2). Building costs about 1 minute for diffusion on one CPU core and a few seconds for VAE-IAT
and DCGAN, so the bank is cached: in the process, and on disk under
:func:`bank_cache_dir` (``$COVERCAST_CACHE_DIR``, else ``$XDG_CACHE_HOME/covercast``, else
``~/.cache/covercast``; ``banks/NAME-KEY.npz``, written atomically) with a key that hashes the
checkpoint's and the encoder's files and the settings above. A second construction -- in this
process or another -- loads it in milliseconds, and a cached bank loads without torch.

Only :func:`build_bank` with ``generator="procedural"`` runs without torch; the learned
generators import it on demand.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.covers.bank import CoverBank

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from covercast.generators.encoder import CoverEncoder
    from covercast.generators.training import CoverGenerator

__all__ = ["GENERATORS", "LEARNED_GENERATORS", "QUALITY_METHODS", "COMMITTED_DIR",
           "committed_checkpoint", "load_generator", "load_encoder", "QualityModel",
           "quality_design", "fit_quality_model", "cover_quality", "label_covers", "build_bank",
           "BANK_NAMES", "BANK_HELP", "NAMED_BANK_PER_STYLE_TOPIC", "NAMED_BANK_SEED",
           "bank_cache_dir", "named_bank_key", "named_bank", "check_bank_spec", "bank_kwargs"]

#: Generators :func:`build_bank` knows by name.
GENERATORS: tuple[str, ...] = ("procedural", "diffusion", "vae-iat", "dcgan")
#: The learned ones (they need torch and a checkpoint).
LEARNED_GENERATORS: tuple[str, ...] = ("diffusion", "vae-iat", "dcgan")
#: How generated covers get their quality (module docstring).
QUALITY_METHODS: tuple[str, ...] = ("craft", "confidence", "constant")
#: Where the committed checkpoints live (one ``from_pretrained`` folder per model name).
COMMITTED_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
#: Procedural covers per style x topic used to fit the craft regression.
QUALITY_FIT_PER_STYLE_TOPIC = 24
#: Ridge penalty of the craft regression (on standardised features).
QUALITY_RIDGE = 1.0

_COMMITTED_NAMES = ("encoder", "diffusion", "vae-iat", "dcgan")


# ---------------------------------------------------------------------------------- loading
def committed_checkpoint(name: str) -> Path:
    """The committed model folder of ``name`` (``encoder``, ``diffusion``, ``vae-iat``,
    ``dcgan``).

    Raises
    ------
    ValueError
        For another name.
    FileNotFoundError
        If the folder is missing (e.g. a source checkout without the data files); the message
        gives the command that rebuilds it.
    """
    if name not in _COMMITTED_NAMES:
        raise ValueError(f"No committed checkpoint is named {name!r}; the committed ones are "
                         f"{list(_COMMITTED_NAMES)}.")
    folder = COMMITTED_DIR / name
    if not (folder / "covercast_model.json").is_file():
        raise FileNotFoundError(
            f"The committed {name} checkpoint is missing ({folder}). Pass --checkpoint DIR (a "
            "folder written by save_pretrained), or rebuild it with `covercast generators "
            "evaluate --out runs/generators` and copy runs/generators/models/"
            f"{name}/model to {folder} (see {COMMITTED_DIR / 'README.md'}).")
    return folder


def _check_generator_name(name: Any) -> str:
    if name not in GENERATORS:
        raise ValueError(f"Unknown generator {name!r}; choose one of {list(GENERATORS)}.")
    return name


def load_generator(name: str, checkpoint: str | os.PathLike | None = None, *,
                   device: str | torch.device | None = None) -> CoverGenerator:
    """Load a learned cover generator from a ``save_pretrained`` folder.

    Parameters
    ----------
    name
        ``"diffusion"``, ``"vae-iat"`` or ``"dcgan"``.
    checkpoint
        The folder; ``None``: the committed checkpoint (:func:`committed_checkpoint`).
    device
        ``None`` / ``"auto"``: cuda when available, else the CPU.

    Raises
    ------
    ValueError
        For an unknown or procedural ``name``, or a folder holding another kind of model
        (a :class:`~covercast.generators.training.CheckpointError`).
    FileNotFoundError
        If the folder or a file in it is missing.
    """
    _check_generator_name(name)
    if name == "procedural":
        raise ValueError("The procedural generator has no checkpoint; call build_bank("
                         "'procedural', ...) or procedural_bank() directly.")
    folder = Path(checkpoint) if checkpoint is not None else committed_checkpoint(name)
    if not folder.exists():
        raise FileNotFoundError(f"No {name} checkpoint at {folder}: the folder does not exist. "
                                "Pass a folder written by save_pretrained (e.g. "
                                f"runs/generators/models/{name}/model), or omit --checkpoint "
                                "to use the committed one.")
    if name == "diffusion":
        from covercast.generators.diffusion import DiffusionCoverGenerator as cls
    elif name == "vae-iat":
        from covercast.generators.vae_iat import VAEIAT as cls
    else:
        from covercast.generators.dcgan import DCGAN as cls
    return cls.from_pretrained(folder, device=device)


def load_encoder(checkpoint: str | os.PathLike | None = None, *,
                 device: str | torch.device | None = None) -> CoverEncoder:
    """Load the cover encoder (``None``: the committed one)."""
    from covercast.generators.encoder import CoverEncoder

    folder = Path(checkpoint) if checkpoint is not None else committed_checkpoint("encoder")
    if not folder.exists():
        raise FileNotFoundError(f"No cover encoder at {folder}: the folder does not exist. "
                                "Pass a folder written by CoverEncoder.save_pretrained, or omit "
                                "it to use the committed encoder.")
    return CoverEncoder.from_pretrained(folder, device=device)


# ---------------------------------------------------------------------------------- quality
def quality_design(images: np.ndarray, encoder: CoverEncoder, *,
                   style_probs: np.ndarray | None = None) -> np.ndarray:
    """Regressors of the craft regression, ``(n, d)``: encoder features, raw attributes and
    their squares, and those ten values times each style probability."""
    from covercast.covers.attributes import raw_cover_attributes

    raw = raw_cover_attributes(images)
    r2 = np.concatenate([raw, raw ** 2], axis=1)
    p = encoder.style_probs(images) if style_probs is None else np.asarray(style_probs)
    inter = (p[:, :, None].astype(np.float64) * r2[:, None, :]).reshape(len(raw), -1)
    return np.concatenate([np.asarray(encoder.features(images), dtype=np.float64), r2, inter],
                          axis=1)


@dataclass(frozen=True)
class QualityModel:
    """A ridge regression from :func:`quality_design` regressors to procedural craft."""

    mean: np.ndarray
    """Regressor means over the fitting covers, ``(d,)``."""
    scale: np.ndarray
    """Regressor standard deviations (1 where one is constant), ``(d,)``."""
    coef: np.ndarray
    """Weights on the standardised regressors, ``(d,)``."""
    intercept: float
    """Mean craft of the fitting covers."""
    r2_heldout: float
    """R^2 of the prediction on held-out procedural covers (a seed apart)."""

    def predict(self, design: np.ndarray) -> np.ndarray:
        """Estimated craft of covers from their :func:`quality_design` rows, in [0, 1]."""
        f = np.asarray(design, dtype=np.float64)
        return np.clip((f - self.mean) / self.scale @ self.coef + self.intercept, 0.0, 1.0)


_QUALITY_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], QualityModel]] = \
    weakref.WeakKeyDictionary()


def fit_quality_model(encoder: CoverEncoder, *, seed: int = 0,
                      per_style_topic: int = QUALITY_FIT_PER_STYLE_TOPIC,
                      ridge: float = QUALITY_RIDGE) -> QualityModel:
    """Fit the craft regression of ``encoder`` on procedural covers; cached per encoder.

    Covers of the encoder's image size and styles/topics are rendered with ``seed`` (fit) and
    ``seed + 1`` (held-out R^2). Deterministic for a given encoder and seed. The fit is
    cached per encoder *object* (weakly, so it goes with the encoder): an encoder whose weights
    are changed in place keeps its old fit, so load or build a new object after training.
    """
    from covercast.covers.procedural import procedural_bank

    key = (int(seed), int(per_style_topic))
    cached = _QUALITY_CACHE.get(encoder, {}).get(key)
    if cached is not None and ridge == QUALITY_RIDGE:
        return cached
    size = int(encoder.config.image_size)
    styles, topics = list(encoder.config.styles), list(encoder.config.topics)

    def data(s: int) -> tuple[np.ndarray, np.ndarray]:
        b = procedural_bank(per_style_topic, size=size, seed=s, styles=styles, topics=topics)
        return quality_design(b.images, encoder), b.quality

    x, y = data(seed)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    d = z.shape[1]
    coef = np.linalg.solve(z.T @ z + ridge * np.eye(d), z.T @ (y - y.mean()))
    model = QualityModel(mean=mean, scale=scale, coef=coef, intercept=float(y.mean()),
                         r2_heldout=float("nan"))
    xh, yh = data(seed + 1)
    pred = model.predict(xh)
    r2 = 1.0 - float(np.sum((yh - pred) ** 2) / max(np.sum((yh - yh.mean()) ** 2), 1e-12))
    model = QualityModel(mean=mean, scale=scale, coef=coef, intercept=float(y.mean()),
                         r2_heldout=r2)
    if ridge == QUALITY_RIDGE:
        _QUALITY_CACHE.setdefault(encoder, {})[key] = model
    return model


def cover_quality(images: np.ndarray, encoder: CoverEncoder | None, method: str = "craft", *,
                  style_probs: np.ndarray | None = None, seed: int = 0
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Quality in [0, 1] of covers by ``method`` (module docstring); returns ``(q, meta)``.

    ``style_probs`` (the encoder's, if already computed) saves a pass for ``"confidence"``.

    Raises
    ------
    ValueError
        For an unknown ``method``, or ``"craft"`` / ``"confidence"`` without an encoder.
    """
    if method not in QUALITY_METHODS:
        raise ValueError(f"Unknown quality method {method!r}; choose one of "
                         f"{list(QUALITY_METHODS)}.")
    n = len(images)
    if method == "constant":
        return np.full(n, 0.5), {"quality": "constant", "quality_value": 0.5}
    if encoder is None:
        raise ValueError(f"quality={method!r} needs the cover encoder; pass one, or use "
                         "quality='constant'.")
    if method == "confidence":
        p = style_probs if style_probs is not None else encoder.style_probs(images)
        return np.clip(p.max(axis=1).astype(np.float64), 0.0, 1.0), {"quality": "confidence"}
    qm = fit_quality_model(encoder, seed=seed)
    q = qm.predict(quality_design(images, encoder, style_probs=style_probs))
    return q, {"quality": "craft", "quality_r2_heldout": round(qm.r2_heldout, 4)}


def label_covers(images: np.ndarray, encoder: CoverEncoder, *, quality: str = "craft",
                 seed: int = 0) -> dict[str, Any]:
    """Style probabilities, most likely topic and quality of generated covers.

    Returns a dict with ``style_probs`` ``(n, n_styles)`` float32, ``topic`` ``(n,)`` int,
    ``quality`` ``(n,)`` float64 and ``meta`` (how quality was computed).
    """
    probs = encoder.style_probs(images)
    topic = encoder.topic_probs(images).argmax(axis=1).astype(np.int64)
    q, meta = cover_quality(images, encoder, quality, style_probs=probs, seed=seed)
    return {"style_probs": probs, "topic": topic, "quality": q, "meta": meta}


# ---------------------------------------------------------------------------------- banks
def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    return int(value)


def build_bank(generator: str, per_style: int, *, checkpoint: str | os.PathLike | None = None,
               encoder: str | os.PathLike | CoverEncoder | None = None, size: int = 32,
               seed: int = 0, quality: str = "craft", device: str | None = "auto",
               batch_size: int | None = None, sample_kwargs: Mapping[str, Any] | None = None,
               model: CoverGenerator | None = None, progress: bool = False,
               topics: bool | None = None) -> CoverBank:
    """Build a cover bank of ``per_style`` covers for every style.

    Parameters
    ----------
    generator
        ``"procedural"``, ``"diffusion"``, ``"vae-iat"`` or ``"dcgan"``.
    per_style
        Covers per style (>= 1). Procedural covers cycle through the topics (``per_style``
        a multiple of the number of topics gives equal counts).
    checkpoint
        Model folder of a learned generator (``None``: the committed checkpoint). Not allowed
        with ``"procedural"``.
    encoder
        The cover encoder, or its folder (``None``: the committed one). Learned generators
        only.
    size
        Side of procedural covers (learned generators make their own size).
    seed
        Seed of the covers (a ``torch.Generator`` for learned generators).
    quality
        How generated covers get their quality (module docstring): ``"craft"``,
        ``"confidence"`` or ``"constant"``. Procedural covers always keep their craft.
    device
        ``"auto"`` (cuda when available), ``"cpu"`` or ``"cuda"``.
    batch_size
        Covers generated at once (default: the model's).
    sample_kwargs
        Options of the model's ``sample`` (e.g. ``num_inference_steps`` for diffusion).
    model
        An already loaded generator (instead of ``checkpoint``); its ``kind`` must fit
        ``generator``.
    progress
        A progress bar over the generation batches (and the procedural pairs).
    topics
        Ask a topic-conditioned generator for each topic, cycling through the topics within a
        style (cover ``i`` of a style gets topic ``i mod n_topics``); ``None`` (default): when
        the generator is conditioned on the encoder's topics. ``False``: the null topic. The
        bank's ``topic`` is still what the encoder sees; ``meta`` keeps the asked topics
        (``requested_topic``) and the share the encoder reads as asked
        (``topic_agreement``). ``True`` with a generator that has no topics is refused.

    Raises
    ------
    ValueError
        For an unknown generator or quality method, a bad count, or a checkpoint that is
        corrupt, of another model, or whose styles differ from the encoder's -- all before
        any cover is made.
    FileNotFoundError
        If a checkpoint folder is missing.
    """
    _check_generator_name(generator)
    per_style = _positive(per_style, "per_style")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
    if quality not in QUALITY_METHODS:
        raise ValueError(f"Unknown quality method {quality!r}; choose one of "
                         f"{list(QUALITY_METHODS)}.")
    t0 = time.perf_counter()
    if generator == "procedural":
        if checkpoint is not None or model is not None:
            raise ValueError("The procedural generator takes no checkpoint or model; drop "
                             "--checkpoint, or pick a learned generator.")
        return _procedural(per_style, size, int(seed), progress, t0)

    import torch

    from covercast.generators.encoder import CoverEncoder
    from covercast.generators.training import resolve_device

    dev = resolve_device(device)
    kinds = {"diffusion": "diffusion", "vae-iat": "vae_iat", "dcgan": "dcgan"}
    if model is None:
        model = load_generator(generator, checkpoint, device=dev)
    elif getattr(model, "kind", None) != kinds[generator]:
        raise ValueError(f"`model` is a {getattr(model, 'kind', type(model).__name__)!r} "
                         f"model, not a {generator!r} one.")
    enc = encoder if isinstance(encoder, CoverEncoder) else load_encoder(encoder, device=dev)
    if list(model.styles) != list(enc.styles):
        raise ValueError(f"The generator's styles {list(model.styles)} differ from the cover "
                         f"encoder's {list(enc.styles)}; use an encoder trained on the same "
                         "styles.")
    if model.config.channels != 3:
        raise ValueError(f"Cover banks hold RGB covers; this {generator} model makes "
                         f"{model.config.channels}-channel images (trained on another data "
                         "set).")
    model.to(dev)
    enc.to(dev)
    kwargs = dict(sample_kwargs or {})
    if batch_size is not None:
        kwargs["batch_size"] = _positive(batch_size, "batch_size")
    n_styles = len(enc.styles)
    style = np.repeat(np.arange(n_styles), per_style)
    conditioned = bool(model.topics)
    if topics and not conditioned:
        raise ValueError(f"This {generator} model is not conditioned on topics; build the bank "
                         "with topics=None or False.")
    if conditioned and list(model.topics) != list(enc.topics):
        raise ValueError(f"The generator's topics {list(model.topics)} differ from the cover "
                         f"encoder's {list(enc.topics)}; use an encoder trained on the same "
                         "topics, or topics=False.")
    asked = None
    if conditioned and topics is not False:
        asked = np.tile(np.arange(per_style) % len(enc.topics), n_styles)
        kwargs["topic"] = asked.tolist()
    g = torch.Generator().manual_seed(int(seed))
    t_gen = time.perf_counter()
    images = model.sample(style.tolist(), len(style), generator=g, progress=progress, **kwargs)
    kwargs.pop("topic", None)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_gen = time.perf_counter() - t_gen
    lab = label_covers(images, enc, quality=quality, seed=int(seed))
    meta = {"per_style": per_style, "seed": int(seed), "checkpoint": str(checkpoint or
                                                                         "committed"),
            "model_config": _jsonable(model.config), "topic_source": "cover encoder",
            "topic_conditioned": asked is not None,
            "style_probs_source": "cover encoder", "sample_kwargs": _jsonable(kwargs),
            "seconds_generating": round(t_gen, 3),
            "covers_per_s": round(len(images) / max(t_gen, 1e-9), 2), **lab["meta"]}
    if asked is not None:
        meta["requested_topic"] = asked.tolist()
        meta["topic_agreement"] = round(float(np.mean(lab["topic"] == asked)), 4)
    return CoverBank.from_images(images, style, lab["topic"], list(enc.styles),
                                 list(enc.topics), quality=lab["quality"],
                                 style_probs=lab["style_probs"], generator=generator, meta=meta)


def _procedural(per_style: int, size: int, seed: int, progress: bool, t0: float) -> CoverBank:
    from covercast.covers.procedural import procedural_bank

    n_topics = len(DEFAULT_TOPICS)
    per_pair = math.ceil(per_style / n_topics)
    full = procedural_bank(per_pair, size=size, seed=seed, progress=progress)
    # keep `per_style` covers per style, cycling through the topics
    keep = []
    for s in range(len(DEFAULT_STYLES)):
        for i in range(per_style):
            t, k = i % n_topics, i // n_topics
            keep.append((s * n_topics + t) * per_pair + k)
    idx = np.asarray(keep)
    meta = dict(full.meta)
    meta.update(per_style=per_style, seconds_generating=round(time.perf_counter() - t0, 3))
    return CoverBank(images=full.images[idx], style=full.style[idx], topic=full.topic[idx],
                     quality=full.quality[idx], features=full.features[idx],
                     styles=full.styles, topics=full.topics, generator="procedural", meta=meta)


def _jsonable(x: Any) -> Any:
    import dataclasses
    import json

    if dataclasses.is_dataclass(x):
        x = dataclasses.asdict(x)
    return json.loads(json.dumps(x, default=str))


# ---------------------------------------------------------------------------------- by name
#: What ``bank=`` / ``--bank`` accept by name (a path to a built bank ``.npz`` works too).
BANK_NAMES: tuple[str, ...] = GENERATORS
#: Covers per style x topic of a learned bank by name (24 per style, as the default bank).
NAMED_BANK_PER_STYLE_TOPIC = 4
#: Seed of the covers of a learned bank by name.
NAMED_BANK_SEED = 0
#: Bumped when what a named bank holds changes for the same checkpoint (old cache files are
#: then ignored).
NAMED_BANK_VERSION = 1
#: Help text of every ``--bank`` option.
BANK_HELP = ("the covers: procedural (default), diffusion, vae-iat or dcgan -- a bank built "
             "from the committed checkpoint, 24 covers per style, cached -- or the path of a "
             "bank .npz from `covercast bank build`")

_NAMED_CACHE: dict[str, CoverBank] = {}


def bank_cache_dir() -> Path:
    """Where banks by name are cached on disk: ``$COVERCAST_CACHE_DIR/banks``, else
    ``$XDG_CACHE_HOME/covercast/banks``, else ``~/.cache/covercast/banks``."""
    root = os.environ.get("COVERCAST_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        root = os.path.join(xdg, "covercast")
    return Path(root) / "banks"


def _folder_digest(folder: Path) -> str:
    """SHA-256 over a model folder's file names and contents (sorted)."""
    from covercast._io import sha256_file

    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"The model folder {folder} holds no files.")
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def named_bank_key(name: str, *, per_style: int | None = None, seed: int = NAMED_BANK_SEED,
                   quality: str = "craft", checkpoint: str | os.PathLike | None = None,
                   encoder: str | os.PathLike | None = None) -> str:
    """The cache key of a learned bank by name: a hash of the checkpoint's and the encoder's
    files and the settings (without loading torch)."""
    if name not in LEARNED_GENERATORS:
        raise ValueError(f"{name!r} is not a learned generator; learned banks by name are "
                         f"{list(LEARNED_GENERATORS)}.")
    ck = Path(checkpoint) if checkpoint is not None else committed_checkpoint(name)
    en = Path(encoder) if encoder is not None else committed_checkpoint("encoder")
    for what, folder in (("checkpoint", ck), ("encoder", en)):
        if not folder.is_dir():
            raise FileNotFoundError(f"No {name if what == 'checkpoint' else 'encoder'} "
                                    f"{what} at {folder}: the folder does not exist.")
    settings = {"version": NAMED_BANK_VERSION, "name": name,
                "per_style": per_style or NAMED_BANK_PER_STYLE_TOPIC * len(DEFAULT_TOPICS),
                "seed": int(seed), "quality": quality, "device": "cpu",
                "checkpoint": _folder_digest(ck), "encoder": _folder_digest(en)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def named_bank(name: str, *, per_style: int | None = None, seed: int = NAMED_BANK_SEED,
               quality: str = "craft", checkpoint: str | os.PathLike | None = None,
               encoder: str | os.PathLike | None = None, disk_cache: bool = True,
               progress: bool = False) -> CoverBank:
    """The cover bank that ``bank=name`` means (module docstring, "Banks by name").

    ``"procedural"``: :func:`~covercast.covers.procedural.default_bank`. A learned name
    (``"diffusion"``, ``"vae-iat"``, ``"dcgan"``): :func:`build_bank` from ``checkpoint``
    (default the committed one) with ``per_style`` covers per style (default
    :data:`NAMED_BANK_PER_STYLE_TOPIC` x the topics = 24), ``seed``, ``quality``, on the CPU --
    deterministic, and cached in the process and (``disk_cache``) in :func:`bank_cache_dir`
    under :func:`named_bank_key`. Each call returns an independent copy.

    Raises
    ------
    ValueError
        For an unknown name (naming the ones there are).
    ImportError
        When a learned bank must be built and torch is not installed (a cached one loads
        without it): install the ``gen`` extra.
    """
    if name not in BANK_NAMES:
        raise ValueError(f"Unknown bank {name!r}; choose one of {list(BANK_NAMES)} or give "
                         "the path of a bank .npz (`covercast bank build`).")
    if name == "procedural":
        if checkpoint is not None or per_style is not None:
            raise ValueError("The procedural bank by name is the default bank; build other "
                             "procedural banks with build_bank('procedural', ...).")
        from covercast.covers.procedural import default_bank

        return default_bank()
    if per_style is not None:
        per_style = _positive(per_style, "per_style")
    key = named_bank_key(name, per_style=per_style, seed=seed, quality=quality,
                         checkpoint=checkpoint, encoder=encoder)
    cached = _NAMED_CACHE.get(key)
    if cached is not None:
        return cached.copy()
    path = bank_cache_dir() / f"{name}-{key}.npz"
    bank = None
    if disk_cache and path.is_file():
        try:
            bank = CoverBank.load(path)
        except ValueError as e:
            warnings.warn(f"Rebuilding the cached {name} bank: {e}", stacklevel=2)
    if bank is None:
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise ImportError(f"bank={name!r} generates covers with the learned {name} model, "
                              "which needs torch: install it and the `gen` extra (pip install "
                              "torch 'covercast[gen]'), or use bank='procedural' or the path "
                              "of a bank .npz built elsewhere.") from e
        n = per_style or NAMED_BANK_PER_STYLE_TOPIC * len(DEFAULT_TOPICS)
        bank = build_bank(name, n, checkpoint=checkpoint, encoder=encoder, seed=seed,
                          quality=quality, device="cpu", progress=progress)
        bank.meta["named_bank_key"] = key
        if disk_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                bank.save(path)
            except OSError as e:
                warnings.warn(f"Could not cache the {name} bank at {path} ({e}); it will be "
                              "built again in the next process.", stacklevel=2)
    _NAMED_CACHE[key] = bank
    return bank.copy()


def bank_kwargs(bank: str | None) -> dict[str, Any]:
    """The environments' ``bank`` argument for a bank spec, left out for the procedural default
    (so that the environment arguments, and the checkpoints that store them, are those of runs
    before ``--bank``)."""
    return {} if bank in (None, "procedural") else {"bank": bank}


def check_bank_spec(spec: Any) -> str | None:
    """Check a ``bank`` / ``--bank`` value early (before a long run): ``None``, a name of
    :data:`BANK_NAMES` or the path of an existing ``.npz``; returns it (a path as a string).

    Raises ``ValueError`` for an unknown name, ``FileNotFoundError`` for a missing ``.npz``."""
    if spec is None or (isinstance(spec, str) and spec in BANK_NAMES):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if p.is_file():
            return str(p)
        if p.suffix == ".npz" or not isinstance(spec, str):
            raise FileNotFoundError(f"No cover bank at {p}; build one with `covercast bank "
                                    f"build --out {p.name}`, or give one of {list(BANK_NAMES)}.")
        raise ValueError(f"Unknown bank {str(spec)!r}: not one of {list(BANK_NAMES)} and no "
                         "such file; give a name or the path of a bank .npz (`covercast bank "
                         "build`).")
    raise ValueError(f"`bank` must be one of {list(BANK_NAMES)}, the path of a bank .npz or "
                     f"None, got {type(spec).__name__}.")
