"""CoverBank: construction, validation, views, and the .npz save/load round trip."""

import json
import os

import numpy as np
import pytest

from covercast.covers.attributes import cover_attributes
from covercast.covers.bank import BANK_FORMAT_VERSION, CoverBank

STYLES = ["a", "b", "c"]
TOPICS = ["x", "y"]


def make_images(n, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture()
def bank():
    style = np.array([0, 0, 1, 2, 2, 2])
    topic = np.array([0, 1, 0, 1, 0, 1])
    return CoverBank.from_images(make_images(6), style, topic, STYLES, TOPICS,
                                 quality=np.linspace(0, 1, 6), generator="test",
                                 meta={"note": "unit test", "k": [1, 2]})


def fields(b):
    return dict(images=b.images, style=b.style, topic=b.topic, quality=b.quality,
                features=b.features, styles=b.styles, topics=b.topics)


def bank_arrays_file(path, header, **arrays):
    np.savez(path, header=np.array(header), **arrays)
    return path


# ---------------------------------------------------------------------- construction
def test_from_images_computes_features(bank):
    assert len(bank) == 6 and bank.image_size == 16 and bank.n_styles == 3
    np.testing.assert_array_equal(bank.attributes, cover_attributes(bank.images))
    np.testing.assert_array_equal(bank.style_probs, np.eye(3, dtype=np.float32)[bank.style])
    assert bank.features.dtype == np.float32 and bank.features.shape == (6, 5 + 3)
    assert bank.style.dtype == np.int64 and bank.quality.dtype == np.float64
    assert bank.generator == "test" and bank.meta == {"note": "unit test", "k": [1, 2]}


def test_from_images_defaults_and_given_style_probs():
    probs = np.full((2, 3), 1 / 3, dtype=np.float32)
    b = CoverBank.from_images(make_images(2), [0, 1], [0, 0], STYLES, TOPICS, style_probs=probs)
    np.testing.assert_array_equal(b.quality, [1.0, 1.0])
    np.testing.assert_array_equal(b.style_probs, probs)
    assert b.generator == "custom" and b.meta == {}
    with pytest.raises(ValueError, match=r"`style_probs` must have shape \(2, 3\)"):
        CoverBank.from_images(make_images(2), [0, 1], [0, 0], STYLES, TOPICS,
                              style_probs=probs[:, :2])


def test_from_images_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        CoverBank.from_images(make_images(2).astype(float), [0, 1], [0, 0], STYLES, TOPICS)


@pytest.mark.parametrize("change, match", [
    ({"images": np.zeros((6, 16, 16, 3))}, r"`images` must be uint8 of shape \(n, H, W, 3\)"),
    ({"images": np.zeros((6, 16, 16), dtype=np.uint8)}, r"`images` must be uint8"),
    ({"style": np.zeros(5, dtype=int)}, r"`style` must have shape \(6,\)"),
    ({"quality": np.zeros((6, 1))}, r"`quality` must have shape \(6,\)"),
    ({"style": np.array([0, 0, 1, 2, 2, 3])}, r"`style` indices must lie in \[0, 2\]"),
    ({"topic": np.array([0, -1, 0, 1, 0, 1])}, r"`topic` indices must lie in \[0, 1\]"),
    ({"quality": np.array([0, 0.5, 1, 1, 1, 1.2])}, r"`quality` must lie in \[0, 1\]"),
    ({"quality": np.array([0, 0.5, 1, 1, 1, np.nan])}, r"`quality` must lie in \[0, 1\]"),
    ({"features": np.zeros((6, 7))}, r"`features` must have shape \(6, 8\)"),
    ({"features": np.full((6, 8), np.nan)}, "NaN or inf"),
])
def test_validation(bank, change, match):
    kwargs = fields(bank) | change
    with pytest.raises(ValueError, match=match):
        CoverBank(**kwargs)


def test_empty_bank_is_refused():
    with pytest.raises(ValueError, match="at least one cover"):
        CoverBank(images=np.zeros((0, 8, 8, 3), dtype=np.uint8), style=[], topic=[], quality=[],
                  features=np.zeros((0, 6)), styles=["a"], topics=["x"])


# ---------------------------------------------------------------------- views
def test_style_index_and_indices(bank):
    assert bank.style_index("b") == 1 and bank.style_index(2) == 2
    assert bank.style_index(np.int64(0)) == 0
    with pytest.raises(ValueError, match=r"Unknown style 'z'; this bank has \['a', 'b', 'c'\]"):
        bank.style_index("z")
    with pytest.raises(ValueError, match=r"Style index 3 out of range \[0, 2\]"):
        bank.style_index(3)
    np.testing.assert_array_equal(bank.indices(), np.arange(6))
    np.testing.assert_array_equal(bank.indices(style="c"), [3, 4, 5])
    np.testing.assert_array_equal(bank.indices(topic="y"), [1, 3, 5])
    np.testing.assert_array_equal(bank.indices(style=2, topic=1), [3, 5])
    np.testing.assert_array_equal(bank.indices(style="b", topic="y"), [])
    with pytest.raises(ValueError, match=r"Unknown topic 'w'; this bank has \['x', 'y'\]"):
        bank.indices(topic="w")


def test_style_table_pads_by_cycling(bank):
    table, counts = bank.style_table()
    np.testing.assert_array_equal(counts, [2, 1, 3])
    assert table.shape == (3, 3)
    np.testing.assert_array_equal(table, [[0, 1, 0], [2, 2, 2], [3, 4, 5]])
    for s in range(3):  # the valid part of each row holds exactly that style's covers
        assert set(table[s, :counts[s]]) == set(bank.indices(style=s))


def test_style_table_refuses_a_missing_style(bank):
    b = CoverBank(**(fields(bank) | {"style": np.array([0, 0, 0, 2, 2, 2]),
                                     "features": bank.features}))
    with pytest.raises(ValueError, match=r"no cover of style\(s\) \['b'\]"):
        b.style_table()


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip_is_bit_identical(tmp_path, bank):
    path = bank.save(tmp_path / "deep" / "bank.npz")
    assert path == tmp_path / "deep" / "bank.npz"
    assert sorted(os.listdir(path.parent)) == ["bank.npz"]  # no temporary file left
    back = CoverBank.load(path)
    for name in ("images", "style", "topic", "quality", "features"):
        a, b = getattr(bank, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), name
    assert back.styles == bank.styles and back.topics == bank.topics
    assert back.generator == "test" and back.meta == bank.meta


def test_save_overwrites_atomically(tmp_path, bank):
    path = bank.save(tmp_path / "bank.npz")
    other = CoverBank(**(fields(bank) | {"quality": np.full(6, 0.25)}))
    other.save(path)
    np.testing.assert_array_equal(CoverBank.load(path).quality, 0.25)
    assert sorted(os.listdir(tmp_path)) == ["bank.npz"]


def test_save_needs_npz_suffix(tmp_path, bank):
    with pytest.raises(ValueError, match=r"saved as \.npz, got 'bank\.npy'"):
        bank.save(tmp_path / "bank.npy")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="covercast bank build"):
        CoverBank.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_file_gives_a_clear_value_error(tmp_path, bank, damage):
    path = bank.save(tmp_path / "bank.npz")
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        mid = bytearray(data)
        for i in range(len(data) // 3, len(data) // 3 + 64):
            mid[i] ^= 0xFF
        data = bytes(mid)
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"bank\.npz is not a readable cover bank.*rebuild"):
        CoverBank.load(path)


