"""What one link costs: head h continuing open visit v, as minus the log likelihood ratio
"same person" vs "someone else" (``visits.linker`` decides with these; docs/visits.md has the
table). Every pair of a decision at once: the looks' cosines in one BLAS product, the rest in one
pass over the pairs compiled with numba (``_pair_costs``; ``compile_kernels`` when a linker is made):

    costs = LinkCosts(settings)                             # VisitSettings
    costs.fill(gallery, heads, H, rows, out, new, same_rows)  # out[i, j]: head i vs gallery row rows[j]

Shapes: ``H`` float64[n, HEAD_COLS], the heads in ``visits.gallery.Gallery.feat``'s columns
(where a head began, where a visit's row has where it was last seen), then ``STREET`` (1: the
head began beyond a door line), then what ``waits`` reads (``LAST_T``: when last seen, ``FINAL``,
``END_X``, ``END_Y``: where a final head ended, else where it began); ``rows`` int[m] gallery
rows; ``out`` float64[n, >= m] (a decision's cost matrix, its new-visit columns after the first
m), its first m columns written; ``new`` float64[n] each head's new-visit cost; ``same_rows[i]``
the gallery row holding the visit head i's camera track id was last in (None: none).

The terms: appearance (cosine of h's mean embedding and v's, Gaussian models from
``VisitSettings.appearance``); floor distance from where v was last seen (or where its last
heading leads, up to ``PREDICT_S``) to where h began (half-normal, sigma = position slack +
``WALK_MPS`` x gap, against uniform over ``REACH_M``); heading (v's last direction vs h's first,
von Mises fading with the gap, against uniform); the time gap (exponential, ``GAP_SCALE_S``,
against uniform over ``timeout_s``); a camera track id kept across a gap (``SAME_TRACK_BONUS``).
A pair is impossible (inf) when the walk would need more than ``max_speed_mps``, when h came
in from the street and v did not just go out through a door, or when h began more than
``overlap_s`` before v's last sighting unless both tracks walked together over the overlap:
on two cameras within the slack (views that overlap), on one camera within ``SAME_CAMERA_M``
with looks that do not say "someone else" (its tracker following one person twice). Pairs
that cannot beat the head's own new visit whatever the floor says are left inf before the
floor terms are computed (exact: such a pair is in no optimal assignment).
May import: numpy, scipy.special, core.jit, analytics.config, analytics.tracklets, visits.gallery.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import i0e

from analytics.config import VisitSettings
from analytics.tracklets import Tracklet
from core.jit import jit
from visits import gallery as G

APPEARANCE_CLIP = 12.0  # one embedding comparison moves the log odds at most this much
WALK_MPS = 1.2  # typical walking speed: the spread of where someone unseen for a while can be
REACH_M = 15.0  # "someone else": a start point anywhere within this of the last sighting
GAP_SCALE_S = 10.0  # typical time unseen between two cameras
PREDICT_S = 1.5  # a last heading is followed this long into a gap
MOVING_MPS = 0.3  # slower is standing: no heading
HEADING_KAPPA = 3.0  # von Mises concentration of the turn between leaving one view and entering the next
HEADING_GAP_S = 5.0  # ... fading with the time unseen (people turn in blind spots)
HEADING_CUT_S = 40.0  # unseen longer, the heading's kappa is under 0.001: not computed
SAME_TRACK_BONUS = 3.0  # a camera track id seen again: the tracker's own association (appearance and motion
# on one view) is evidence, ~20:1, added to the linker's own; in crowds of look-alikes a tracker re-identifies
# the wrong person often enough that it must not overrule what the floor and the other cameras say
SAME_CAMERA_M = 0.75  # one camera's two tracks at once are one person only if their paths are this close (mean)
SAME_CAMERA_LLR = -2.0  # ... and their looks do not say "someone else" by more than this (log odds, ~7:1)
# the heads' columns after the gallery's: 1 where the head began beyond a door line (from the street); when it
# was last seen, 1 if final, where it ended if final (else where it began)
STREET, LAST_T, FINAL, END_X, END_Y = range(G.NF, G.NF + 5)
HEAD_COLS = G.NF + 5
_HEADING_STEPS = 800  # log i0e(kappa(gap)), kappa = HEADING_KAPPA e^(-gap / HEADING_GAP_S), every 0.05 s of gap
_HEADING_LOG_I0E = np.log(i0e(HEADING_KAPPA * np.exp(-np.linspace(0.0, HEADING_CUT_S, _HEADING_STEPS + 1)
                                                      / HEADING_GAP_S)))
_HEADING_SLOPE = np.append(np.diff(_HEADING_LOG_I0E), 0.0)


class LinkCosts:
    """The link cost model of one linker's settings (its constants worked out once)."""

    def __init__(self, settings: VisitSettings) -> None:
        compile_kernels()
        self.s = settings
        self._llr_poly = _llr_polynomial(settings.appearance)
        self._llr32 = np.array([*self._llr_poly, APPEARANCE_CLIP], np.float32)  # the cosines are float32
        # the least the floor terms of a link cost can add: the person exactly where expected, as
        # sure as two views seeing them at once (sigma slack / 3), walking on in the same direction
        self._space_floor = min(0.0, math.log(settings.position_slack_m / 3.0)
                                - math.log(2.0 / math.sqrt(2.0 * math.pi) * REACH_M) + math.log(i0e(HEADING_KAPPA)))
        s = settings
        self._params = np.array([s.overlap_s, s.timeout_s, s.max_speed_mps, s.position_slack_m, self._space_floor,
                                 math.log(s.timeout_s / GAP_SCALE_S), math.log(2.0 / math.sqrt(2.0 * math.pi) * REACH_M),
                                 SAME_CAMERA_M, SAME_CAMERA_LLR])  # ``_pair_costs``'s p

    def fill(self, gallery: G.Gallery, heads: list[Tracklet], H: np.ndarray, rows: np.ndarray, out: np.ndarray,
             new: np.ndarray, same_rows: list[int | None]) -> None:
        """out[i, j] (j < m) = -log LR(head i continues the visit in the gallery's row rows[j]), inf where
        impossible or where it cannot beat head i's own new visit (``new[i]``): such a pair is in
        no optimal assignment (swapping it for the new visit is cheaper), so it is left inf.
        (A decision is a few dozen heads against up to hundreds of visits: the looks' cosines are one
        BLAS product, every other term one compiled pass over the pairs, ``_pair_costs``; as ~100
        whole-matrix NumPy operations, each costing more to call than to compute, a decision's costs
        took ~2x as long at 200 people.)"""
        gal = gallery
        n, m = len(heads), len(rows)
        V = gal.feat[rows]
        cos = _NO_COSINES  # no looks to compare: no appearance term
        if gal.unit is not None and H[:, G.REL].any() and V[:, G.REL].any():
            dim = gal.unit.shape[1]
            a = np.array([h.embedding if h.embedding is not None else np.zeros(dim, np.float32) for h in heads],
                         np.float32)
            # float32 (plenty for a log odds clipped at 12) through BLAS, on one thread in the clients
            # (core/blas.py; the tracker's appearance product is the same kind): ~2x einsum's speed
            cos = a @ gal.unit[rows].T
        # the camera's tracker kept the track id across a gap the analytics split it at: its column
        same = np.full(n, -1, np.intp)
        for i, r in enumerate(same_rows):
            if r is not None:
                j = int(np.searchsorted(rows, r))
                if j < m and rows[j] == r:
                    same[i] = j
        p = self._params
        new = np.ascontiguousarray(new, np.float64)
        base, keep = np.empty((n, m)), np.zeros(m, bool)  # the first pass's, for a second
        if _pair_costs(H, V, cos, new, same, p, self._llr32, _NO_DISTANCES, out, base, keep):
            # pairs where both views saw the person at once: their paths must agree over the overlap
            # (a few per decision at most: the distances from the tracklets' paths, then a pass with them)
            dist = np.full((n, m), np.nan)
            for i, j in zip(*np.nonzero(np.isnan(out[:, :m]))):
                v = gal.visit[rows[j]]
                h = heads[i]
                dist[i, j] = _paths_distance(h.path, v.last_path, float(max(h.start, v.last[G.START])),
                                             float(min(h.end, v.last[G.END])))
            _pair_costs(H, V, cos, new, same, p, self._llr32, dist, out, base, keep)


