"""The Open Bandit Dataset loader, on the real sample shipped inside obp==0.4.1 (never imported)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.simulators import obd
from covercast.simulators.logs import read_log, validate_log, write_log
from covercast.simulators.obd import (
    OBD_CAMPAIGNS,
    OBD_POLICIES,
    load_obd,
    obd_item_context,
    obd_path,
    obd_to_log,
)

HAS_OBP = importlib.util.find_spec("obp") is not None
requires_obd = pytest.mark.skipif(
    not HAS_OBP, reason='the OBD sample ships inside obp: pip install "covercast[obd]"')
pytestmark = pytest.mark.obd


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    if not HAS_OBP:
        pytest.skip('the OBD sample ships inside obp: pip install "covercast[obd]"')
    return load_obd("random", "all")


# ---------------------------------------------------------------------- without obp
def _hide_obp(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "obp" or name.startswith("obp.") else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


@pytest.mark.parametrize("call", [lambda: obd_path(), lambda: load_obd("bts", "men"),
                                  lambda: obd_item_context()])
def test_missing_obp_says_how_to_install(monkeypatch, call):
    _hide_obp(monkeypatch)
    with pytest.raises(ModuleNotFoundError) as info:
        call()
    msg = str(info.value)
    assert 'pip install "covercast[obd]"' in msg and "obp==0.4.1" in msg
    assert isinstance(info.value, ImportError)


def test_obp_without_the_dataset_folder(monkeypatch, tmp_path):
    (tmp_path / "obp").mkdir()
    spec = importlib.machinery.ModuleSpec("obp", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "obp")]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: spec if name == "obp" else real(name, *a, **k))
    with pytest.raises(FileNotFoundError, match="obp==0.4.1"):
        obd_path()


@pytest.mark.parametrize("kwargs, bad", [({"policy": "thompson"}, "'random', 'bts'"),
                                         ({"campaign": "kids"}, "'all', 'men', 'women'")])
def test_bad_policy_or_campaign_lists_the_valid_ones(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        obd_path(**kwargs)
    with pytest.raises(ValueError, match=bad):
        load_obd(**kwargs)


# ---------------------------------------------------------------------- the real sample
@requires_obd
def test_every_sample_file_is_found():
    for policy in OBD_POLICIES:
        for campaign in OBD_CAMPAIGNS:
            p = obd_path(policy, campaign)
            assert p.is_file()
            assert p.parts[-6:] == ("obp", "dataset", "obd", policy, campaign,
                                    f"{campaign}.csv")


@requires_obd
def test_loading_never_imports_obp():
    code = ("import sys\n"
            "from covercast.simulators.obd import load_obd, obd_to_log\n"
            "obd_to_log(load_obd('random', 'all'))\n"
            "heavy = sorted(m for m in ('obp', 'torch', 'sklearn') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@requires_obd
def test_random_all_sample_has_the_documented_shape(sample):
    df = sample
    assert len(df) == 10_000
    assert list(df.index) == list(range(10_000))
    assert df["timestamp"].dtype == "datetime64[ns, UTC]"
    assert df["timestamp"].is_monotonic_increasing
    days = df["timestamp"].dt.strftime("%Y-%m-%d").unique().tolist()
    assert days == [f"2019-11-{d}" for d in range(24, 31)]
    assert int(df["click"].sum()) == 38  # CTR 0.38 %
    assert set(df["position"].unique()) == {1, 2, 3}
    assert df["item_id"].nunique() == 80
    np.testing.assert_allclose(df["propensity_score"], 1 / 80)  # uniform over 80 items
    assert df.attrs["obd_policy"] == "random" and df.attrs["obd_campaign"] == "all"
    assert all(df[f"user_feature_{i}"].map(type).eq(str).all() for i in range(4))


@requires_obd
def test_item_context_relabelling(sample):
    ic = obd_item_context("random", "all")
    assert ic["item_id"].tolist() == list(range(80))
    assert set(ic["style"]) <= set(DEFAULT_STYLES) and set(ic["topic"]) <= set(DEFAULT_TOPICS)
    # every category of the nested feature sits in one category of the topic feature
    assert ic.groupby("item_feature_2")["item_feature_3"].nunique().max() == 1
    # the relabelling is a function of the category, and deterministic
    assert ic.groupby("item_feature_3")["topic"].nunique().max() == 1
    assert ic.groupby("item_feature_1")["style"].nunique().max() == 1
    pd.testing.assert_frame_equal(ic, obd_item_context("random", "all"))
    raw = obd_item_context("random", "all", styles=None, topics=None)
    assert raw["topic"].nunique() == ic["item_feature_3"].nunique() == 7
    assert raw["style"].str.startswith("item_feature_1=").all()
    custom = obd_item_context("random", "men", styles=["a", "b"], topics=["x"])
    assert set(custom["style"]) == {"a", "b"} and set(custom["topic"]) == {"x"}
    with pytest.raises(ValueError, match="`styles` must be a non-empty sequence"):
        obd_item_context(styles=[])


@requires_obd
def test_obd_to_log_is_a_valid_covercast_log(sample):
    log = obd_to_log(sample)
    pd.testing.assert_frame_equal(validate_log(log), log)
    pushes, opens = log[log["event"] == "push"], log[log["event"] == "open"]
    assert len(pushes) == 10_000 and len(opens) == 38
    assert pushes["push_id"].tolist() == list(range(10_000))
    assert pushes["user_id"].tolist() == pushes["push_id"].tolist()  # one user per impression
    np.testing.assert_allclose(pushes["propensity"], sample["propensity_score"])
    assert pushes["cover_id"].tolist() == sample["item_id"].tolist()
    assert pushes["position"].tolist() == sample["position"].tolist()
    assert pushes["dwell_s"].isna().all() and (opens["dwell_s"] == 0.0).all()
    clicked = sample.index[sample["click"] == 1].tolist()
    assert sorted(opens["push_id"].tolist()) == clicked
    by_id = pushes.set_index("push_id")
    lag = opens["timestamp"].to_numpy() - by_id.loc[opens["push_id"], "timestamp"].to_numpy()
    assert (lag == np.timedelta64(1, "s")).all()
    assert (opens["style"].to_numpy() == by_id.loc[opens["push_id"], "style"].to_numpy()).all()
    assert log["timestamp"].is_monotonic_increasing


@requires_obd
def test_obd_to_log_user_id_from_features_and_zero_delay(sample):
    log = obd_to_log(sample, user_id="features", open_delay_s=0.0, open_dwell_s=5.0)
    validate_log(log)
    pushes = log[log["event"] == "push"]
    combos = sample[[f"user_feature_{i}" for i in range(4)]].drop_duplicates()
    assert pushes["user_id"].nunique() == len(combos) == 240
    again = obd_to_log(sample, user_id="features")
    assert again.loc[again["event"] == "push", "user_id"].tolist() == pushes["user_id"].tolist()
    opens = log[log["event"] == "open"]
    assert (opens["dwell_s"] == 5.0).all()


@requires_obd
def test_obd_to_log_other_samples_and_round_trip(tmp_path):
    bts = load_obd("bts", "women")
    log = obd_to_log(bts)
    p = log.loc[log["event"] == "push", "propensity"]
    assert p.nunique() > 100 and p.between(0, 1, inclusive="right").all()
    back = read_log(write_log(log, tmp_path / "obd.parquet"))
    pd.testing.assert_frame_equal(back, log)


@requires_obd
def test_obd_to_log_argument_errors(sample):
    with pytest.raises(ValueError, match="'impression', 'features'"):
        obd_to_log(sample, user_id="cookie")
    with pytest.raises(ValueError, match="open_delay_s"):
        obd_to_log(sample, open_delay_s=-1)
    with pytest.raises(ValueError, match="open_dwell_s"):
        obd_to_log(sample, open_dwell_s=float("nan"))
    with pytest.raises(ValueError, match="propensity_score"):
        obd_to_log(sample.drop(columns="propensity_score"))
    anonymous = sample.copy()
    anonymous.attrs = {}
    with pytest.raises(ValueError, match="item_context=obd_item_context"):
        obd_to_log(anonymous)
    log = obd_to_log(anonymous, item_context=obd_item_context("random", "all"))
    assert len(log) == 10_038
    men_items = obd_item_context("random", "men")
    with pytest.raises(ValueError, match="not in `item_context`"):
        obd_to_log(sample, item_context=men_items)
    with pytest.raises(TypeError, match="load_obd"):
        obd_to_log(sample.to_dict())


def test_module_documents_the_install_hint():
    assert "covercast[obd]" in obd.INSTALL_HINT and "obp==0.4.1" in obd.INSTALL_HINT