def test_foreign_npz_gives_a_clear_value_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz is not a covercast cover bank: it lacks "
                                         r"\['header', 'images'"):
        CoverBank.load(path)


def test_bad_header_json(tmp_path, bank):
    path = bank_arrays_file(tmp_path / "b.npz", "{not json", **{
        k: getattr(bank, k) for k in ("images", "style", "topic", "quality", "features")})
    with pytest.raises(ValueError, match="not a readable cover bank.*JSONDecodeError"):
        CoverBank.load(path)


def test_other_format_version(tmp_path, bank):
    header = json.dumps({"format_version": BANK_FORMAT_VERSION + 1, "styles": STYLES,
                         "topics": TOPICS})
    path = bank_arrays_file(tmp_path / "b.npz", header, **{
        k: getattr(bank, k) for k in ("images", "style", "topic", "quality", "features")})
    with pytest.raises(ValueError, match=rf"bank format {BANK_FORMAT_VERSION + 1}.*Rebuild"):
        CoverBank.load(path)


def test_loaded_arrays_are_validated(tmp_path, bank):
    header = json.dumps({"format_version": BANK_FORMAT_VERSION, "styles": STYLES,
                         "topics": TOPICS})
    path = bank_arrays_file(tmp_path / "b.npz", header, images=bank.images.astype(np.float32),
                            style=bank.style, topic=bank.topic, quality=bank.quality,
                            features=bank.features)
    with pytest.raises(ValueError, match="`images` must be uint8"):
        CoverBank.load(path)


# Known gaps in CoverBank.load (reported to the lead; bank.py is not this suite's to edit).
# strict=True: once load() is fixed these start passing and pytest reports it, so the marker
# is removed then.
def _random_bytes(path, bank):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _npy_named_npz(path, bank):
    with open(path, "wb") as fh:
        np.save(fh, bank.images)


def _header_not_an_object(path, bank):
    bank_arrays_file(path, "[1, 2]", **{k: getattr(bank, k) for k in
                                        ("images", "style", "topic", "quality", "features")})


def _header_without_styles(path, bank):
    bank_arrays_file(path, json.dumps({"format_version": BANK_FORMAT_VERSION}), **{
        k: getattr(bank, k) for k in ("images", "style", "topic", "quality", "features")})


@pytest.mark.parametrize("write", [_random_bytes, _npy_named_npz, _header_not_an_object,
                                   _header_without_styles])
def test_unreadable_files_name_the_file(tmp_path, bank, write):
    path = tmp_path / "broken.npz"
    write(path, bank)
    with pytest.raises(ValueError, match=r"broken\.npz"):
        CoverBank.load(path)
