"""Banks by name (``bank="diffusion"`` ...): deterministic, cached in the process and on disk,
clear errors; topic-conditioned generators are asked for every topic."""

import sys

import numpy as np
import pytest

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.generators import banks


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty on-disk cache and an empty in-process cache."""
    monkeypatch.setenv("COVERCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(banks, "_NAMED_CACHE", {})
    return tmp_path / "cache" / "banks"


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("COVERCAST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert banks.bank_cache_dir() == tmp_path / "covercast" / "banks"
    monkeypatch.setenv("COVERCAST_CACHE_DIR", str(tmp_path / "x"))
    assert banks.bank_cache_dir() == tmp_path / "x" / "banks"


def test_unknown_names_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown bank 'gan'.*'diffusion', 'vae-iat'"):
        banks.named_bank("gan")
    with pytest.raises(ValueError, match=r"Unknown bank 'difusion': not one of"):
        banks.check_bank_spec("difusion")
    with pytest.raises(FileNotFoundError, match="No cover bank at .*nope.npz"):
        banks.check_bank_spec(str(tmp_path / "nope.npz"))
    assert banks.check_bank_spec("vae-iat") == "vae-iat" and banks.check_bank_spec(None) is None
    with pytest.raises(ValueError, match="not a learned generator"):
        banks.named_bank_key("procedural")


def test_procedural_by_name_is_the_default_bank():
    from covercast.covers.procedural import default_bank

    a, b = banks.named_bank("procedural"), default_bank()
    assert np.array_equal(a.images, b.images) and a.generator == "procedural"


def test_the_key_hashes_the_checkpoint_files(tmp_path):
    import shutil

    ck = tmp_path / "vae"
    shutil.copytree(banks.committed_checkpoint("vae-iat"), ck)
    k1 = banks.named_bank_key("vae-iat", checkpoint=ck)
    assert k1 == banks.named_bank_key("vae-iat", checkpoint=ck)
    assert k1 != banks.named_bank_key("vae-iat", checkpoint=ck, per_style=6)
    assert k1 != banks.named_bank_key("vae-iat", checkpoint=ck, seed=1)
    (ck / "extra.txt").write_text("changed")
    assert banks.named_bank_key("vae-iat", checkpoint=ck) != k1


torch = pytest.importorskip("torch")


def test_a_learned_bank_by_name_is_deterministic_and_cached(cache, monkeypatch):
    a = banks.named_bank("vae-iat", per_style=6)
    assert len(a) == 6 * len(DEFAULT_STYLES) and a.generator == "vae-iat"
    files = list(cache.glob("vae-iat-*.npz"))
    assert len(files) == 1 and a.meta["named_bank_key"] in files[0].name
    # the in-process cache gives an independent copy
    b = banks.named_bank("vae-iat", per_style=6)
    assert b is not a and np.array_equal(a.images, b.images)
    b.images[0] = 0
    assert not np.array_equal(banks.named_bank("vae-iat", per_style=6).images, b.images)
    # a new process (empty in-process cache) loads the disk cache, without building
    monkeypatch.setattr(banks, "_NAMED_CACHE", {})
    monkeypatch.setattr(banks, "build_bank", lambda *a, **k: pytest.fail("rebuilt"))
    c = banks.named_bank("vae-iat", per_style=6)
    for field in ("images", "style", "topic", "quality", "features"):
        assert np.array_equal(getattr(c, field), getattr(a, field)), field


def test_the_same_bank_is_built_again_without_the_cache(cache, monkeypatch):
    a = banks.named_bank("dcgan", per_style=3, disk_cache=False)
    assert not cache.exists() or not list(cache.iterdir())
    monkeypatch.setattr(banks, "_NAMED_CACHE", {})
    b = banks.named_bank("dcgan", per_style=3, disk_cache=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.quality, b.quality)


def test_a_cached_bank_loads_without_torch_and_building_one_says_to_install_it(cache,
                                                                               monkeypatch):
    banks.named_bank("dcgan", per_style=2)
    monkeypatch.setattr(banks, "_NAMED_CACHE", {})
    monkeypatch.setitem(sys.modules, "torch", None)      # import torch now fails
    assert len(banks.named_bank("dcgan", per_style=2)) == 2 * len(DEFAULT_STYLES)
    with pytest.raises(ImportError, match=r"needs torch.*covercast\[gen\]"):
        banks.named_bank("dcgan", per_style=3)


def test_a_corrupt_cache_file_is_rebuilt(cache, monkeypatch):
    a = banks.named_bank("dcgan", per_style=2)
    (path,) = cache.glob("dcgan-*.npz")
    path.write_bytes(b"not a bank")
    monkeypatch.setattr(banks, "_NAMED_CACHE", {})
    with pytest.warns(UserWarning, match="Rebuilding the cached dcgan bank"):
        b = banks.named_bank("dcgan", per_style=2)
    assert np.array_equal(a.images, b.images)


def test_a_topic_conditioned_generator_is_asked_for_every_topic(tmp_path):
    from covercast.generators.diffusion import DiffusionConfig, DiffusionCoverGenerator
    from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig

    cfg = DiffusionConfig.tiny()
    import dataclasses
    cfg = dataclasses.replace(cfg, topics=tuple(DEFAULT_TOPICS))
    model = DiffusionCoverGenerator(cfg, seed=0)
    enc = CoverEncoder(CoverEncoderConfig.tiny(), seed=0)
    kw = dict(encoder=enc, seed=2, device="cpu", model=model,
              sample_kwargs={"num_inference_steps": 2})
    bank = banks.build_bank("diffusion", 8, **kw)
    asked = np.asarray(bank.meta["requested_topic"])
    assert bank.meta["topic_conditioned"] is True
    assert asked[:8].tolist() == [0, 1, 2, 3, 4, 5, 0, 1] and len(asked) == len(bank)
    assert bank.meta["topic_agreement"] == pytest.approx(np.mean(bank.topic == asked), abs=1e-4)
    # the topic changes the covers (same seed, same noise)
    plain = banks.build_bank("diffusion", 8, topics=False, **kw)
    assert plain.meta["topic_conditioned"] is False and "requested_topic" not in plain.meta
    assert not np.array_equal(plain.images, bank.images)
    # a model without topics refuses topics=True
    from covercast.generators.dcgan import DCGAN, DCGANConfig

    with pytest.raises(ValueError, match="not conditioned on topics"):
        banks.build_bank("dcgan", 2, model=DCGAN(DCGANConfig.tiny(), seed=0), encoder=enc,
                         device="cpu", topics=True)
