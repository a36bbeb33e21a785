"""The numba code of :mod:`covercast.simulators._kernel` (imported by its ``load()`` only, so
that numba is imported on first use). See that module for what is computed and why it gives
the same bits as the Python lean path of :class:`~covercast.simulators.population.Population`.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.random._constants import (
    fi_double,
    ki_double,
    wi_double,
    ziggurat_nor_inv_r,
    ziggurat_nor_r,
)

from covercast.simulators._kernel import (
    B_CAP,
    B_COUNTS,
    B_ELAPSED,
    B_MINUTE0,
    B_SHARE,
    B_SLOT_MIN,
    B_STALE,
    B_TOTAL,
    C_B_FAT,
    C_B_QUAL,
    C_B_TASTE,
    C_B_TOPIC,
    C_BASE_HAZ,
    C_CUT,
    C_DWELL_COEF,
    C_ENG_COEF,
    C_GLANCE,
    C_HALF_LIFE,
    C_HAS_DRIFT,
    C_HAS_NOISE,
    C_HAZ_COEF,
    C_INCR,
    C_LANES,
    C_LIKE_I,
    C_NCOV,
    C_NCUT,
    C_NF,
    C_PULL,
    C_SAT_DWELL,
    C_SAT_FAT,
    C_SAT_REL,
    C_SLOT_H,
    C_SPD,
    C_SURVEY,
    C_TAU,
    C_WEEK0_H,
    F_ACT,
    F_D7,
    F_D24,
    F_DWELL_MU,
    F_DWELL_SIGMA,
    F_H7,
    F_H24,
    F_LCOUNT,
    F_LF,
    F_LFT,
    F_LJ,
    F_LLAST,
    F_LLO,
    F_LLP,
    F_LMULT,
    F_LOUT,
    F_LPC,
    F_LPID,
    F_LPT,
    F_LPTP,
    F_N7,
    F_N24,
    F_NEXTPID,
    F_NLEN,
    F_NOW,
    F_NPOS,
    F_O7,
    F_O24,
    F_OPEN_BASE,
    F_P7,
    F_P24,
    F_RID,
    F_S24,
    F_SEEN,
    F_SLEN,
    F_SN,
    F_SPOS,
    F_SSTART,
    F_STARTED,
    F_TTM,
    I_MAXK,
    I_NSTYLE,
    I_TABLES,
    M_AC_STATE,
    M_AC_U32,
    M_EXP,
    M_EXP2,
    M_EXP2_D,
    M_EXP_D,
    M_EXPM1,
    M_EXPM1_D,
    M_LOG,
    M_LOG1P,
    M_LOG1P_D,
    M_LOG_D,
    M_RS_DOUBLE,
    M_RS_STATE,
    M_RS_U64,
    M_SIZE,
    M_ST_DOUBLE,
    M_ST_STATE,
    O_CLOCK,
    O_COMB,
    O_LAST,
    O_OBS,
    O_PUSH,
    O_SESS,
    O_SPAN,
    O_STATUS,
)

_I64 = ir.IntType(64)
_I8P = ir.IntType(8).as_pointer()
_DBL = ir.DoubleType()


# ================================================================== calls through addresses
@intrinsic
def _loop1(typingctx, fn, data, x):
    """``out = ufunc_loop(x)`` for one float64, through the loop's address."""
    sig = types.float64(types.int64, types.int64, types.float64)

    def codegen(context, builder, signature, args):
        fnaddr, dataaddr, xv = args
        pin = cgutils.alloca_once(builder, _DBL)
        pout = cgutils.alloca_once(builder, _DBL)
        builder.store(xv, pin)
        argv = cgutils.alloca_once(builder, _I8P, size=2)
        builder.store(builder.bitcast(pin, _I8P), argv)
        builder.store(builder.bitcast(pout, _I8P), builder.gep(argv, [ir.Constant(_I64, 1)]))
        dims = cgutils.alloca_once(builder, _I64)
        builder.store(ir.Constant(_I64, 1), dims)
        steps = cgutils.alloca_once(builder, _I64, size=2)
        builder.store(ir.Constant(_I64, 8), steps)
        builder.store(ir.Constant(_I64, 8), builder.gep(steps, [ir.Constant(_I64, 1)]))
        fnty = ir.FunctionType(ir.VoidType(), [_I8P.as_pointer(), _I64.as_pointer(),
                                               _I64.as_pointer(), _I8P])
        f = builder.inttoptr(fnaddr, fnty.as_pointer())
        builder.call(f, [argv, dims, steps, builder.inttoptr(dataaddr, _I8P)])
        return builder.load(pout)

    return sig, codegen


