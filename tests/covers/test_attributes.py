"""The cover attribute vector: definitions on hand-made images, standardisation, validation."""

import numpy as np
import pytest

from covercast.covers import attributes as attr_mod
from covercast.covers.attributes import (
    ANALYSIS_SIZE,
    ATTRIBUTE_CENTER,
    ATTRIBUTE_NAMES,
    ATTRIBUTE_SCALE,
    DEFAULT_STYLES,
    cover_attributes,
    feature_names,
    raw_cover_attributes,
    standardize_attributes,
)
from covercast.covers.procedural import procedural_bank

B, S, W, C, X = range(5)  # column of each attribute


def solid(rgb, size=32):
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (size, size, 3)).copy()


def checkerboard(size=32, cell=1):
    idx = np.arange(size) // cell
    board = ((idx[:, None] + idx[None, :]) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=-1)


def half_split(size=32):
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[:, size // 2:] = 255
    return img


@pytest.fixture(scope="module")
def bank():
    return procedural_bank(8, seed=0)


# ---------------------------------------------------------------------- names and shapes
def test_names_and_feature_names_unchanged():
    assert ATTRIBUTE_NAMES == ("brightness", "saturation", "warmth", "contrast", "complexity")
    assert feature_names(["a", "b"]) == list(ATTRIBUTE_NAMES) + ["style:a", "style:b"]


def test_shapes_and_dtypes():
    batch = np.stack([solid((10, 20, 30)), checkerboard()])
    out = cover_attributes(batch)
    assert out.shape == (2, 5) and out.dtype == np.float32
    single = cover_attributes(batch[0])
    assert single.shape == (1, 5)
    np.testing.assert_array_equal(single[0], out[0])
    empty = cover_attributes(np.zeros((0, 32, 32, 3), dtype=np.uint8))
    assert empty.shape == (0, 5) and empty.dtype == np.float32
    assert raw_cover_attributes(batch).dtype == np.float64


def test_non_square_images_are_accepted():
    img = np.zeros((24, 40, 3), dtype=np.uint8)
    img[:, 20:] = 255
    raw = raw_cover_attributes(img)[0]
    assert raw[B] == pytest.approx(0.5) and raw[C] == pytest.approx(0.5)
    assert raw[X] == pytest.approx(1 / 31, rel=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 32, 32, 3), dtype=np.float64), "uint8"),
    (np.zeros((2, 32, 32, 3), dtype=np.int64), "uint8"),
    (np.zeros((2, 32, 32, 4), dtype=np.uint8), r"shape \(n, H, W, 3\)"),
    (np.zeros((32, 32), dtype=np.uint8), r"\(32, 32\)"),
    (np.zeros((1, 2, 32, 32, 3), dtype=np.uint8), "shape"),
    (np.zeros((2, 0, 32, 3), dtype=np.uint8), "at least 1 x 1"),
    ([[[0, 0, 0]]], "numpy uint8 array"),
])
def test_bad_input_is_refused_with_a_clear_message(bad, match):
    with pytest.raises(ValueError, match=match):
        cover_attributes(bad)


# ---------------------------------------------------------------------- definitions
def test_black_and_white_images():
    black, white = raw_cover_attributes(np.stack([solid((0, 0, 0)), solid((255, 255, 255))]))
    np.testing.assert_allclose(black, 0.0, atol=1e-7)
    np.testing.assert_allclose(white, [1.0, 0.0, 0.0, 0.0, 0.0], atol=1e-6)


def test_pure_colours_brightness_saturation_and_warmth():
    red, green, blue, grey = raw_cover_attributes(np.stack(
        [solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255)), solid((128, 128, 128))]))
    np.testing.assert_allclose([red[B], green[B], blue[B]], [0.299, 0.587, 0.114], atol=1e-6)
    np.testing.assert_allclose([red[S], green[S], blue[S], grey[S]], [1, 1, 1, 0], atol=1e-7)
    assert red[W] == pytest.approx(1.0) and blue[W] == pytest.approx(-1.0)
    assert green[W] == pytest.approx(0.0, abs=1e-7) and grey[W] == pytest.approx(0.0, abs=1e-7)
    assert grey[B] == pytest.approx(128 / 255, abs=1e-6)
    # the standardised warmth keeps the order: red is warmer than blue
    z = cover_attributes(np.stack([solid((255, 0, 0)), solid((0, 0, 255))]))
    assert z[0, W] > z[1, W]


def test_saturation_is_the_hsv_one():
    # (200, 100, 50): (max - min) / max = 150 / 200
    raw = raw_cover_attributes(solid((200, 100, 50)))[0]
    assert raw[S] == pytest.approx(0.75, abs=1e-6)
    assert raw[W] == pytest.approx(150 / 255, abs=1e-6)


