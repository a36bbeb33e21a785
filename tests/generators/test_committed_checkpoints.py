"""Every committed generator checkpoint loads and makes its styles at its documented accuracy.

The documented figures are the ``evaluation.json`` that ``covercast generators evaluate
--committed --document-committed`` wrote into each checkpoint folder (the report in
docs/results/generators). Here fewer covers are drawn with another seed, so the bound allows
for sampling noise: the accuracy must reach the documented one minus 0.1.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from covercast.covers.attributes import DEFAULT_STYLES  # noqa: E402
from covercast.generators.banks import committed_checkpoint, load_encoder, load_generator  # noqa: E402

PER_STYLE = 12


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


@pytest.mark.parametrize("name", ["diffusion", "vae-iat", "dcgan"])
def test_committed_generator_makes_its_styles_at_the_documented_accuracy(name, encoder):
    doc_file = committed_checkpoint(name) / "evaluation.json"
    if not doc_file.is_file():
        pytest.fail(f"{doc_file} is missing: run `covercast generators evaluate --committed "
                    "--document-committed` after changing a committed checkpoint.")
    doc = json.loads(doc_file.read_text())
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_generator(name, device="cpu")
        labels = np.repeat(np.arange(len(DEFAULT_STYLES)), PER_STYLE)
        kw = {}
        if model.topics:
            kw["topic"] = (np.arange(len(labels)) % len(model.topics)).tolist()
        images = model.sample(labels.tolist(), len(labels),
                              generator=torch.Generator().manual_seed(2024), **kw)
    finally:
        torch.set_num_threads(n)
    assert images.shape == (len(labels), 32, 32, 3) and images.dtype == np.uint8
    acc = float(np.mean(encoder.style_probs(images).argmax(1) == labels))
    assert acc >= doc["style_accuracy"] - 0.1, (name, acc, doc["style_accuracy"])


def test_the_committed_diffusion_model_is_the_documented_recipe():
    model = load_generator("diffusion", device="cpu")
    cfg = model.config
    assert cfg.prediction_type == "v_prediction" and cfg.rescale_betas_zero_snr
    assert cfg.topics and cfg.block_out_channels == (32, 48, 64)      # the "small" preset
    info = json.loads((committed_checkpoint("diffusion") / "train.json").read_text())
    assert info["train_config"]["fresh_covers"] and info["train_config"]["min_snr_gamma"] > 0
    assert info["train_config"]["ema_decay"] > 0
    assert (committed_checkpoint("diffusion") / "sampling.json").is_file()
