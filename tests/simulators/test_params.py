"""PopulationParams: validation, JSON round trip, the documented default."""

import json

import numpy as np
import pytest

from covercast.simulators.params import (
    HOURS_PER_WEEK,
    PopulationParams,
    Segment,
    default_params,
    weekly_profile,
)


def test_default_is_valid_and_documented():
    p = default_params()
    assert [s.name for s in p.segments] == ["morning_commuter", "evening_leisure", "night_owl"]
    assert abs(sum(s.weight for s in p.segments) - 1) < 1e-12
    assert p.activity_matrix().shape == (3, HOURS_PER_WEEK)
    assert "Leanplum" in p.source
    # A few organic sessions a day per user, in every segment.
    per_day = p.activity_matrix().sum(axis=1) / 7
    assert np.all((per_day > 3) & (per_day < 8))


def test_segments_peak_where_their_names_say():
    p = default_params()
    monday = {s.name: int(np.argmax(s.activity[:24])) for s in p.segments}
    assert 6 <= monday["morning_commuter"] <= 9
    assert 19 <= monday["evening_leisure"] <= 22
    assert monday["night_owl"] in (22, 23, 0, 1)


def test_json_round_trip(tmp_path):
    p = default_params()
    path = p.save(tmp_path / "params.json")
    q = PopulationParams.load(path)
    assert q == p
    assert json.loads(path.read_text())["schema_version"] == 1


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    default_params().save(tmp_path / "p.json")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.json"]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d["segments"][0].update(weight=0.9), "weights summing to 1"),
        (lambda d: d["segments"][0].update(activity=[0.1] * 24), "168 rates"),
        (lambda d: d["segments"][1].update(activity=[-1.0] * 168), "activity"),
        (lambda d: d["segments"][0].update(taste_mean=[0.0] * 3), "attributes \\+ one per style"),
        (lambda d: d["segments"][0].update(dwell_sigma=0.0), "dwell_sigma"),
        (lambda d: d["fatigue"].update(half_life_h=-1), "fatigue.half_life_h"),
        (lambda d: d["open"].update(stale_tau_h=0), "open.stale_tau_h"),
        (lambda d: d["satisfaction"].update(cutpoints=[1, 0, 2, 3]), "cutpoints"),
        (lambda d: d["opt_out"].update(base_hazard=float("nan")), "opt_out.base_hazard"),
        (lambda d: d.update(bogus=1), "Unknown PopulationParams field"),
        (lambda d: d["open"].update(beta_open=1), "Unknown field\\(s\\) \\['beta_open'\\] in `open`"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d["segments"][1].update(name="night_owl"), "distinct"),
    ],
)
def test_bad_values_are_named(mutate, match):
    d = default_params().to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=match):
        PopulationParams.from_dict(d)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="covercast fit"):
        PopulationParams.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PopulationParams.load(bad)


def test_weekly_profile_wraps_midnight_and_has_weekend():
    prof = np.array(weekly_profile([(23.5, 1.0, 1.0)], floor=0.0, weekend_peaks=[(12.0, 1.0, 2.0)]))
    assert prof.shape == (168,)
    assert prof[0] > prof[12]  # the 23:30 bump spills over midnight into Monday 00:00
    assert np.argmax(prof[5 * 24:6 * 24]) == 11 or np.argmax(prof[5 * 24:6 * 24]) == 12


def test_segment_constructor_validates_through_params():
    seg = default_params().segments[0]
    with pytest.raises(ValueError, match="activity_shape"):
        PopulationParams(segments=[Segment(**{**seg.__dict__, "weight": 1.0,
                                              "activity_shape": 0.0})])


def test_with_parts_replaces_fields_and_validates():
    from covercast.simulators.params import default_params

    p = default_params()
    q = p.with_parts(opt_out={"base_hazard": 0.01}, drift={"sd_per_day": 0.0})
    assert q.opt_out.base_hazard == 0.01 and q.drift.sd_per_day == 0.0
    assert q.fatigue == p.fatigue and p == default_params()
    with pytest.raises(ValueError, match="Unknown part 'segments'"):
        p.with_parts(segments={})