def _bitgen_call(restype, llres):
    @intrinsic
    def call(typingctx, fn, state):
        sig = restype(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            fnty = ir.FunctionType(llres, [_I8P])
            f = builder.inttoptr(args[0], fnty.as_pointer())
            return builder.call(f, [builder.inttoptr(args[1], _I8P)])

        return sig, codegen
    return call


_next_double = _bitgen_call(types.float64, _DBL)
_next_u64 = _bitgen_call(types.uint64, ir.IntType(64))
_next_u32 = _bitgen_call(types.uint32, ir.IntType(32))


@njit(cache=True)
def _exp(M, x):
    return _loop1(M[M_EXP], M[M_EXP_D], x)


@njit(cache=True)
def _exp2(M, x):
    return _loop1(M[M_EXP2], M[M_EXP2_D], x)


@njit(cache=True)
def _expm1(M, x):
    return _loop1(M[M_EXPM1], M[M_EXPM1_D], x)


@njit(cache=True)
def _log(M, x):
    return _loop1(M[M_LOG], M[M_LOG_D], x)


@njit(cache=True)
def _log1p(M, x):
    return _loop1(M[M_LOG1P], M[M_LOG1P_D], x)


# ================================================================== numpy's distributions
@njit(cache=True)
def _standard_normal(fn64, fnd, state):
    """numpy's ``random_standard_normal`` (ziggurat; its tail and wedge use the C library's
    ``log1p`` / ``exp``, as numpy's C code does)."""
    while True:
        r = _next_u64(fn64, state)
        idx = r & np.uint64(0xff)
        r >>= np.uint64(8)
        sign = r & np.uint64(1)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000fffffffffffff)
        x = rabs * wi_double[idx]
        if sign & np.uint64(1):
            x = -x
        if rabs < ki_double[idx]:
            return x
        if idx == 0:
            while True:
                xx = -ziggurat_nor_inv_r * math.log1p(-_next_double(fnd, state))
                yy = -math.log1p(-_next_double(fnd, state))
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(ziggurat_nor_r + xx)
                    return ziggurat_nor_r + xx
        else:
            if ((fi_double[idx - 1] - fi_double[idx]) * _next_double(fnd, state)
                    + fi_double[idx]) < math.exp(-0.5 * x * x):
                return x


@njit(cache=True)
def _logistic(fnd, state):
    """numpy's ``random_logistic`` with ``loc = 0``, ``scale = 1``."""
    u = _next_double(fnd, state)
    while u <= 0.0:
        u = _next_double(fnd, state)
    return 0.0 + 1.0 * math.log(u / (1.0 - u))


@njit(cache=True)
def _integer(M, k):
    """``integers(0, k)`` for ``1 <= k < 2**32``: numpy's Lemire method on 32-bit words."""
    if k == 1:
        return 0
    ku = np.uint64(k)
    m = np.uint64(_next_u32(M[M_AC_U32], M[M_AC_STATE])) * ku
    low = m & np.uint64(0xFFFFFFFF)
    if low < ku:
        threshold = (np.uint64(0xFFFFFFFF) - (ku - np.uint64(1))) % ku
        while low < threshold:
            m = np.uint64(_next_u32(M[M_AC_U32], M[M_AC_STATE])) * ku
            low = m & np.uint64(0xFFFFFFFF)
    return np.int64(m >> np.uint64(32))


@njit(cache=True)
def _dot(a, b, n, lanes):
    """``np.einsum("ij,ij->i")`` of one row: numpy's contiguous sum-of-products kernel, which
    accumulates ``lanes`` lanes (four vectors a loop, the last vector added first), then adds
    the lanes in pairs, then adds the sum to the zeroed output."""
    acc = np.zeros(8)
    i = 0
    count = n
    step4 = 4 * lanes
    while count >= step4:
        for v in range(3, -1, -1):
            base = i + v * lanes
            for lane in range(lanes):
                acc[lane] = a[base + lane] * b[base + lane] + acc[lane]
        count -= step4
        i += step4
    while count > 0:
        for lane in range(lanes):
            if lane < count:
                acc[lane] = a[i + lane] * b[i + lane] + acc[lane]
            else:
                acc[lane] = 0.0 * 0.0 + acc[lane]
        count -= lanes
        i += lanes
    # horizontal sum: neighbouring lanes added in pairs until one is left
    width = lanes
    while width > 1:
        width //= 2
        for lane in range(width):
            acc[lane] = acc[2 * lane] + acc[2 * lane + 1]
    return 0.0 + acc[0]