_NO_COSINES = np.zeros((0, 0), np.float32)
_NO_DISTANCES = np.zeros((0, 0))


def _pair_costs(H, V, cos, new, same, p, llr32, dist, out, base, keep) -> bool:
    """``LinkCosts.fill``'s pass over the pairs (compiled below): the terms in the module docstring,
    one pair at a time. ``cos`` float32[n, m] the looks' cosines ([0, 0]: no appearance term);
    ``same`` int[n] the column of head i's camera track's visit (-1: none); ``p`` float64[9]
    (``LinkCosts._params``); ``llr32`` float32[4] the appearance polynomial and clip (float32, as
    the cosines); ``dist`` float64[n, m] the path distances of pairs seen at once ([0, 0]: none
    known yet: the first pass); ``out`` float64[n, >= m], columns < m written; ``base`` float64[n, m] and
    ``keep`` bool[m]: what the first pass worked out (written by it, read by the one with ``dist``).
    Returns True when a pair seen at once has no distance yet (left NaN in ``out``)."""
    overlap, timeout, max_speed, slack, space_floor, log_time, log_reach, same_cam_m, same_cam_llr = (
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])
    qa, qb, qc, clip = llr32[0], llr32[1], llr32[2], llr32[3]
    n, m = H.shape[0], V.shape[0]
    looks = cos.shape[0] > 0
    known = dist.shape[0] > 0
    missing = False
    # pass 1: time and appearance; a visit no head could prefer to its new visit is left out whole
    # (the floor terms add at least ``space_floor``); the call with the distances has these already
    for i in range(0 if known else n):
        ht, street, hrel = H[i, G.T], H[i, STREET] > 0.0, H[i, G.REL]
        bound = new[i] - space_floor
        sj = same[i]
        for j in range(m):
            gap = ht - V[j, G.T]
            g = max(gap, 0.0)
            c = g * (1.0 / GAP_SCALE_S)
            c -= log_time
            if looks:
                x = cos[i, j]
                llr = x * qa
                llr += qb
                llr *= x
                llr += qc
                llr = min(max(llr, -clip), clip)
                c -= llr * (hrel * V[j, G.REL])
            base[i, j] = c
            ok = gap <= timeout and not (street and V[j, G.LEFT] == 0.0)
            if (ok and c < bound) or (j == sj and gap >= 0.0):
                keep[j] = True
    moving = False
    for i in range(n):
        if H[i, G.SPEED] > MOVING_MPS:
            moving = True
    for j in range(m):
        if not keep[j]:
            if not known:
                for i in range(n):
                    out[i, j] = np.inf
            continue
        vt, vx, vy, vvx, vvy, von = V[j, G.T], V[j, G.X], V[j, G.Y], V[j, G.VX], V[j, G.VY], V[j, G.ON] > 0
        # the heading term for visits seen recently enough that it still tells something (past
        # HEADING_CUT_S by every head its term is under 0.002 whatever the angle: left out)
        near = False
        if V[j, G.SPEED] > MOVING_MPS:
            for i in range(n):
                if max(H[i, G.T] - vt, 0.0) < HEADING_CUT_S:
                    near = True
        for i in range(n):
            if known and not np.isnan(out[i, j]):  # done in the pass before, which lacked only dist
                continue
            gap = H[i, G.T] - vt
            g = max(gap, 0.0)
            c = base[i, j]
            # h began before v's last sighting by more than overlap_s: possible only where both tracks
            # saw the person at once, at one place (below)
            late = gap >= -overlap
            # someone who came in from the street (began beyond a door line) starts a visit: the only one
            # they may continue is one that just went out through a door (an exit and return within
            # door_close_s, or a track broken at the door); a customer coming back later is a new visit
            ok = gap <= timeout and not (H[i, STREET] > 0.0 and V[j, G.LEFT] == 0.0)
            if von and H[i, G.ON] > 0:
                # space-time (squared distances: every test and term needs only those)
                dx = H[i, G.X] - vx
                dy = H[i, G.Y] - vy
                d2 = dx * dx + dy * dy
                # h began before v's last track ended: views that overlap (or a tracker handing a person
                # over to a new track). Then both saw the person at once: the two paths must agree over
                # the overlap (one camera cannot see one person twice for longer than overlap_s; two
                # people side by side part within seconds); only where h began within reach of where
                # v's track ended, and for pairs that can still matter
                at_once = False
                if gap < 0.0:
                    r = gap * -max_speed + slack
                    at_once = d2 <= r * r and c < new[i] - space_floor and ok
                    twice = H[i, G.CAM] == V[j, G.CAM] and gap < -overlap
                    if at_once and looks and twice:
                        # one camera seeing one person twice at once sees one look
                        x = cos[i, j]
                        llr = x * qa
                        llr += qb
                        llr *= x
                        llr += qc
                        llr = min(max(llr, -clip), clip)
                        if llr < same_cam_llr and H[i, G.REL] * V[j, G.REL] > 0.0:
                            at_once = False
                    if at_once:
                        if not known or np.isnan(dist[i, j]):
                            missing = True
                            out[i, j] = np.nan
                            continue
                        dd = dist[i, j]
                        # one camera's two tracks on one person (its tracker following them twice for a
                        # while): at one spot, closer than two people side by side (0.8 m in a queue)
                        late = dd <= (same_cam_m if twice else slack)
                        d2 = dd * dd
                reach = g * max_speed + 2.0 * slack
                ok = ok and d2 <= reach * reach
                # where v's last track was heading: someone walking on is near where that leads after a
                # short gap, and walks on in about the same direction (two people crossing at a camera
                # edge, one leaving as the other arrives, head opposite ways)
                ahead = min(g, PREDICT_S)
                ex = dx - vvx * ahead
                ey = dy - vvy * ahead
                e2 = ex * ex + ey * ey
                # seen at once by two views, one person is at one place: tighter than any walk
                if at_once:
                    sig = slack / 3.0
                else:
                    sig = g * WALK_MPS + slack
                    d2 = min(d2, e2)
                # -(log half-normal(d; sig) - log uniform over REACH_M)
                st = math.log(sig) - log_reach + d2 / (sig * sig) * 0.5
                if moving and near and H[i, G.SPEED] > MOVING_MPS:
                    # von Mises against uniform: kappa cos - log I0(kappa), I0 = i0e * e^kappa, with kappa
                    # fading with the gap: its log i0e read from a table of the gap
                    turn = H[i, G.DIR_X] * V[j, G.DIR_X] + H[i, G.DIR_Y] * V[j, G.DIR_Y] - 1.0
                    x = min(g * (_HEADING_STEPS / HEADING_CUT_S), float(_HEADING_STEPS))
                    k = int(x)
                    st -= math.exp(g * (-1.0 / HEADING_GAP_S)) * HEADING_KAPPA * turn - (
                        (x - k) * _HEADING_SLOPE[k] + _HEADING_LOG_I0E[k])
                c += st
            if same[i] == j and gap >= 0.0:
                c -= SAME_TRACK_BONUS
            out[i, j] = c if ok and late else np.inf
    return missing


