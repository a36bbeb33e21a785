"""The Open Bandit Dataset sample (ZOZOTOWN), read as real logged bandit feedback.

The Open Bandit Dataset (Saito et al., "Open Bandit Dataset and Pipeline", 2020; ZOZO, Inc.,
CC BY 4.0) logs a fashion e-commerce site's recommendation widget: at each impression one of 80
items (``campaign="all"``; 34 for ``"men"``, 46 for ``"women"``) is shown at one of three
positions, chosen by a logging policy (``"random"``: uniform, or ``"bts"``: Bernoulli Thompson
sampling) whose propensity is recorded, and a click is or is not observed. The package
``obp==0.4.1`` (covercast's extra ``obd``) ships a 10,000-row sample of each policy and
campaign, at ``obp/dataset/obd/{policy}/{campaign}/{campaign}.csv``, with the item table
``item_context.csv`` beside it; the ``random/all`` sample spans 2019-11-24 .. 2019-11-30 (UTC)
with 38 clicks (CTR about 0.4 %).

This module reads those files **without importing obp**: obp's own import pulls in torch and
scikit-learn and fails under pandas 3; covercast only needs the CSV files, which it locates with
:func:`importlib.util.find_spec` (which finds a package without running it).

Mapping OBD onto the covercast log schema (:func:`obd_to_log`):

* each impression is a ``push`` row with its true ``propensity`` (``propensity_score``) and
  ``cover_id`` = the OBD ``item_id``; its ``position`` (1-3) is kept as an extra column;
* a click is an ``open`` row of the same ``push_id``, ``open_delay_s`` seconds after the push;
  OBD records no time spent, so the open's ``dwell_s`` is the constant ``open_dwell_s`` (0 by
  default): do not fit dwell models on OBD logs;
* ``push_id`` is the impression's row position in the loaded sample (0..n-1);
* ``user_id``: OBD has no user id. ``user_id="impression"`` (default) gives each impression its
  own user (no repeat-user structure is invented); ``user_id="features"`` pools impressions of
  users with the same four anonymised user features (240 combinations in ``random/all``) under
  one id, a stable 56-bit BLAKE2b hash of those features -- a user *type*, not a person;
* ``topic`` and ``style`` come from the anonymised item features (see
  :func:`obd_item_context`): ``item_feature_3`` (7 levels in ``all``; ``item_feature_2`` is
  nested inside it) is read as the item's category and relabelled to a covercast topic, and
  ``item_feature_1`` (12 levels, crossing the categories) is relabelled to a covercast style.
  The features are hashed by ZOZO, so the relabelling carries no visual meaning: it lets
  covercast code run on OBD, it does not say what the images looked like.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.simulators.logs import TEXT_DTYPE, sort_log, validate_log

#: Logging policies of the sample: uniform random, and Bernoulli Thompson sampling.
OBD_POLICIES: tuple[str, ...] = ("random", "bts")
#: Campaigns of the sample.
OBD_CAMPAIGNS: tuple[str, ...] = ("all", "men", "women")
#: The obp release whose sample these readers were written against.
OBP_VERSION = "0.4.1"
#: How to get the data.
INSTALL_HINT = 'pip install "covercast[obd]"  (or: pip install obp==0.4.1)'
#: Columns every OBD sample file has (besides ``user-item_affinity_*``).
OBD_COLUMNS: tuple[str, ...] = ("timestamp", "item_id", "position", "click", "propensity_score",
                                "user_feature_0", "user_feature_1", "user_feature_2",
                                "user_feature_3")
USER_FEATURES: tuple[str, ...] = OBD_COLUMNS[5:]
#: The item feature relabelled to a covercast topic, and the one relabelled to a style.
TOPIC_FEATURE = "item_feature_3"
STYLE_FEATURE = "item_feature_1"
USER_ID_MODES: tuple[str, ...] = ("impression", "features")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}, got "
                         f"{value!r}.")
    return value


def obd_root() -> Path:
    """The ``obp/dataset/obd`` folder of the installed obp package, found without importing it.

    Raises
    ------
    ModuleNotFoundError
        If obp is not installed (the message gives the install command).
    FileNotFoundError
        If obp is installed but carries no dataset sample (another release than 0.4.1).
    """
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The Open Bandit Dataset sample ships inside the `obp` package, which is not "
            f"installed. Install it with: {INSTALL_HINT}", name="obp")
    for base in spec.submodule_search_locations:
        root = Path(base) / "dataset" / "obd"
        if root.is_dir():
            return root
    try:
        version = importlib.metadata.version("obp")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    raise FileNotFoundError(
        f"obp {version} is installed at {list(spec.submodule_search_locations)} but has no "
        f"dataset/obd folder; covercast reads the sample shipped with obp=={OBP_VERSION}: "
        f"{INSTALL_HINT}")


def _sample_file(policy: str, campaign: str, filename: str) -> Path:
    _check_choice("policy", policy, OBD_POLICIES)
    _check_choice("campaign", campaign, OBD_CAMPAIGNS)
    path = obd_root() / policy / campaign / filename
    if not path.is_file():
        raise FileNotFoundError(f"The OBD sample file {path} is missing; reinstall obp=="
                                f"{OBP_VERSION}: {INSTALL_HINT}")
    return path


def obd_path(policy: str = "random", campaign: str = "all") -> Path:
    """Path of the sample CSV ``obp/dataset/obd/{policy}/{campaign}/{campaign}.csv``.

    Parameters
    ----------
    policy:
        ``"random"`` (uniform logging policy) or ``"bts"`` (Bernoulli Thompson sampling).
    campaign:
        ``"all"``, ``"men"`` or ``"women"``.

    Raises
    ------
    ValueError
        If ``policy`` or ``campaign`` is not one of the valid values (listed in the message).
    ModuleNotFoundError
        If obp is not installed.
    FileNotFoundError
        If the file is not in the installed obp.
    """
    return _sample_file(policy, campaign, f"{campaign}.csv")


def load_obd(policy: str = "random", campaign: str = "all") -> pd.DataFrame:
    """Load one OBD sample with pandas (obp is never imported).

    Returns
    -------
    pandas.DataFrame
        One row per impression, in the file's (time) order, index ``0..n-1``: ``timestamp``
        (datetime64[ns, UTC]), ``item_id``, ``position`` (1-3), ``click`` (0/1; all int64),
        ``propensity_score`` (float), ``user_feature_0..3`` (str, anonymised hashes), and the
        ``user-item_affinity_<item>`` floats. ``df.attrs`` records ``obd_policy``,
        ``obd_campaign`` and ``obd_source`` (the file).

    Raises
    ------
    ValueError
        For a bad policy/campaign, or if the file does not look like the OBD sample.
    ModuleNotFoundError
        If obp is not installed.
    """
    path = obd_path(policy, campaign)
    df = pd.read_csv(path, index_col=0, dtype={c: str for c in ("timestamp", *USER_FEATURES)})
    missing = [c for c in OBD_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks the OBD columns {missing}; reinstall obp=={OBP_VERSION}.")
    df = df.reset_index(drop=True)
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601", utc=True).dt.as_unit("ns")
    checks = {
        "position": df["position"].isin([1, 2, 3]).all(),
        "click": df["click"].isin([0, 1]).all(),
        "propensity_score": bool(((df["propensity_score"] > 0)
                                  & (df["propensity_score"] <= 1)).all()),
        "timestamp": bool(df["timestamp"].notna().all()
                          and df["timestamp"].is_monotonic_increasing),
    }
    broken = [c for c, ok in checks.items() if not ok]
    if broken:
        raise ValueError(f"{path} does not look like the OBD sample (bad values in {broken}); "
                         f"reinstall obp=={OBP_VERSION}.")
    df.attrs.update(obd_policy=policy, obd_campaign=campaign, obd_source=str(path))
    return df


def _relabel(values: pd.Series, names: Sequence[str] | None, feature: str) -> pd.Series:
    """Map category hashes to names: sorted distinct hashes, i-th -> names[i % len(names)]."""
    levels = sorted(values.dropna().astype(str).unique())
    if names is None:
        table = {v: f"{feature}={v[:8]}" for v in levels}
    else:
        table = {v: names[i % len(names)] for i, v in enumerate(levels)}
    return values.map(table).astype(TEXT_DTYPE)


def obd_item_context(policy: str = "random", campaign: str = "all", *,
                     styles: Sequence[str] | None = DEFAULT_STYLES,
                     topics: Sequence[str] | None = DEFAULT_TOPICS) -> pd.DataFrame:
    """The item table of one OBD sample, with a covercast ``style`` and ``topic`` per item.

    The relabelling is deterministic and documented, not semantic (the features are hashes):
    the distinct values of ``item_feature_3`` (the item category), sorted, are given
    ``topics[0], topics[1], ...`` in turn, wrapping around when there are more categories than
    topics; likewise ``item_feature_1`` and ``styles``.

    Parameters
    ----------
    policy, campaign:
        Which sample (see :func:`obd_path`).
    styles, topics:
        Names to relabel to (default: covercast's default styles and topics). ``None`` keeps
        OBD's own categories as labels such as ``"item_feature_1=31af3894"``.

    Returns
    -------
    pandas.DataFrame
        One row per item, sorted by ``item_id``: ``item_id``, ``item_feature_0`` (float),
        ``item_feature_1..3`` (str hashes), ``style``, ``topic``.

    Raises
    ------
    ValueError
        For a bad policy/campaign or an empty / non-string list of names.
    """
    for name, names in (("styles", styles), ("topics", topics)):
        if names is not None and (isinstance(names, str) or len(names) == 0
                                  or not all(isinstance(x, str) and x for x in names)):
            raise ValueError(f"`{name}` must be a non-empty sequence of names or None, got "
                             f"{names!r}.")
    path = _sample_file(policy, campaign, "item_context.csv")
    ic = pd.read_csv(path, index_col=0,
                     dtype={f"item_feature_{i}": str for i in (1, 2, 3)})
    need = ["item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3"]
    if [c for c in need if c not in ic.columns]:
        raise ValueError(f"{path} lacks the columns {need}; reinstall obp=={OBP_VERSION}.")
    ic = ic[need].sort_values("item_id", kind="stable").reset_index(drop=True)
    ic["style"] = _relabel(ic[STYLE_FEATURE], None if styles is None else list(styles),
                           STYLE_FEATURE)
    ic["topic"] = _relabel(ic[TOPIC_FEATURE], None if topics is None else list(topics),
                           TOPIC_FEATURE)
    ic.attrs.update(obd_policy=policy, obd_campaign=campaign, obd_source=str(path))
    return ic


def _feature_user_ids(df: pd.DataFrame) -> np.ndarray:
    """A stable 56-bit id per combination of the four user features (BLAKE2b of the values)."""
    key = df[list(USER_FEATURES)].astype(str).agg("|".join, axis=1)
    codes, uniques = pd.factorize(key)
    ids = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=7).digest(), "big")
                    for u in uniques], dtype=np.int64)
    return ids[codes]


def obd_to_log(df: pd.DataFrame, *, item_context: pd.DataFrame | None = None,
               user_id: str = "impression", open_delay_s: float = 1.0,
               open_dwell_s: float = 0.0) -> pd.DataFrame:
    """Convert OBD impressions into a covercast log (validated, in time order).

    See the module docstring for the mapping. Every impression becomes a ``push`` row; every
    click adds an ``open`` row ``open_delay_s`` seconds later. The result is sorted with
    :func:`covercast.simulators.logs.sort_log` (time, then event order) and validated with
    :func:`covercast.simulators.logs.validate_log`.

    Parameters
    ----------
    df:
        Impressions as returned by :func:`load_obd` (at least ``timestamp``, ``item_id``,
        ``position``, ``click``, ``propensity_score``, and the user features when
        ``user_id="features"``).
    item_context:
        The item table from :func:`obd_item_context` (gives ``style`` and ``topic``). ``None``
        loads it for the policy and campaign that :func:`load_obd` recorded in ``df.attrs``.
    user_id:
        ``"impression"`` (one user per impression) or ``"features"`` (one id per combination of
        the user features).
    open_delay_s:
        Seconds from an impression to its click's ``open`` row (>= 0; OBD gives no click time).
    open_dwell_s:
        The ``dwell_s`` written on open rows (>= 0), since OBD records no time spent.

    Returns
    -------
    pandas.DataFrame
        A valid covercast log with the extra column ``position``; ``attrs`` keep the OBD
        provenance.

    Raises
    ------
    ValueError
        For a bad argument, missing columns, or items absent from ``item_context``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"obd_to_log expects the DataFrame from load_obd, got "
                        f"{type(df).__name__}.")
    _check_choice("user_id", user_id, USER_ID_MODES)
    for name, v in (("open_delay_s", open_delay_s), ("open_dwell_s", open_dwell_s)):
        if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"`{name}` must be a finite number >= 0, got {v!r}.")
    need = list(OBD_COLUMNS[:5]) + (list(USER_FEATURES) if user_id == "features" else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"obd_to_log needs the OBD columns {missing}; load the data with "
                         "`load_obd(policy, campaign)`.")
    if item_context is None:
        policy, campaign = df.attrs.get("obd_policy"), df.attrs.get("obd_campaign")
        if policy is None or campaign is None:
            raise ValueError("obd_to_log cannot tell which OBD sample `df` comes from (no "
                             "`obd_policy`/`obd_campaign` in df.attrs): pass "
                             "`item_context=obd_item_context(policy, campaign)`.")
        item_context = obd_item_context(policy, campaign)
    for c in ("item_id", "style", "topic"):
        if c not in item_context.columns:
            raise ValueError(f"`item_context` lacks the column {c!r}; build it with "
                             "`obd_item_context(policy, campaign)`.")
    table = item_context.set_index("item_id")
    unknown = ~df["item_id"].isin(table.index)
    if unknown.any():
        raise ValueError(f"item_id(s) {sorted(df.loc[unknown, 'item_id'].unique())[:5]} are not "
                         "in `item_context`; use the item table of the same policy and campaign.")

    n = len(df)
    push_id = np.arange(n, dtype=np.int64)
    users = push_id.copy() if user_id == "impression" else _feature_user_ids(df)
    ts = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True)).as_unit("ns")
    item = df["item_id"].to_numpy(dtype=np.int64)
    style = table["style"].reindex(item).to_numpy(dtype=object)
    topic = table["topic"].reindex(item).to_numpy(dtype=object)
    click = df["click"].to_numpy() == 1
    position = df["position"].to_numpy(dtype=np.int64)

    pushes = pd.DataFrame({
        "user_id": users, "timestamp": ts, "event": "push", "push_id": push_id,
        "style": style, "topic": topic, "dwell_s": np.nan,
        "propensity": df["propensity_score"].to_numpy(dtype=np.float64),
        "cover_id": item, "position": position,
    })
    opens = pd.DataFrame({
        "user_id": users[click],
        "timestamp": ts[click] + pd.Timedelta(seconds=float(open_delay_s)),
        "event": "open", "push_id": push_id[click], "style": style[click],
        "topic": topic[click], "dwell_s": float(open_dwell_s), "propensity": np.nan,
        "cover_id": item[click], "position": position[click],
    })
    log = pd.concat([pushes, opens], ignore_index=True)
    for c in ("push_id", "cover_id", "position"):
        log[c] = log[c].astype("Int64")
    log = validate_log(sort_log(log))
    log.attrs = {k: v for k, v in df.attrs.items() if k.startswith("obd_")}
    log.attrs["obd_user_id"] = user_id
    return log


__all__ = [
    "INSTALL_HINT", "OBD_CAMPAIGNS", "OBD_POLICIES", "OBP_VERSION", "load_obd",
    "obd_item_context", "obd_path", "obd_root", "obd_to_log",
]