# ================================================================== the lean path
@njit(cache=True)
def _first_session_after(F, C, M, after):
    """``Population._lean_first_session_after`` (slots without knots)."""
    k = F[F_LCOUNT]
    if k == 0:
        return math.inf
    offset = after - F[F_SSTART]
    if offset < 0:
        thr = -1.0
    else:
        thr = offset / C[C_SLOT_H]
    j, last = F[F_LJ], F[F_LLAST]
    if (j == 0 or last <= thr) and j < k:
        while True:
            v = 1.0 - _next_double(M[M_ST_DOUBLE], M[M_ST_STATE])
            last = last + (1.0 - last) * -_expm1(M, _log(M, v) / (k - j))
            j += 1
            if not (last <= thr and j < k):
                break
        F[F_LJ], F[F_LLAST] = j, last
    if j > 0 and last > thr:
        return F[F_SSTART] + last * C[C_SLOT_H]
    return math.inf


@njit(cache=True)
def _try_open(F, C, M, TT, FE, pid, cover, topic, t, delay, ev):
    """``Population._lean_try_open``; an open is written to ``ev[8:18]`` (``ev[8] = 1``)."""
    how = math.floor(C[C_WEEK0_H] + t + 1e-9) % 168
    nf = int(C[C_NF])
    match = _dot(TT, FE[cover], nf, int(C[C_LANES]))
    aff = TT[nf + topic]
    f = F[F_LF]
    fat = 0.0 if f == 0.0 else f * _exp2(M, -(t - F[F_LFT]) / C[C_HALF_LIFE])
    quality = C[C_CUT + int(C[C_NCUT]) + cover]
    x = (F[F_OPEN_BASE + how] + C[C_B_TASTE] * match + C[C_B_QUAL] * (quality - 0.5)
         + C[C_B_TOPIC] * aff - C[C_B_FAT] * fat)
    e = _exp(M, -abs(x))
    p = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)
    if delay:
        p = p * _exp(M, -delay / C[C_TAU])
    fnd, state = M[M_RS_DOUBLE], M[M_RS_STATE]
    if not _next_double(fnd, state) < p:
        return
    rel = match + aff
    dwell = _exp(M, F[F_DWELL_MU] + C[C_DWELL_COEF] * rel
                 + F[F_DWELL_SIGMA] * _standard_normal(M[M_RS_U64], fnd, state))
    r = C[C_ENG_COEF] * rel
    probs = np.empty(3)
    for q in range(3):
        y = C[C_LIKE_I + q] + r
        e = _exp(M, -abs(y))
        probs[q] = 1.0 / (1.0 + e) if y >= 0 else e / (1.0 + e)
    like = _next_double(fnd, state) < probs[0]
    share = _next_double(fnd, state) < probs[1]
    comment = _next_double(fnd, state) < probs[2]
    sat = 0
    if _next_double(fnd, state) < C[C_SURVEY]:
        eta = (C[C_SAT_REL] * rel + C[C_SAT_DWELL] * _log(M, dwell / 60.0)
               - C[C_SAT_FAT] * fat)
        latent = eta + _logistic(fnd, state)
        sat = 1
        for c in range(int(C[C_NCUT])):
            if C[C_CUT + c] < latent:
                sat += 1
    ev[8], ev[9], ev[10], ev[11], ev[12], ev[13] = 1.0, pid, cover, topic, t, delay
    ev[14], ev[15], ev[16], ev[17], ev[18] = dwell, like, share, comment, sat
    if t > F[F_LLO]:
        F[F_LLO] = t


@njit(cache=True)
def _see_pending(F, C, M, TT, FE, t_seen, ev):
    pid = F[F_LPID]
    F[F_LPID] = -1.0
    _try_open(F, C, M, TT, FE, int(pid), int(F[F_LPC]), int(F[F_LPTP]), t_seen,
              t_seen - F[F_LPT], ev)


