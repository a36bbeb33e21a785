"""The one-user lean path compiled with numba (optional): the slots a single-user environment
runs per step, in one call.

:class:`~covercast.simulators.population.Population` runs a one-user population on a lean
Python path (``Population._lean_step`` / ``_lean_advance``). This module is the same model,
the same random streams drawn in the same order and the same floating-point operations,
compiled with numba, so a step costs one call instead of dozens of Python calls. The outcomes
are bit-identical to the Python path (tests/envs/test_kernel.py); to get there:

* numpy's own math: ``np.exp``, ``np.log``, ``np.expm1``, ``np.exp2`` use SIMD loops (or SVML)
  on many CPUs that differ from the C library in the last bit now and then, so the kernel calls
  the very inner loops of numpy's ufuncs (their addresses are read from the ufunc objects).
* the random streams: the kernel draws from the numpy bit generators themselves through their
  C interface (``next_double``, ``next_uint64``, ``next_uint32``): ``random()`` is
  ``next_double``, ``integers(0, k)`` Lemire's method on ``next_uint32`` as numpy does it,
  ``standard_normal()`` numpy's ziggurat (numba's copy of its tables) and ``logistic()``
  numpy's formula; the session counts and the drift noise are drawn by numpy in Python, ahead
  (:meth:`Population._k_refill`), in the same blocks the lean path uses.
* the taste match, ``np.einsum("ij,ij->i")``: its sum-of-products kernel adds the products in
  SIMD lanes in a fixed order; :func:`load` finds the lane count that reproduces it on this
  machine (or gives up).

:func:`load` returns the compiled functions, or ``None`` when numba is not installed, the
environment variable ``COVERCAST_NO_NUMBA`` is set to a non-empty value other than ``0``, or a
self-check against numpy fails: then the Python lean path runs (same results, slower). numba is
imported on first use only, and the compiled code is cached on disk (``cache=True``).

The state of the user lives in flat float64 arrays while the kernel runs it (``F``: see the
``F_*`` indices); ``Population._k_in`` / ``_k_out`` move it between those arrays and the Python
lean path's attributes.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

__all__ = ["load", "disabled_reason"]

# ---------------------------------------------------------------- F: the user's state
F_LF, F_LFT, F_LOUT, F_LPID, F_LPT, F_LPC, F_LPTP, F_LLP, F_LLO = range(9)
F_P24, F_P7, F_O24, F_O7, F_S24, F_D24, F_D7 = range(9, 16)
F_NOW, F_SSTART, F_SN, F_LCOUNT, F_LJ, F_LLAST, F_NEXTPID, F_STARTED = range(16, 24)
F_SPOS, F_SLEN, F_NPOS, F_NLEN = range(24, 28)
F_H24, F_N24, F_H7, F_N7, F_RID = range(28, 33)
# per-user constants
F_DWELL_MU, F_DWELL_SIGMA, F_LMULT = range(33, 36)
F_SEEN = 40                       # 168: seen-now probability by hour of week (nan: not yet)
F_OPEN_BASE = F_SEEN + 168        # 168: the first terms of the open logit by hour of week
F_ACT = F_OPEN_BASE + 168         # 168: the segment's activity by hour of week
F_TTM = F_ACT + 168               # n_features + n_topics: the drift's mean
# ---------------------------------------------------------------- C: population constants
(C_SLOT_H, C_WEEK0_H, C_SPD, C_HALF_LIFE, C_INCR, C_BASE_HAZ, C_HAZ_COEF, C_GLANCE,
 C_B_TASTE, C_B_QUAL, C_B_TOPIC, C_B_FAT, C_TAU, C_DWELL_COEF, C_ENG_COEF, C_LIKE_I,
 C_SHARE_I, C_COMMENT_I, C_SURVEY, C_SAT_REL, C_SAT_DWELL, C_SAT_FAT, C_PULL, C_HAS_DRIFT,
 C_HAS_NOISE, C_NF, C_NCUT, C_NCOV, C_CAP, C_LANES) = range(30)
C_CUT = 32                        # cut points, then quality per cover
# ---------------------------------------------------------------- IT: integer tables
I_NSTYLE, I_MAXK = 0, 1
I_TABLES = 2                      # style table (n_styles * maxk), style lengths, cover topics
# ---------------------------------------------------------------- M: addresses
(M_EXP, M_EXP_D, M_EXP2, M_EXP2_D, M_EXPM1, M_EXPM1_D, M_LOG, M_LOG_D, M_LOG1P, M_LOG1P_D,
 M_ST_STATE, M_ST_DOUBLE, M_RS_STATE, M_RS_DOUBLE, M_RS_U64, M_AC_STATE, M_AC_U32) = range(17)
M_SIZE = 17
# ---------------------------------------------------------------- O: what a call reports (R)
O_STATUS = 0                      # slots of the span run (0: none)
O_CLOCK = 1                       # -1, or the clock key whose features the caller must fill
O_COMB = 2                        # 12: the summary of the slot and the span, summed
O_PUSH = 14                       # 12: the first slot's summary (step_user's)
O_SPAN = 26                       # 12: the span's summary (advance_user's)
O_LAST = 38                       # the last slot's (or span's) events, for Population._l_slot
#   start, end, pushed, pid, cover, topic, blocked, collapsed, opened, 10 open fields,
#   opted out, opt-out pid, opt-out time, -, -, -, sessions
O_LAST_SIZE = 26
O_OBS = O_LAST + O_LAST_SIZE      # now, last push, last open, p24, p7, o24, o7, d24, d7, s24,
#                                   opted out, slot number, clock started, next push id
O_SESS = O_OBS + 14               # the span's session count per slot
# ---------------------------------------------------------------- B: the observation's state
# (covercast.envs.observation.UserObservation's numbers, when the kernel builds observations)
B_COUNTS = 0                      # 24: organic sessions seen per hour of day
B_TOTAL, B_ELAPSED, B_STALE, B_MINUTE0, B_SLOT_MIN, B_CAP = range(24, 30)
B_SHARE = 30                      # 24: the observed share per hour of day
B_SIZE = B_SHARE + 24
_RING_COLS = 6                    # start, pushes, opens, dwell, sessions, record id

_LOADED: Any = None
_REASON = "not loaded yet"


def disabled_reason() -> str | None:
    """Why the compiled path is off (``None`` when it is on); loads it if not tried yet."""
    load()
    return None if _LOADED else _REASON


def load() -> Any:
    """The compiled kernel (a namespace with ``run``, ``M``: the address table builder, and
    the constants), or ``None`` (see the module docstring); tried once per process."""
    global _LOADED, _REASON
    if _LOADED is not None:
        return _LOADED or None
    flag = os.environ.get("COVERCAST_NO_NUMBA", "")
    if flag not in ("", "0"):
        _LOADED, _REASON = False, "COVERCAST_NO_NUMBA is set"
        return None
    try:
        from covercast.simulators import _kernel_impl
    except ImportError as e:
        _LOADED, _REASON = False, f"numba is not available ({e})"
        return None
    try:
        ok = _kernel_impl.self_check()
    except Exception as e:  # noqa: BLE001 - any failure means: use the Python path
        ok = f"the self-check failed: {type(e).__name__}: {e}"
    if ok is not True:
        _LOADED, _REASON = False, str(ok)
        return None
    _LOADED, _REASON = _kernel_impl, None
    return _LOADED


def reset_for_tests(loaded: Any = None) -> None:
    """Forget what :func:`load` found (tests switch the compiled path off and on)."""
    global _LOADED, _REASON
    _LOADED, _REASON = loaded, "not loaded yet"


# ---------------------------------------------------------------- addresses (no numba)
def ufunc_loop(ufunc: np.ufunc) -> tuple[int, int]:
    """Address of ``ufunc``'s float64 -> float64 inner loop and of its data pointer, read from
    the ``PyUFuncObject`` (numpy's C layout: after the object header, ``int nin, nout, nargs,
    identity``, then ``functions``, ``data``, ``int ntypes``, ``reserved``, ``name``,
    ``types``). Raises LookupError when the layout is not the expected one."""
    if int(np.__version__.split(".")[0]) not in (1, 2) or ctypes.sizeof(ctypes.c_void_p) != 8:
        raise LookupError(f"the ufunc layout of numpy {np.__version__} on this platform is "
                          "not known")
    base = id(ufunc)
    head = object.__basicsize__
    nin = ctypes.c_int.from_address(base + head).value
    nout = ctypes.c_int.from_address(base + head + 4).value
    nargs = ctypes.c_int.from_address(base + head + 8).value
    ntypes = ctypes.c_int.from_address(base + head + 32).value
    # the plain ints first: no pointer is followed unless they are what a unary ufunc holds
    if (nin, nout, nargs) != (ufunc.nin, ufunc.nout, 2) or ntypes != ufunc.ntypes \
            or not 0 < ntypes < 256:
        raise LookupError(f"unexpected layout of numpy's ufunc {ufunc.__name__}")
    functions = ctypes.c_void_p.from_address(base + head + 16).value
    data = ctypes.c_void_p.from_address(base + head + 24).value
    name = ctypes.c_char_p.from_address(base + head + 40).value
    types = ctypes.c_void_p.from_address(base + head + 48).value
    if name != ufunc.__name__.encode() or not functions or not types:
        raise LookupError(f"unexpected layout of numpy's ufunc {ufunc.__name__}")
    codes = ctypes.string_at(types, ntypes * nargs)
    d = np.dtype(np.float64).num
    for i in range(ntypes):
        if codes[2 * i] == d and codes[2 * i + 1] == d:
            fn = ctypes.c_void_p.from_address(functions + 8 * i).value
            dat = ctypes.c_void_p.from_address(data + 8 * i).value if data else None
            if not fn:
                break
            return int(fn), int(dat or 0)
    raise LookupError(f"no float64 loop found in numpy's ufunc {ufunc.__name__}")


_BITGEN: dict[type, tuple[int, int, int, int]] = {}


def bitgen_addresses(rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(state, next_uint64, next_uint32, next_double)`` of a generator's ``bitgen_t``.

    The functions are those of the bit generator's type, and its state lies at a fixed
    offset in the bit generator object (a member of the Cython object), so both are read
    through ``ctypes`` once per type (checked on two objects) instead of once per generator.
    """
    bg = rng.bit_generator
    known = _BITGEN.get(type(bg))
    if known is None:
        cast = ctypes.cast
        c = bg.ctypes
        offset = int(c.state_address) - id(bg)
        other = type(bg)()
        if int(other.ctypes.state_address) - id(other) != offset:
            raise LookupError(f"the state of {type(bg).__name__} is not at a fixed offset")
        known = _BITGEN[type(bg)] = (offset, cast(c.next_uint64, ctypes.c_void_p).value,
                                     cast(c.next_uint32, ctypes.c_void_p).value,
                                     cast(c.next_double, ctypes.c_void_p).value)
    offset, u64, u32, dbl = known
    return id(bg) + offset, u64, u32, dbl