def waits(H, overlap, max_speed, slack2):  # pragma: no cover (compiled)
    """bool[n]: which of a decision's heads (``H``'s rows, by start) could continue the visit of a final
    head decided before it in the same assignment: on its camera it began after that one ended (less
    ``overlap``), on another any time (views that overlap), within walking reach of where it ended
    (``max_speed`` x the gap + ``slack2``, as the link cost's limit; anywhere off the floor). Those
    wait (``visits.linker``); a head that waits is no final that others wait for."""
    n = H.shape[0]
    later = np.zeros(n, np.bool_)
    ends = np.empty(n, np.intp)  # the final heads decided in this assignment
    k = 0
    for i in range(n):
        for q in range(k):
            j = ends[q]
            if H[j, G.CAM] == H[i, G.CAM] and H[i, G.T] < H[j, LAST_T] - overlap:
                continue
            reach = abs(H[i, G.T] - H[j, LAST_T]) * max_speed + slack2
            if not (H[i, G.ON] > 0.0 and H[j, G.ON] > 0.0) or \
                    math.hypot(H[i, G.X] - H[j, END_X], H[i, G.Y] - H[j, END_Y]) <= reach:
                later[i] = True
                break
        if not later[i] and H[i, FINAL] > 0.0:
            ends[k] = i
            k += 1
    return later