@njit(cache=True)
def _deliver(F, C, IT, M, TT, FE, code, t, ev):
    """``Population._lean_deliver``: the push of the slot starting at ``t``."""
    if code == -2:
        c = _integer(M, int(C[C_NCOV]))
    else:
        nstyle, maxk = IT[I_NSTYLE], IT[I_MAXK]
        c = IT[I_TABLES + code * maxk + _integer(M, IT[I_TABLES + nstyle * maxk + code])]
    tp = IT[I_TABLES + IT[I_NSTYLE] * (IT[I_MAXK] + 1) + c]
    pid = F[F_NEXTPID]
    F[F_NEXTPID] = pid + 1
    if F[F_LOUT]:
        ev[6] = pid
        return
    if F[F_LPID] >= 0:
        t_seen = _first_session_after(F, C, M, F[F_LPT])
        if t_seen < t:
            _see_pending(F, C, M, TT, FE, t_seen, ev)
        else:
            ev[7] = F[F_LPID]
            F[F_LPID] = -1.0
    ev[2], ev[3], ev[4], ev[5] = 1.0, pid, c, tp
    F[F_LLP] = t
    f = F[F_LF]
    fat = (0.0 if f == 0.0 else f * _exp2(M, -(t - F[F_LFT]) / C[C_HALF_LIFE])) + C[C_INCR]
    F[F_LF], F[F_LFT] = fat, t
    fnd, state = M[M_RS_DOUBLE], M[M_RS_STATE]
    if _next_double(fnd, state) < -_expm1(M, -(C[C_BASE_HAZ] + C[C_HAZ_COEF] * fat)):
        ev[19], ev[20], ev[21] = 1.0, pid, t
        F[F_LOUT] = 1.0
        return
    how = math.floor(C[C_WEEK0_H] + t + 1e-9) % 168
    p_seen = F[F_SEEN + how]
    if math.isnan(p_seen):
        rate = F[F_ACT + how] * F[F_LMULT]
        p_seen = F[F_SEEN + how] = -_expm1(M, -rate * C[C_GLANCE])
    if _next_double(fnd, state) < p_seen:
        _try_open(F, C, M, TT, FE, int(pid), c, tp, t, 0.0, ev)
    else:
        F[F_LPID], F[F_LPT], F[F_LPC], F[F_LPTP] = pid, t, c, tp


@njit(cache=True)
def _ring_push(F, W, which, rec_start, pushes, opens, dwell, sessions, rid):
    h, n = (F_H24, F_N24) if which == 0 else (F_H7, F_N7)
    cap = W.shape[1]
    i = (int(F[h]) + int(F[n])) % cap
    W[which, i, 0], W[which, i, 1], W[which, i, 2] = rec_start, pushes, opens
    W[which, i, 3], W[which, i, 4], W[which, i, 5] = dwell, sessions, rid
    F[n] += 1


@njit(cache=True)
def _expire(F, W, now):
    """``Population._lean_expire``."""
    cap = W.shape[1]
    cut = now - 24.0 - 1e-9
    while F[F_N24] and W[0, int(F[F_H24]), 0] < cut:
        i = int(F[F_H24])
        pushes, opens, dwell, sessions = W[0, i, 1], W[0, i, 2], W[0, i, 3], W[0, i, 4]
        F[F_H24] = (i + 1) % cap
        F[F_N24] -= 1
        if pushes:
            F[F_P24] -= pushes
        if opens:
            F[F_O24] -= opens
            F[F_D24] -= dwell
            if F[F_O24] == 0:
                F[F_D24] = 0.0
        if sessions:
            F[F_S24] -= sessions
    cut = now - 168.0 - 1e-9
    while F[F_N7] and W[1, int(F[F_H7]), 0] < cut:
        i = int(F[F_H7])
        pushes, opens, dwell = W[1, i, 1], W[1, i, 2], W[1, i, 3]
        F[F_H7] = (i + 1) % cap
        F[F_N7] -= 1
        if pushes:
            F[F_P7] -= pushes
        if opens:
            F[F_O7] -= opens
            F[F_D7] -= dwell
            if F[F_O7] == 0:
                F[F_D7] = 0.0


@njit(cache=True)
def _drift(F, C, TT, NZ):
    """``Population._lean_drift``: one day of drift of taste and topic affinity."""
    if not C[C_HAS_DRIFT]:
        return
    pull = C[C_PULL]
    for i in range(TT.size):
        TT[i] = TT[i] + (F[F_TTM + i] - TT[i]) * pull
    if C[C_HAS_NOISE]:
        k = int(F[F_NPOS])
        for i in range(TT.size):
            TT[i] = TT[i] + NZ[k, i]
        F[F_NPOS] = k + 1


@njit(cache=True)
def _next_count(F, SB):
    k = int(F[F_SPOS])
    F[F_SPOS] = k + 1
    return SB[k]


@njit(cache=True)
def _summary(R, at, ev, sessions):
    """A summary (USER_SUMMARY_KEYS) of the events ``ev`` at ``R[at:at + 12]``."""
    R[at] = ev[2]
    R[at + 1] = 1.0 if ev[6] >= 0 else 0.0
    if ev[8]:
        R[at + 2], R[at + 3], R[at + 4], R[at + 5] = 1.0, ev[14], ev[15], ev[16]
        R[at + 6], R[at + 7], R[at + 8] = ev[17], 1.0 if ev[18] else 0.0, ev[18]
    else:
        for q in range(2, 9):
            R[at + q] = 0.0
    R[at + 9], R[at + 10], R[at + 11] = ev[19], sessions, ev[4] if ev[2] else -1.0


