"""Fixtures shared by test folders."""

import pytest


@pytest.fixture(scope="module")
def small_named_banks(tmp_path_factory):
    """Banks by name (``bank="diffusion"``, ...) with 1 cover per style x topic instead of 4,
    diffusion sampled in 2 steps (the plumbing, not the covers, is under test), cached in a
    temporary folder and an empty in-process cache. Skips without torch."""
    pytest.importorskip("torch")
    from covercast.generators import banks

    build = banks.build_bank

    def quick(generator, per_style, **kw):
        if generator == "diffusion":
            kw["sample_kwargs"] = {"num_inference_steps": 2}
        return build(generator, per_style, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COVERCAST_CACHE_DIR", str(tmp_path_factory.mktemp("bank_cache")))
        mp.setattr(banks, "NAMED_BANK_PER_STYLE_TOPIC", 1)
        mp.setattr(banks, "_NAMED_CACHE", {})
        mp.setattr(banks, "build_bank", quick)
        yield