waits = jit(waits)
_pair_costs = jit(_pair_costs)
_compiled = False


def compile_kernels() -> None:
    """Compile the kernels for the argument types ``LinkCosts.fill`` passes (or load them from numba's
    cache: ~0.1 s), once per process: a linker does it when it is made, so the first decision of a live
    run does not wait for the compiler (a few seconds, the first time after an install)."""
    global _compiled
    if _compiled:
        return
    H, V, out = np.zeros((1, HEAD_COLS)), np.zeros((1, G.NF)), np.zeros((1, 2))
    p, llr, new, same = np.zeros(9), np.zeros(4, np.float32), np.zeros(1), np.full(1, -1, np.intp)
    base, keep = np.zeros((1, 1)), np.zeros(1, bool)
    _pair_costs(H, V, np.zeros((1, 1), np.float32), new, same, p, llr, np.zeros((1, 1)), out, base, keep)
    _pair_costs(H, V, _NO_COSINES, new, same, p, llr, _NO_DISTANCES, out, base, keep)
    path = np.zeros((2, 3))
    _paths_distance(path, path, 0.0, 1.0)
    waits(H, 1.0, 1.0, 1.0)
    i1, look = np.zeros(1, np.intp), np.zeros((1, 4), np.float32)
    G._add_looks(look.copy(), look.copy(), i1, np.ones(1, bool), i1 + 1, look, np.ones(1, np.float32), i1)
    _compiled = True