@njit(cache=True)
def _clear_events(ev):
    for q in range(ev.size):
        ev[q] = 0.0
    ev[6] = ev[7] = -1.0


@njit(cache=True)
def _step(F, C, IT, M, W, SB, NZ, TT, FE, R, B, code):
    """``Population._lean_step(code)``: one slot, a push at its start unless ``code == -1``;
    its events in ``R[O_LAST:]``."""
    ev = R[O_LAST:O_OBS]
    if not F[F_STARTED]:
        F[F_STARTED] = 1.0
        F[F_SSTART] = F[F_NOW]
        F[F_LCOUNT] = _next_count(F, SB)
        F[F_LJ] = F[F_LLAST] = 0.0
    t = F[F_NOW]
    _clear_events(ev)
    if code != -1:
        _deliver(F, C, IT, M, TT, FE, code, t, ev)
    end = t + C[C_SLOT_H]
    F[F_NOW] = end
    count = F[F_LCOUNT]
    if count and F[F_LPID] >= 0:
        t_seen = _first_session_after(F, C, M, F[F_LPT])
        if t_seen != math.inf:
            _see_pending(F, C, M, TT, FE, t_seen, ev)
    pushed, opened = ev[2], ev[8]
    if pushed:
        F[F_P24] += 1
        F[F_P7] += 1
    rid = F[F_RID]
    F[F_RID] = rid + 1
    if opened:
        dwell = ev[14]
        F[F_O24] += 1
        F[F_O7] += 1
        F[F_D24] += dwell
        F[F_D7] += dwell
        _ring_push(F, W, 1, t, pushed, 1.0, dwell, count, rid)
    elif pushed:
        _ring_push(F, W, 1, t, pushed, 0.0, 0.0, count, rid)
    if count:
        F[F_S24] += count
    if count or pushed or opened:
        _ring_push(F, W, 0, t, pushed, opened, ev[14] if opened else 0.0, count, rid)
    _expire(F, W, end)
    ev[0], ev[1], ev[25] = t, end, count
    if B.size:
        _record(B, int(F[F_SN]), count, C[C_SLOT_H])
    sn = F[F_SN] + 1
    F[F_SN] = sn
    if sn % C[C_SPD] == 0:
        _drift(F, C, TT, NZ)
    F[F_SSTART] = end
    F[F_LCOUNT] = _next_count(F, SB)
    F[F_LJ] = F[F_LLAST] = 0.0