_MATH: list[np.ndarray] = []


def math_addresses() -> np.ndarray:
    """A new M array with its math part filled in (the streams' part is per population)."""
    if not _MATH:
        m = np.zeros(M_SIZE, dtype=np.int64)
        for i, uf in zip((M_EXP, M_EXP2, M_EXPM1, M_LOG, M_LOG1P),
                         (np.exp, np.exp2, np.expm1, np.log, np.log1p), strict=True):
            m[i], m[i + 1] = ufunc_loop(uf)
        _MATH.append(m)
    return _MATH[0].copy()


# ---------------------------------------------------------------- stream seeding (no numba)
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
#: PCG64's multiplier (PCG_DEFAULT_MULTIPLIER_128)
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341


def _words(n: int) -> list[int]:
    """numpy's ``_int_to_uint32_array``: the 32-bit words of ``n >= 0``, low first."""
    if n == 0:
        return [0]
    out = []
    while n > 0:
        out.append(n & _MASK32)
        n >>= 32
    return out


def assembled_entropy(entropy: int, spawn_key: tuple[int, ...], pool_size: int) -> np.ndarray:
    """``SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size)
    .get_assembled_entropy()`` for an integer entropy and a non-empty key of integers."""
    run = _words(entropy)
    if spawn_key and len(run) < pool_size:
        run += [0] * (pool_size - len(run))
    for k in spawn_key:
        run += _words(k)
    return np.array(run, dtype=np.uint32)


def seed_generator(rng: np.random.Generator, state: np.ndarray) -> None:
    """Seed a PCG64 generator in place from ``generate_state(4, np.uint64)`` words, as
    ``PCG64(seed_sequence)`` does (``pcg64_set_seed``)."""
    s0, s1, i0, i1 = state.tolist()
    inc = (((i0 << 64) | i1) << 1 | 1) & _MASK128
    st = (inc) & _MASK128                                 # 0 * mult + inc
    st = (st + ((s0 << 64) | s1)) & _MASK128
    st = (st * _PCG_MULT + inc) & _MASK128
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": st, "inc": inc},
                               "has_uint32": 0, "uinteger": 0}