def _heading_log_i0e(gap: np.ndarray) -> np.ndarray:
    """log i0e(kappa(gap)) from the table, linear between its entries, its last past the end: what
    ``np.interp`` gives, by index arithmetic on the even grid (np.interp's search costs ~3x)."""
    x = gap * (_HEADING_STEPS / HEADING_CUT_S)
    np.minimum(x, float(_HEADING_STEPS), out=x)
    i = x.astype(np.intp)
    x -= i
    x *= _HEADING_SLOPE[i]
    x += _HEADING_LOG_I0E[i]
    return x


@jit
def _paths_distance(pa: np.ndarray, pb: np.ndarray, t0: float, t1: float) -> float:
    """Mean floor distance between two paths (float64[P, 3] rows (t, x, y)) from ``t0`` to ``t1``
    (the time both saw their person), every 0.5 s."""
    # (np.interp's rule: linear between samples, the end samples beyond them)
    k = int(max(t1 - t0, 0.0) / 0.5) + 1  # (not arange(t0, t1 + 1e-9): epoch seconds absorb 1e-9)
    ts = t0 + 0.5 * np.arange(k)
    dx = np.interp(ts, pa[:, 0], pa[:, 1]) - np.interp(ts, pb[:, 0], pb[:, 1])
    dy = np.interp(ts, pa[:, 0], pa[:, 2]) - np.interp(ts, pb[:, 0], pb[:, 2])
    return np.hypot(dx, dy).mean()


def _llr_polynomial(am) -> tuple[float, float, float]:
    """(a, b, c) with a x^2 + b x + c = log N(x; same) - log N(x; different): the appearance log
    likelihood ratio of a cosine x under the two Gaussians of ``VisitSettings.appearance``."""
    p1, p2 = 1.0 / am.same_sd ** 2, 1.0 / am.diff_sd ** 2
    return (0.5 * (p2 - p1), am.same_mean * p1 - am.diff_mean * p2,
            0.5 * (am.diff_mean ** 2 * p2 - am.same_mean ** 2 * p1) + math.log(am.diff_sd / am.same_sd))
