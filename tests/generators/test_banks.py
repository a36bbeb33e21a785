"""Cover banks from every generator: contents, round trips, the population, bad input."""

import numpy as np
import pytest

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.covers.bank import CoverBank
from covercast.generators import banks
from covercast.simulators.params import default_params
from covercast.simulators.population import Population


def test_procedural_bank_has_per_style_covers_cycling_topics_and_round_trips(tmp_path):
    bank = banks.build_bank("procedural", 8, seed=3)
    assert len(bank) == 8 * len(DEFAULT_STYLES)
    assert np.bincount(bank.style).tolist() == [8] * len(DEFAULT_STYLES)
    first = bank.topic[bank.style == 0]
    assert first.tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert np.allclose(bank.style_probs, np.eye(len(DEFAULT_STYLES))[bank.style])
    back = CoverBank.load(bank.save(tmp_path / "p.npz"))
    assert np.array_equal(back.images, bank.images) and back.generator == "procedural"
    again = banks.build_bank("procedural", 8, seed=3)
    assert np.array_equal(again.images, bank.images)


def test_procedural_refuses_a_checkpoint():
    with pytest.raises(ValueError, match="no checkpoint"):
        banks.build_bank("procedural", 2, checkpoint="somewhere")


def test_unknown_generator_and_bad_counts():
    with pytest.raises(ValueError, match="Unknown generator 'gan'"):
        banks.build_bank("gan", 2)
    with pytest.raises(ValueError, match="per_style"):
        banks.build_bank("procedural", 0)
    with pytest.raises(ValueError, match="quality method"):
        banks.build_bank("procedural", 2, quality="pretty")


def test_committed_checkpoint_names_are_checked():
    with pytest.raises(ValueError, match="committed ones"):
        banks.committed_checkpoint("gan")


# ------------------------------------------------------------------------- learned generators
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny untrained generators and encoder, saved like real checkpoints."""
    from covercast.generators.dcgan import DCGAN, DCGANConfig
    from covercast.generators.diffusion import DiffusionConfig, DiffusionCoverGenerator
    from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig
    from covercast.generators.vae_iat import VAEIAT, VAEIATConfig

    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name, model in (("vae-iat", VAEIAT(VAEIATConfig.tiny(), seed=0)),
                        ("dcgan", DCGAN(DCGANConfig.tiny(), seed=0)),
                        ("diffusion", DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)),
                        ("encoder", CoverEncoder(CoverEncoderConfig.tiny(), seed=0))):
        paths[name] = model.save_pretrained(root / name)
    return paths


@pytest.mark.parametrize("generator", ["vae-iat", "dcgan", "diffusion"])
def test_learned_bank_is_labelled_by_the_encoder_and_round_trips(tiny, tmp_path, generator):
    kw = {"sample_kwargs": {"num_inference_steps": 2}} if generator == "diffusion" else {}
    bank = banks.build_bank(generator, 4, checkpoint=tiny[generator], encoder=tiny["encoder"],
                            seed=1, device="cpu", **kw)
    assert len(bank) == 4 * len(DEFAULT_STYLES) and bank.generator == generator
    assert np.bincount(bank.style).tolist() == [4] * len(DEFAULT_STYLES)
    assert np.allclose(bank.style_probs.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(bank.style_probs, np.eye(5)[bank.style])   # encoder, not labels
    assert bank.topic.min() >= 0 and bank.topic.max() < len(DEFAULT_TOPICS)
    assert np.all((bank.quality >= 0) & (bank.quality <= 1))
    assert bank.meta["quality"] == "craft" and np.isfinite(bank.meta["quality_r2_heldout"])
    back = CoverBank.load(bank.save(tmp_path / "b.npz"))
    for field in ("images", "style", "topic", "quality", "features"):
        assert np.array_equal(getattr(back, field), getattr(bank, field)), field
    # same seed, same covers
    again = banks.build_bank(generator, 4, checkpoint=tiny[generator], encoder=tiny["encoder"],
                             seed=1, device="cpu", **kw)
    assert np.array_equal(again.images, bank.images)
    # any environment's engine takes it
    pop = Population(default_params(), 50, bank=back, seed=0)
    out = pop.step(push=np.arange(50), style=2)
    assert out.push_user.size == 50
    assert set(back.style[out.push_cover].tolist()) == {2}


def test_quality_methods(tiny):
    from covercast.generators.encoder import CoverEncoder

    enc = CoverEncoder.from_pretrained(tiny["encoder"], device="cpu")
    images = banks.build_bank("procedural", 3).images
    conf, meta = banks.cover_quality(images, enc, "confidence")
    assert np.allclose(conf, enc.style_probs(images).max(1)) and meta["quality"] == "confidence"
    const, _ = banks.cover_quality(images, None, "constant")
    assert np.all(const == 0.5)
    craft, meta = banks.cover_quality(images, enc, "craft")
    assert np.all((craft >= 0) & (craft <= 1)) and "quality_r2_heldout" in meta
    with pytest.raises(ValueError, match="needs the cover encoder"):
        banks.cover_quality(images, None, "craft")


def test_quality_model_recovers_craft_from_informative_features():
    """With a perfect style classifier (what a trained encoder nearly is), the regression on
    image attributes predicts held-out craft well: check it on an oracle 'encoder' whose
    features carry nothing."""
    from covercast.covers.procedural import procedural_bank

    lookup = {}
    for s in range(2):
        b = procedural_bank(banks.QUALITY_FIT_PER_STYLE_TOPIC, seed=s)
        lookup.update({im.tobytes(): st for im, st in zip(b.images, b.style, strict=True)})

    class Oracle:
        class config:   # noqa: N801 - mimics CoverEncoder.config
            image_size = 32
            styles = DEFAULT_STYLES
            topics = DEFAULT_TOPICS

        @staticmethod
        def features(images):
            return np.zeros((len(images), 1))

        @staticmethod
        def style_probs(images):
            return np.eye(5)[[lookup[im.tobytes()] for im in images]]

    oracle = Oracle()
    qm = banks.fit_quality_model(oracle, seed=0)
    assert qm.r2_heldout > 0.5
    assert banks.fit_quality_model(oracle, seed=0) is qm          # cached per encoder
    assert banks.fit_quality_model(Oracle(), seed=0) is not qm    # another encoder: refit


def test_checkpoint_errors_come_before_any_work(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        banks.build_bank("vae-iat", 2, checkpoint=tmp_path / "missing", encoder=tiny["encoder"])
    with pytest.raises(ValueError, match="holds a 'dcgan' model"):
        banks.build_bank("vae-iat", 2, checkpoint=tiny["dcgan"], encoder=tiny["encoder"],
                         device="cpu")
    with pytest.raises(ValueError, match="holds a 'vae_iat' model"):
        banks.build_bank("vae-iat", 2, checkpoint=tiny["vae-iat"], encoder=tiny["vae-iat"],
                         device="cpu")


def test_styles_of_generator_and_encoder_must_agree(tmp_path, tiny):
    from covercast.generators.vae_iat import VAEIAT, VAEIATConfig

    other = VAEIAT(VAEIATConfig.tiny(styles=("a", "b")), seed=0)
    with pytest.raises(ValueError, match="differ from the cover encoder"):
        banks.build_bank("vae-iat", 2, model=other, encoder=tiny["encoder"], device="cpu")


def test_a_corrupt_bank_file_is_refused(tmp_path):
    path = banks.build_bank("procedural", 2).save(tmp_path / "bank.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable cover bank"):
        CoverBank.load(path)
