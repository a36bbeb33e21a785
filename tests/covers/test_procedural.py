"""Procedural covers: shapes, determinism, style/topic identity, craft defects, banks, grids."""

import os

import numpy as np
import pytest
from scipy.stats import spearmanr

from covercast.covers import procedural
from covercast.covers.attributes import (
    DEFAULT_STYLES,
    DEFAULT_TOPICS,
    cover_attributes,
    raw_cover_attributes,
)
from covercast.covers.bank import CoverBank
from covercast.covers.procedural import (
    DEFAULT_BANK_PER_STYLE_TOPIC,
    PROCEDURAL_VERSION,
    default_bank,
    procedural_bank,
    render_covers,
    save_grid,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def luma(images):
    return images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def _median_abs_laplacian(y):
    lap = 4 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
    return np.median(np.abs(lap), axis=(1, 2))


def noise_level(images):
    """Robust per-cover colour-noise estimate: median |Laplacian| (edges are sparse, so the
    median sees the flat areas) of the opponent channels R - G and G - B, which cancel the
    monochrome film grain of retro covers."""
    x = images.astype(np.float64) / 255.0
    return (_median_abs_laplacian(x[..., 0] - x[..., 1])
            + _median_abs_laplacian(x[..., 1] - x[..., 2]))


@pytest.fixture(scope="module")
def bank():
    return procedural_bank(8, seed=0)


# ---------------------------------------------------------------------- render_covers
@pytest.mark.parametrize("style", DEFAULT_STYLES)
def test_every_style_and_topic_renders(style):
    for topic in DEFAULT_TOPICS:
        images, quality = render_covers(style, topic, 3, rng=rng())
        assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
        assert quality.shape == (3,) and quality.dtype == np.float64
        assert np.all((quality >= 0) & (quality <= 1))
        assert images.std() > 5  # not a blank image


@pytest.mark.parametrize("size", [16, 24, 40, 64])
def test_sizes(size):
    images, _ = render_covers("retro", "travel", 2, size=size, rng=rng())
    assert images.shape == (2, size, size, 3)


def test_zero_covers():
    images, quality = render_covers("noir", "news", 0, rng=rng())
    assert images.shape == (0, 32, 32, 3) and quality.shape == (0,)


@pytest.mark.parametrize("size", [0, 8, 20, 33, 31, 32.0, True, "32"])
def test_bad_size_is_refused(size):
    with pytest.raises(ValueError, match=rf"`size` must be an integer >= 16 divisible by 8.*"
                                         rf"{size!r}"):
        render_covers("noir", "news", 1, size=size, rng=rng())
    with pytest.raises(ValueError, match="`size`"):
        procedural_bank(1, size=size)


def test_unknown_style_or_topic_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown style 'gothic'.*'minimal'.*'retro'"):
        render_covers("gothic", "news", 1, rng=rng())
    with pytest.raises(ValueError, match=r"Unknown topic 'cars'.*'news'.*'tech'"):
        render_covers("noir", "cars", 1, rng=rng())
    with pytest.raises(ValueError, match=r"Unknown style 'gothic'"):
        procedural_bank(1, styles=("noir", "gothic"))
    with pytest.raises(ValueError, match=r"Unknown topic 'cars'"):
        procedural_bank(1, topics=("cars",))


@pytest.mark.parametrize("kwargs, match", [
    ({"n": -1}, "`n` must be an integer >= 0"),
    ({"n": 2.5}, "`n` must be an integer >= 0"),
    ({"rng": 0}, r"`rng` must be a numpy.random.Generator.*default_rng"),
    ({"rng": np.random.RandomState(0)}, "`rng` must be a numpy.random.Generator"),
    ({"craft": [0.5, 0.5]}, r"`craft` must hold 3 finite values in \[0, 1\]"),
    ({"craft": [0.5, 0.5, 1.5]}, r"`craft` must hold 3"),
    ({"craft": [0.5, np.nan, 0.5]}, r"`craft` must hold 3"),
])
def test_bad_arguments_are_refused(kwargs, match):
    args = {"n": 3, "rng": rng()} | kwargs
    with pytest.raises(ValueError, match=match):
        render_covers("pastel", "food", args.pop("n"), **args)


def test_same_rng_same_bytes_other_rng_other_bytes():
    a, qa = render_covers("vivid", "music", 5, rng=rng(3))
    b, qb = render_covers("vivid", "music", 5, rng=rng(3))
    c, qc = render_covers("vivid", "music", 5, rng=rng(4))
    assert a.tobytes() == b.tobytes() and np.array_equal(qa, qb)
    assert not np.array_equal(a, c) and not np.array_equal(qa, qc)
    assert len({im.tobytes() for im in a}) == 5  # covers within a batch differ too


def test_quality_is_beta_distributed_craft():
    _, q = render_covers("minimal", "news", 4000, size=16, rng=rng())
    mean = procedural.CRAFT_ALPHA / (procedural.CRAFT_ALPHA + procedural.CRAFT_BETA)
    assert q.mean() == pytest.approx(mean, abs=0.01)
    assert 0.1 < q.std() < 0.25


# ---------------------------------------------------------------------- craft is in the pixels
def test_given_craft_changes_only_the_defects():
    _, drawn = render_covers("pastel", "tech", 6, rng=rng(5))
    default, _ = render_covers("pastel", "tech", 6, rng=rng(5))
    same, q = render_covers("pastel", "tech", 6, rng=rng(5), craft=drawn)
    np.testing.assert_array_equal(same, default)
    np.testing.assert_array_equal(q, drawn)


@pytest.mark.parametrize("style", DEFAULT_STYLES)
def test_low_craft_is_noisier_and_washed_out(style):
    n = 12
    good, _ = render_covers(style, "food", n, rng=rng(9), craft=np.ones(n))
    bad, _ = render_covers(style, "food", n, rng=rng(9), craft=np.full(n, 0.2))
    assert np.all(noise_level(bad) > noise_level(good) + 0.02)
    # washed out: the median colour (which zero-mean noise, even clipped, leaves in place) moves
    # towards the wash grey by the factor 1 - WASH_MAX * 0.8 ** 1.5 = 0.61
    grey = procedural._WASH_GREY
    dist = lambda im: np.abs(np.median(im.reshape(n, -1, 3), 1) / 255 - grey).sum(1)  # noqa: E731
    assert np.all(dist(bad) < 0.75 * dist(good))
    assert np.all(raw_cover_attributes(bad)[:, 4] > raw_cover_attributes(good)[:, 4])


def test_low_craft_misaligns_the_motif():
    # minimal covers are centred on a flat background: the motif's centre of mass moves
    n = 16
    centre = []
    for craft in (1.0, 0.1):
        images, _ = render_covers("minimal", "sports", n, size=64, rng=rng(2),
                                  craft=np.full(n, craft))
        y = luma(images)
        k = np.ones(5) / 5  # 5 x 5 box blur against the noise defect
        y = np.apply_along_axis(np.convolve, 1, y, k, "same")
        y = np.apply_along_axis(np.convolve, 2, y, k, "same")
        background = np.median(y, axis=(1, 2), keepdims=True)
        ink = np.clip(background - y - 0.08, 0, None)  # the motif is darker than the background
        ink[:, :3] = ink[:, -3:] = ink[:, :, :3] = ink[:, :, -3:] = 0  # blur edge effects
        yy, xx = np.mgrid[0:64, 0:64] - 31.5
        w = ink.sum((1, 2))
        centre.append(np.hypot((ink * xx).sum((1, 2)) / w, (ink * yy).sum((1, 2)) / w))
    assert np.median(centre[1]) > np.median(centre[0]) + 4  # pixels


def test_quality_correlates_with_measured_noise(bank):
    rho_all = spearmanr(bank.quality, noise_level(bank.images))[0]
    assert rho_all < -0.6, rho_all
    for s in range(bank.n_styles):
        m = bank.style == s
        rho = spearmanr(bank.quality[m], noise_level(bank.images[m]))[0]
        assert rho < -0.4, (bank.styles[s], rho)


# ---------------------------------------------------------------------- topics look different
def test_topics_are_recognisable_from_their_motif():
    """A nearest-template classifier on luma (templates from one seed, tested on another)."""
    def unit(x):
        x = x - x.mean(-1, keepdims=True)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    n, accuracy = 16, {}
    for style in DEFAULT_STYLES:
        templates, test = [], []
        for topic in DEFAULT_TOPICS:
            a, _ = render_covers(style, topic, n, rng=rng(0), craft=np.ones(n))
            b, _ = render_covers(style, topic, n, rng=rng(1), craft=np.ones(n))
            templates.append(unit(luma(a).reshape(n, -1)).mean(0))
            test.append(luma(b).reshape(n, -1))
        scores = np.abs(unit(np.concatenate(test)) @ np.stack(templates).T)
        truth = np.repeat(np.arange(len(DEFAULT_TOPICS)), n)
        accuracy[style] = float((scores.argmax(1) == truth).mean())
    chance = 1 / len(DEFAULT_TOPICS)
    assert np.mean(list(accuracy.values())) > 3 * chance, accuracy
    assert min(accuracy.values()) > 1.5 * chance, accuracy


# ---------------------------------------------------------------------- banks
def test_bank_layout(bank):
    assert isinstance(bank, CoverBank)
    n_pairs = len(DEFAULT_STYLES) * len(DEFAULT_TOPICS)
    assert len(bank) == 8 * n_pairs and bank.image_size == 32
    assert bank.styles == list(DEFAULT_STYLES) and bank.topics == list(DEFAULT_TOPICS)
    assert bank.generator == "procedural"
    counts = np.zeros((len(DEFAULT_STYLES), len(DEFAULT_TOPICS)), dtype=int)
    np.add.at(counts, (bank.style, bank.topic), 1)
    assert np.all(counts == 8)
    assert np.all(np.diff(bank.style) >= 0)  # ordered by style, then topic
    np.testing.assert_array_equal(bank.style_probs, np.eye(5, dtype=np.float32)[bank.style])
    np.testing.assert_array_equal(bank.attributes, cover_attributes(bank.images))
    assert bank.meta == {"per_style_topic": 8, "size": 32, "seed": 0,
                         "styles": list(DEFAULT_STYLES), "topics": list(DEFAULT_TOPICS),
                         "craft_beta": [procedural.CRAFT_ALPHA, procedural.CRAFT_BETA],
                         "procedural_version": PROCEDURAL_VERSION}


def test_bank_is_deterministic_given_seed(bank):
    again = procedural_bank(8, seed=0)
    other = procedural_bank(8, seed=1)
    assert again.images.tobytes() == bank.images.tobytes()
    np.testing.assert_array_equal(again.quality, bank.quality)
    np.testing.assert_array_equal(again.features, bank.features)
    assert not np.array_equal(other.images, bank.images)


def test_a_pair_does_not_depend_on_the_other_pairs(bank):
    sub = procedural_bank(8, seed=0, styles=("retro", "noir"), topics=("food",))
    assert sub.styles == ["retro", "noir"] and sub.topics == ["food"]
    for name in ("retro", "noir"):
        full = bank.indices(style=name, topic="food")
        part = sub.indices(style=name, topic="food")
        np.testing.assert_array_equal(sub.images[part], bank.images[full])
        np.testing.assert_array_equal(sub.quality[part], bank.quality[full])
    np.testing.assert_array_equal(sub.style_probs, np.eye(2, dtype=np.float32)[sub.style])


@pytest.mark.parametrize("kwargs, match", [
    ({"per_style_topic": 0}, "`per_style_topic` must be an integer >= 1"),
    ({"seed": -1}, "`seed` must be an integer >= 0"),
    ({"seed": 1.5}, "`seed` must be an integer >= 0"),
    ({"styles": "noir"}, r"the string 'noir'; write \('noir',\)"),
    ({"styles": ()}, "at least one style"),
    ({"topics": ("news", "news")}, "must be distinct"),
])
def test_bank_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        procedural_bank(**({"per_style_topic": 1} | kwargs))


def test_progress_bar_is_optional(capsys):
    procedural_bank(1, styles=("noir",), topics=("news", "tech"), progress=True)
    assert "procedural covers" in capsys.readouterr().err
    procedural_bank(1, styles=("noir",), topics=("news", "tech"), progress=False)
    assert capsys.readouterr().err == ""


def test_default_bank_is_cached_and_independent():
    a = default_bank()
    assert len(a) == DEFAULT_BANK_PER_STYLE_TOPIC * len(DEFAULT_STYLES) * len(DEFAULT_TOPICS)
    assert a.image_size == 32
    ref = procedural_bank(DEFAULT_BANK_PER_STYLE_TOPIC, seed=0)
    np.testing.assert_array_equal(a.images, ref.images)
    np.testing.assert_array_equal(a.features, ref.features)
    a.images[:] = 0
    a.quality[:] = 0
    a.meta["seed"] = 99
    b = default_bank()
    np.testing.assert_array_equal(b.images, ref.images)
    np.testing.assert_array_equal(b.quality, ref.quality)
    assert b.meta == ref.meta


# ---------------------------------------------------------------------- contact sheets
def _read_png(path):
    from matplotlib.image import imread
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    return imread(path)


def test_save_grid_from_a_bank(tmp_path, bank):
    out = save_grid(bank, tmp_path / "sub" / "grid.png", per_cell=2, scale=2, title="covers")
    assert out == tmp_path / "sub" / "grid.png"
    img = _read_png(out)
    # at least the mosaic: 5 rows of 32 px, 6 columns of 2 x 32 px, scaled by 2
    assert img.shape[0] >= 5 * 32 * 2 and img.shape[1] >= 6 * 64 * 2
    assert sorted(os.listdir(out.parent)) == ["grid.png"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_save_grid_from_arrays(tmp_path):
    images, _ = render_covers("vivid", "tech", 5, rng=rng())
    flat = _read_png(save_grid(images, tmp_path / "flat.png", ncols=2, scale=1))
    table = _read_png(save_grid(images[:4].reshape(2, 2, 32, 32, 3), tmp_path / "t.png",
                                scale=1))
    assert flat.shape[0] > table.shape[0]  # 3 rows of covers against 2
    assert flat.shape[0] >= 3 * 32 and table.shape[1] >= 2 * 32


@pytest.mark.parametrize("call, match", [
    (lambda p: save_grid(default_bank(), p / "grid.jpg"), r"must end in \.png"),
    (lambda p: save_grid(np.zeros((2, 32, 32, 3)), p / "g.png"), "uint8"),
    (lambda p: save_grid(np.zeros((2, 32, 32), dtype=np.uint8), p / "g.png"), "uint8 images"),
    (lambda p: save_grid(default_bank(), p / "g.png", per_cell=0), "`per_cell`"),
    (lambda p: save_grid(default_bank(), p / "g.png", scale=0), "`scale`"),
])
def test_save_grid_bad_arguments(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path)
    assert not any(tmp_path.iterdir())