def test_checkerboard_has_maximal_contrast_and_complexity():
    board, split = raw_cover_attributes(np.stack([checkerboard(), half_split()]))
    assert board[B] == pytest.approx(0.5) and board[C] == pytest.approx(0.5)
    assert board[X] == pytest.approx(np.sqrt(2), rel=1e-6)
    # same brightness and contrast, one edge instead of an edge at every pixel
    assert split[B] == pytest.approx(0.5) and split[C] == pytest.approx(0.5)
    assert split[X] == pytest.approx(1 / 31, rel=1e-5)
    assert board[X] > 40 * split[X]


@pytest.mark.parametrize("size", [16, 24, 48, 64, 128])
def test_complexity_of_an_edge_does_not_depend_on_resolution(size):
    raw = raw_cover_attributes(half_split(size))[0]
    ref = raw_cover_attributes(half_split(ANALYSIS_SIZE))[0]
    np.testing.assert_allclose(raw, ref, rtol=1e-5, atol=1e-6)


def test_detail_finer_than_the_analysis_grid_is_averaged_away():
    fine = raw_cover_attributes(checkerboard(64, cell=1))[0]
    coarse = raw_cover_attributes(checkerboard(64, cell=2))[0]
    assert fine[C] == pytest.approx(0.5)                    # contrast: at full resolution
    assert fine[X] == pytest.approx(0.0, abs=1e-6)          # 2x2 blocks average to grey
    assert coarse[X] == pytest.approx(np.sqrt(2), rel=1e-5)


def test_attributes_do_not_depend_on_the_batch(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    whole = cover_attributes(images)
    monkeypatch.setattr(attr_mod, "_CHUNK", 5)  # several vectorised blocks
    np.testing.assert_allclose(cover_attributes(images), whole, atol=1e-6)
    np.testing.assert_allclose(cover_attributes(images[7]), whole[7:8], atol=1e-6)


# ---------------------------------------------------------------------- standardisation
def test_standardisation_uses_the_documented_constants():
    images = np.stack([checkerboard(), solid((200, 100, 50))])
    raw = raw_cover_attributes(images)
    np.testing.assert_allclose(cover_attributes(images), (raw - ATTRIBUTE_CENTER) / ATTRIBUTE_SCALE,
                               rtol=1e-6)
    assert not ATTRIBUTE_CENTER.flags.writeable and not ATTRIBUTE_SCALE.flags.writeable
    assert np.all(ATTRIBUTE_SCALE > 0)
    with pytest.raises(ValueError, match="5 attributes"):
        standardize_attributes(np.zeros((3, 4)))


def test_constants_are_rederived_by_the_documented_command():
    # the command in the module docstring; if the procedural generator changes, this fails
    # until ATTRIBUTE_CENTER / ATTRIBUTE_SCALE are re-derived and written down again
    raw = raw_cover_attributes(procedural_bank(per_style_topic=64, seed=0).images)
    np.testing.assert_allclose(raw.mean(0), ATTRIBUTE_CENTER, atol=2e-4)
    np.testing.assert_allclose(raw.std(0), ATTRIBUTE_SCALE, atol=2e-4)


@pytest.mark.parametrize("seed", [0, 7])
def test_standardised_over_a_procedural_bank(seed):
    z = cover_attributes(procedural_bank(8, seed=seed).images)
    assert np.all(np.abs(z.mean(0)) < 0.2), z.mean(0)
    assert np.all((z.std(0) > 0.8) & (z.std(0) < 1.2)), z.std(0)


def test_bank_features_are_the_attributes(bank):
    np.testing.assert_array_equal(bank.attributes, cover_attributes(bank.images))


# ---------------------------------------------------------------------- styles in attribute space
def test_styles_differ_as_their_descriptions_say(bank):
    m = {s: bank.attributes[bank.style == i].mean(0) for i, s in enumerate(bank.styles)}
    assert m["noir"][B] < m["pastel"][B] - 1.5 and m["noir"][B] < m["minimal"][B] - 1.5
    assert m["vivid"][S] > m["minimal"][S] + 1.5 and m["vivid"][S] > m["pastel"][S] + 1.5
    assert m["noir"][C] > m["pastel"][C] + 1.5
    assert all(m["retro"][W] > m[s][W] + 1.0 for s in DEFAULT_STYLES if s != "retro")
    assert m["pastel"][X] < m["noir"][X] and m["minimal"][X] < m["retro"][X]


def test_nearest_centroid_separates_styles(bank):
    train, test = bank, procedural_bank(8, seed=1)
    cent = np.stack([train.attributes[train.style == s].mean(0) for s in range(train.n_styles)])
    d = ((test.attributes[:, None, :] - cent[None]) ** 2).sum(-1)
    accuracy = float((d.argmin(1) == test.style).mean())
    assert accuracy > 0.75, accuracy  # chance is 0.2