@njit(cache=True)
def _advance(F, C, M, W, SB, NZ, TT, FE, R, B, n):
    """``Population._lean_advance(n)``: ``n`` slots without pushes; the session count of each
    in ``R[O_SESS:]``, the span's events in ``R[O_LAST:]``."""
    ev = R[O_LAST:O_OBS]
    if not F[F_STARTED]:
        F[F_STARTED] = 1.0
        F[F_SSTART] = F[F_NOW]
        F[F_LCOUNT] = _next_count(F, SB)
        F[F_LJ] = F[F_LLAST] = 0.0
    sn = int(F[F_SN])
    spd = int(C[C_SPD])
    s = C[C_SLOT_H]
    times = np.empty(n + 1)           # start times of slots sn .. sn + n
    times[0] = F[F_NOW]
    for k in range(n):
        times[k + 1] = times[k] + s
    counts = R[O_SESS:O_SESS + n]
    counts[0] = F[F_LCOUNT]
    for k in range(1, n):
        counts[k] = _next_count(F, SB)
    next_count = _next_count(F, SB)
    day = (sn // spd + 1) * spd
    _clear_events(ev)
    done = 0
    if F[F_LPID] >= 0:
        i = -1
        for k in range(n):
            if counts[k]:
                i = k
                break
        if i >= 0:
            count = counts[i]
            while day <= sn + i:
                _drift(F, C, TT, NZ)
                day += spd
            now = times[i]
            done = i + 1
            F[F_NOW], F[F_SN] = times[i + 1], sn + i
            F[F_SSTART] = now
            F[F_LCOUNT], F[F_LJ], F[F_LLAST] = count, 0.0, 0.0
            rid = F[F_RID]
            F[F_RID] = rid + 1
            opens, dwell = 0.0, 0.0
            t_seen = _first_session_after(F, C, M, F[F_LPT])
            if t_seen != math.inf:
                _see_pending(F, C, M, TT, FE, t_seen, ev)
                if ev[8]:
                    _expire(F, W, now)
                    dwell = ev[14]
                    F[F_O24] += 1
                    F[F_O7] += 1
                    F[F_D24] += dwell
                    F[F_D7] += dwell
                    opens = 1.0
                    _ring_push(F, W, 1, now, 0.0, 1.0, dwell, count, rid)
            _ring_push(F, W, 0, now, 0.0, opens, dwell, count, rid)
    for k in range(done, n):
        if counts[k]:
            rid = F[F_RID]
            F[F_RID] = rid + 1
            _ring_push(F, W, 0, times[k], 0.0, 0.0, 0.0, counts[k], rid)
    last = sn + n
    while day <= last:
        _drift(F, C, TT, NZ)
        day += spd
    end = times[n]
    F[F_NOW] = F[F_SSTART] = end
    F[F_SN] = last
    F[F_LCOUNT], F[F_LJ], F[F_LLAST] = next_count, 0.0, 0.0
    total = 0.0
    for k in range(n):
        total += counts[k]
    if B.size:
        _record_span(B, sn, counts, C[C_SLOT_H])
    if total:
        F[F_S24] += total
    _expire(F, W, end)
    ev[0], ev[1], ev[25] = times[0], end, total
    ev[2] = 0.0
    ev[6] = ev[7] = -1.0
    ev[19] = 0.0


@njit(cache=True)
def _hour_of_slot(B, sn):
    """The hour of day at the start of slot ``sn`` (as the environments count it)."""
    return (int(B[B_MINUTE0]) + sn * int(B[B_SLOT_MIN])) // 60 % 24


@njit(cache=True)
def _record(B, sn, sessions, slot_h):
    """``UserObservation.record`` for slot ``sn``."""
    if sessions:
        B[B_COUNTS + _hour_of_slot(B, sn)] += sessions
        B[B_TOTAL] += sessions
        B[B_STALE] = 1.0
    B[B_ELAPSED] += slot_h


@njit(cache=True)
def _record_span(B, sn, counts, slot_h):
    """``UserObservation.record_slots`` for slots ``sn, sn + 1, ...``."""
    for k in range(counts.size):
        c = counts[k]
        if c:
            B[B_COUNTS + _hour_of_slot(B, sn + k)] += c
            B[B_TOTAL] += c
            B[B_STALE] = 1.0
    for _ in range(counts.size):
        B[B_ELAPSED] += slot_h


@njit(cache=True)
def _observe(F, C, M, R, B, OBS, CK):
    """``UserObservation.build(Population.observe_user())`` into ``OBS`` (float32); the
    clock features come from the table ``CK`` (by clock key), or, when its row is not made
    yet, the key is left in ``R[O_CLOCK]`` for the caller to fill them in."""
    now = F[F_NOW]
    mow = int(np.rint((C[C_WEEK0_H] + now) * 60)) % 10080
    hour, minute, weekday = (mow // 60) % 24, mow % 60, mow // 1440
    key = (hour * 60 + minute) * 7 + weekday
    if math.isnan(CK[key, 0]):
        R[O_CLOCK] = key
    else:
        R[O_CLOCK] = -1.0
        for q in range(5):
            OBS[q] = CK[key, q]
    tot = B[B_TOTAL]
    if B[B_STALE]:
        for h in range(24):
            B[B_SHARE + h] = B[B_COUNTS + h] / tot
        B[B_STALE] = 0.0
    cap = B[B_CAP]
    lp = _log1p(M, now - F[F_LLP])
    lo = _log1p(M, now - F[F_LLO])
    OBS[5] = np.float32(cap if cap < lp else lp)
    OBS[6] = np.float32(cap if cap < lo else lo)
    OBS[7], OBS[8], OBS[9] = np.float32(F[F_P24]), np.float32(F[F_O24]), np.float32(F[F_D24] / 60.0)
    OBS[10], OBS[11], OBS[12] = np.float32(F[F_P7]), np.float32(F[F_O7]), np.float32(F[F_D7] / 60.0)
    OBS[13], OBS[14] = np.float32(F[F_S24]), np.float32(B[B_SHARE + hour])
    el = B[B_ELAPSED]
    OBS[15] = np.float32(tot * 24.0 / el if el > 0 else 0.0)
    for h in range(24):
        OBS[16 + h] = np.float32(B[B_SHARE + h])


@njit(cache=True)
def _report(F, R):
    R[O_OBS], R[O_OBS + 1], R[O_OBS + 2] = F[F_NOW], F[F_LLP], F[F_LLO]
    R[O_OBS + 3], R[O_OBS + 4], R[O_OBS + 5], R[O_OBS + 6] = F[F_P24], F[F_P7], F[F_O24], F[F_O7]
    R[O_OBS + 7], R[O_OBS + 8], R[O_OBS + 9] = F[F_D24], F[F_D7], F[F_S24]
    R[O_OBS + 10], R[O_OBS + 11], R[O_OBS + 12] = F[F_LOUT], F[F_SN], F[F_STARTED]
    R[O_OBS + 13] = F[F_NEXTPID]


@njit(cache=True)
def run(F, C, IT, M, W, SB, NZ, TT, FE, R, B, OBS, CK, code, n_quiet):
    """One call of the single-user environments: a slot with a push (``code``: a style
    index, ``-2`` a cover from the whole bank, ``-1`` no push; ``-3``: no such slot) then,
    unless the user opted out in it, ``n_quiet`` slots without pushes. Returns 0, or -1 (and
    changes nothing) when the buffered session counts or drift draws may not last: the caller
    draws more (``Population._k_refill``) and calls again. The summaries are written to
    ``R[O_PUSH:]`` and ``R[O_SPAN:]``, the last slot's (or span's) events to ``R[O_LAST:]``,
    the observation's numbers to ``R[O_OBS:]``, and the two summaries summed (as
    ``covercast/CoverStyle-v0`` sums them) to ``R[O_COMB:]``. With a non-empty ``B`` (the
    observation's state, ``B_*``) the slots' sessions are recorded in it and the observation
    after the call is written to ``OBS`` (see :func:`_observe`)."""
    n_slots = (0 if code == -3 else 1) + n_quiet
    need = n_slots + (0 if F[F_STARTED] else 1)
    if F[F_SLEN] - F[F_SPOS] < need:
        return -1
    if C[C_HAS_NOISE] and F[F_NLEN] - F[F_NPOS] < n_slots // C[C_SPD] + 1:
        return -1
    R[O_STATUS] = 0.0
    if code != -3:
        _step(F, C, IT, M, W, SB, NZ, TT, FE, R, B, code)
        _summary(R, O_PUSH, R[O_LAST:O_OBS], R[O_LAST + 25])
        if F[F_LOUT] and R[O_LAST + 19]:
            n_quiet = 0
    if n_quiet > 0:
        _advance(F, C, M, W, SB, NZ, TT, FE, R, B, n_quiet)
        _summary(R, O_SPAN, R[O_LAST:O_OBS], R[O_LAST + 25])
        if code != -3:
            for q in range(12):
                R[O_COMB + q] = R[O_PUSH + q]
            for q in range(2, 9):
                R[O_COMB + q] = R[O_PUSH + q] + R[O_SPAN + q]
            R[O_COMB + 9] = R[O_SPAN + 9]
            R[O_COMB + 10] = R[O_PUSH + 10] + R[O_SPAN + 10]
    elif code != -3:
        for q in range(12):
            R[O_COMB + q] = R[O_PUSH + q]
    R[O_STATUS] = n_quiet
    _report(F, R)
    if B.size:
        _observe(F, C, M, R, B, OBS, CK)
    return 0


# ================================================================== stream seeding
_M32 = np.uint64(0xFFFFFFFF)


@njit(cache=True)
def _hashmix(value, hc):
    value = value ^ hc[0]
    hc[0] = (hc[0] * np.uint64(0x931e8875)) & _M32
    value = (value * hc[0]) & _M32
    return value ^ (value >> np.uint64(16))


@njit(cache=True)
def _mix(x, y):
    r = ((np.uint64(0xca01f9dd) * x) - (np.uint64(0x4973f715) * y)) & _M32
    return r ^ (r >> np.uint64(16))


@njit(cache=True)
def seed_state(entropy, pool_size):
    """``SeedSequence.generate_state(4, np.uint64)`` of the seed sequence whose assembled
    entropy (run entropy, padded, then the spawn key, as 32-bit words) is ``entropy``:
    numpy's ``mix_entropy`` and ``generate_state``, on 64-bit integers masked to 32 bits."""
    hc = np.full(1, np.uint64(0x43b0d7e5))
    mixer = np.zeros(pool_size, dtype=np.uint64)
    n = entropy.size
    for i in range(pool_size):
        mixer[i] = _hashmix(np.uint64(entropy[i]) if i < n else np.uint64(0), hc)
    for i_src in range(pool_size):
        for i_dst in range(pool_size):
            if i_src != i_dst:
                mixer[i_dst] = _mix(mixer[i_dst], _hashmix(mixer[i_src], hc))
    for i_src in range(pool_size, n):
        for i_dst in range(pool_size):
            mixer[i_dst] = _mix(mixer[i_dst], _hashmix(np.uint64(entropy[i_src]), hc))
    out = np.zeros(4, dtype=np.uint64)
    h = np.uint64(0x8b51f9dd)
    for i in range(8):
        data = mixer[i % pool_size] ^ h
        h = (h * np.uint64(0x58f38ded)) & _M32
        data = (data * h) & _M32
        data = data ^ (data >> np.uint64(16))
        if i % 2:
            out[i // 2] |= data << np.uint64(32)
        else:
            out[i // 2] = data
    return out


# ================================================================== the self-check
def self_check() -> bool | str:
    """Compile (or load from the cache) and compare the pieces that must match numpy bit for
    bit: the ufunc loops, the distributions and the einsum lanes. ``True`` or the reason."""
    from covercast.simulators import _kernel as K
    M = K.math_addresses()
    rng = np.random.default_rng(12345)
    xs = np.concatenate([rng.uniform(-40, 5, 400), rng.uniform(1e-9, 3, 200)])
    got = _check_math(M, xs)
    ref = np.stack([np.exp(xs), np.exp2(xs), np.expm1(xs), np.log(np.abs(xs) + 1e-300),
                    np.log1p(np.abs(xs) * 200.0)])
    if not np.array_equal(got, ref):
        return "numpy's math loops called from numba differ from numpy"
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    a = K.bitgen_addresses(g1)
    got = _check_random(a[0], a[1], a[2], a[3], 3000)
    ref = np.array([[g2.random(), g2.standard_normal(), g2.logistic(), g2.integers(0, 7),
                     g2.integers(0, 3)] for _ in range(3000)])
    if not np.array_equal(got, ref) or g1.bit_generator.state != g2.bit_generator.state:
        return "the kernel's random draws differ from numpy's"
    if not _check_seeding(rng):
        return "the kernel's stream seeding differs from numpy's SeedSequence"
    from numpy._core._multiarray_umath import c_einsum
    for lanes in (2, 4, 8):
        if _check_dot(c_einsum, lanes, rng):
            return _set_lanes(lanes)
    return "no lane count reproduces numpy's einsum"


_LANES = [0]


def _check_seeding(rng: np.random.Generator) -> bool:
    from covercast.simulators import _kernel as K
    for trial in range(40):
        entropy = int(rng.integers(0, 2**63 - 1)) >> int(rng.integers(0, 60))
        if trial % 3 == 0:
            entropy = entropy * 2**64 + int(rng.integers(0, 2**63))
        key = tuple(int(k) for k in rng.integers(0, 2**40, size=trial % 3))
        child = int(rng.integers(0, 9))
        pool = 4 if trial % 5 else 8
        ss = np.random.SeedSequence(entropy, spawn_key=key + (child,), pool_size=pool)
        g = np.random.Generator(np.random.PCG64(1))
        K.seed_generator(g, seed_state(K.assembled_entropy(entropy, key + (child,), pool), pool))
        if g.bit_generator.state != np.random.default_rng(ss).bit_generator.state:
            return False
    return True


def _set_lanes(lanes: int) -> bool:
    _LANES[0] = lanes
    return True


def lanes() -> int:
    """The einsum lane count found by :func:`self_check`."""
    return _LANES[0]


def _check_dot(c_einsum, lanes: int, rng: np.random.Generator) -> bool:
    for n in range(1, 40):
        a = rng.standard_normal((25, n))
        b = rng.standard_normal((25, n))
        got = _check_dots(a, b, lanes)
        ref = np.array([float(c_einsum("ij,ij->i", a[r:r + 1], b[r:r + 1])[0])
                        for r in range(25)])
        if not np.array_equal(got, ref):
            return False
    return True


@njit(cache=True)
def _check_dots(a, b, lanes):
    out = np.empty(a.shape[0])
    for r in range(a.shape[0]):
        out[r] = _dot(a[r], b[r], a.shape[1], lanes)
    return out


@njit(cache=True)
def _check_math(M, xs):
    out = np.empty((5, xs.size))
    for i in range(xs.size):
        out[0, i] = _exp(M, xs[i])
        out[1, i] = _exp2(M, xs[i])
        out[2, i] = _expm1(M, xs[i])
        out[3, i] = _log(M, abs(xs[i]) + 1e-300)
        out[4, i] = _log1p(M, abs(xs[i]) * 200.0)
    return out


@njit(cache=True)
def _check_random(state, fn64, fn32, fnd, n):
    M = np.zeros(M_SIZE, dtype=np.int64)
    M[M_AC_STATE], M[M_AC_U32] = state, fn32
    out = np.empty((n, 5))
    for i in range(n):
        out[i, 0] = _next_double(fnd, state)
        out[i, 1] = _standard_normal(fn64, fnd, state)
        out[i, 2] = _logistic(fnd, state)
        out[i, 3] = _integer(M, 7)
        out[i, 4] = _integer(M, 3)
    return out


__all__ = ["run", "self_check", "lanes", "seed_state"]
