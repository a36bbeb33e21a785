"""The open-rate comparison of banks under the same schedule (issue 19's target)."""

import numpy as np
import pandas as pd
import pytest

from covercast.covers.procedural import default_bank, procedural_bank
from covercast.experiments import bank_open_rates as bor


def test_the_same_covers_give_exactly_the_same_opens(tmp_path):
    """Paired: the default bank given as a path meets the same users with the same streams."""
    path = default_bank().save(tmp_path / "same.npz")
    report = bor.run_bank_open_rates(tmp_path / "out", banks=[str(path)], seeds=2, users=400,
                                     days=3)
    text = report.read_text()
    assert "opened at least 90% as often" in text and "MET" in text
    assert "Every learned bank and style is at or above the target." in text
    r = pd.read_csv(tmp_path / "out" / "ratios.csv")
    overall = r[(r["segment"] == "all") & (r["variant"] == "as built")]
    assert len(overall) == 5 and np.allclose(overall["ratio"], 1.0)
    built = r[r["variant"] == "as built"]
    assert np.allclose(built["ratio"].dropna(), 1.0)     # a segment arm may have no open
    assert set(r["variant"]) == set(bor.VARIANTS)


def test_counterfactual_banks_replace_one_part_each():
    ref = default_bank()
    other = procedural_bank(4, seed=11)
    other.quality[:] = 0.1
    q = bor.counterfactual_bank(other, ref, "quality")
    assert np.allclose(q.quality[q.style == 2], ref.quality[ref.style == 2].mean())
    assert np.array_equal(q.features, other.features) and np.array_equal(q.topic, other.topic)
    t = bor.counterfactual_bank(other, ref, "topics")
    assert np.bincount(t.topic[t.style == 0]).tolist() == [4] * 6
    a = bor.counterfactual_bank(other, ref, "attributes")
    assert np.allclose(a.attributes[a.style == 1], ref.attributes[ref.style == 1].mean(0))
    assert np.array_equal(a.style_probs, other.style_probs)
    every = bor.counterfactual_bank(other, ref, "all four")
    assert np.allclose(every.quality[every.style == 2], q.quality[q.style == 2])
    assert bor.counterfactual_bank(other, ref, "as built") is other
    assert other.quality.max() == pytest.approx(0.1)        # the input is not changed
    with pytest.raises(ValueError, match="Unknown variant"):
        bor.counterfactual_bank(other, ref, "pixels")


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="besides procedural"):
        bor.run_bank_open_rates(tmp_path, banks=["procedural"])
    with pytest.raises(ValueError, match="`seeds` must be an integer >= 2"):
        bor.run_bank_open_rates(tmp_path, seeds=1)
    with pytest.raises(ValueError, match="Unknown bank 'gan'"):
        bor.run_bank_open_rates(tmp_path, banks=["gan"], seeds=2, users=20, days=1)
