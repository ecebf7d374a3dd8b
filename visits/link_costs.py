"""What one link costs: head h continuing open visit v, as minus the log likelihood ratio
"same person" vs "someone else" (``visits.linker`` decides with these; docs/visits.md has the
table). Every pair of a decision at once, as whole-matrix operations:

    costs = LinkCosts(settings)                             # VisitSettings
    costs.fill(gallery, heads, H, rows, out, new, same_rows)  # out[i, j]: head i vs gallery row rows[j]

Shapes: ``H`` float64[n, NF + 1], the heads in ``visits.gallery.Gallery.feat``'s columns (where
a head began, where a visit's row has where it was last seen), then ``STREET`` (1: the head
began beyond a door line); ``rows`` int[m] gallery rows; ``out`` float64[n, m] written; ``new``
float64[n] each head's new-visit cost; ``same_rows[i]`` the gallery row holding the visit head
i's camera track id was last in (None: none).

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
May import: numpy, scipy.special, analytics.config, analytics.tracklets, visits.gallery.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import i0e

from analytics.config import VisitSettings
from analytics.tracklets import Tracklet
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
STREET = G.NF  # the heads' last column: 1 where the head began beyond a door line (from the street)
_HEADING_STEPS = 800  # log i0e(kappa(gap)), kappa = HEADING_KAPPA e^(-gap / HEADING_GAP_S), every 0.05 s of gap
_HEADING_LOG_I0E = np.log(i0e(HEADING_KAPPA * np.exp(-np.linspace(0.0, HEADING_CUT_S, _HEADING_STEPS + 1)
                                                      / HEADING_GAP_S)))
_HEADING_SLOPE = np.append(np.diff(_HEADING_LOG_I0E), 0.0)


class LinkCosts:
    """The link cost model of one linker's settings (its constants worked out once)."""

    def __init__(self, settings: VisitSettings) -> None:
        self.s = settings
        self._llr_poly = _llr_polynomial(settings.appearance)
        # the least the floor terms of a link cost can add: the person exactly where expected, as
        # sure as two views seeing them at once (sigma slack / 3), walking on in the same direction
        self._space_floor = min(0.0, math.log(settings.position_slack_m / 3.0)
                                - math.log(2.0 / math.sqrt(2.0 * math.pi) * REACH_M) + math.log(i0e(HEADING_KAPPA)))

    def fill(self, gallery: G.Gallery, heads: list[Tracklet], H: np.ndarray, rows: np.ndarray, out: np.ndarray,
             new: np.ndarray, same_rows: list[int | None]) -> None:
        """out[i, j] = -log LR(head i continues the visit in the gallery's row rows[j]), inf where
        impossible or where it cannot beat head i's own new visit (``new[i]``): such a pair is in
        no optimal assignment (swapping it for the new visit is cheaper), so it is left inf.
        (A decision is a few heads against up to hundreds of visits, each term a handful of whole-
        matrix operations: the per-row numbers come precomputed, the heads' in ``H``, the visits'
        in ``Gallery.feat``. At 200 people a decision is ~100 such operations on ~12 x 100 pairs,
        each costing more to call than to compute: in-place, and none that can be left out.)"""
        s, gal = self.s, gallery
        out[:] = np.inf
        V = gal.feat[rows]
        gap = H[:, G.T, None] - V[:, G.T]
        # h began before v's last sighting by more than overlap_s: possible only where both tracks saw
        # the person at once, at one place (judged on the floor below, for the pairs that get there)
        late = gap >= -s.overlap_s
        ok = gap <= s.timeout_s
        # someone who came in from the street (began beyond a door line) starts a visit: the only one
        # they may continue is one that just went out through a door (an exit and return within
        # door_close_s, or a track broken at the door); a customer coming back later is a new visit
        street = H[:, STREET] > 0.0
        if street.any():
            ok &= ~(street[:, None] & (V[:, G.LEFT] == 0.0))
        # the time gap (exponential against uniform over the timeout)
        g = np.maximum(gap, 0.0)
        cost = g * (1.0 / GAP_SCALE_S)
        cost -= math.log(s.timeout_s / GAP_SCALE_S)
        # appearance: every candidate at once (a head or visit without a look weighs 0: no term)
        rel = H[:, G.REL, None] * V[:, G.REL]
        llr = None  # the looks' log odds, unweighted
        if gal.unit is not None and rel.any():
            dim = gal.unit.shape[1]
            a = np.array([h.embedding if h.embedding is not None else np.zeros(dim, np.float32) for h in heads])
            # float32 (plenty for a log odds clipped at 12) through BLAS, on one thread in the clients
            # (core/blas.py; the tracker's appearance product is the same kind): ~2x einsum's speed
            c = a @ gal.unit[rows].T
            qa, qb, qc = self._llr_poly
            llr = c * qa
            llr += qb
            llr *= c
            llr += qc
            np.minimum(llr, APPEARANCE_CLIP, out=llr)
            np.maximum(llr, -APPEARANCE_CLIP, out=llr)
            cost -= llr * rel
        # the camera's tracker kept the track id across a gap the analytics split it at (unseen
        # longer than lost_after_s): the tracker's own association is evidence for "same person"
        same = []
        for i, r in enumerate(same_rows):
            if r is not None:
                j = int(np.searchsorted(rows, r))
                if j < len(rows) and rows[j] == r and gap[i, j] >= 0.0:
                    same.append((i, j))
        # only pairs a head could still prefer to its new visit go on to the floor terms: those add
        # at least ``_space_floor`` (a sure place and heading), so past that nothing changes
        cand = cost < (new - self._space_floor)[:, None]
        cand &= ok
        keep = cand.any(axis=0)
        for _, j in same:
            keep[j] = True
        cols = np.nonzero(keep)[0]
        if not len(cols):
            return
        if len(cols) < len(rows):
            V, gap, g, ok, cost, late, cand = (V[cols], gap[:, cols], g[:, cols], ok[:, cols], cost[:, cols],
                                               late[:, cols], cand[:, cols])
            if llr is not None:
                llr, rel = llr[:, cols], rel[:, cols]
        # space-time, where both ends are on the floor (squared distances: every test and term below
        # needs only those, and np.hypot is ~4x a square and a sum)
        both = None  # None: every pair on the floor
        if not (H[:, G.ON].all() and V[:, G.ON].all()):
            both = (H[:, G.ON, None] > 0) & (V[:, G.ON] > 0)
            if not both.any():
                both = False
        if both is not False:
            dx = H[:, G.X, None] - V[:, G.X]
            dy = H[:, G.Y, None] - V[:, G.Y]
            d2 = dx * dx
            d2 += dy * dy
            # h began before v's last track ended: views that overlap (or a tracker handing a person
            # over to a new track). Then both saw the person at once: the two paths must agree over
            # the overlap, compared every 0.5 s (one camera cannot see one person twice for longer
            # than overlap_s; two people side by side part within seconds)
            # (only where the head began within reach of where v's track ended: cheap to tell)
            concurrent = None
            if gap.min() < 0.0:
                reach = gap * -s.max_speed_mps
                reach += s.position_slack_m
                reach *= reach
                concurrent = d2 <= reach
                concurrent &= cand  # (pairs that can still matter)
                concurrent &= gap < 0.0
                if both is not None:
                    concurrent &= both
                if llr is not None:  # one camera seeing one person twice at once sees one look
                    twice = (H[:, G.CAM, None] == V[:, G.CAM]) & (gap < -s.overlap_s)
                    if twice.any():
                        concurrent &= ~(twice & (llr < SAME_CAMERA_LLR) & (rel > 0.0))
                if concurrent.any():
                    vrows = rows[cols]
                    for i, j in zip(*np.nonzero(concurrent)):
                        dd = _path_distance(heads[i], gal.visit[vrows[j]].last)
                        # one camera's two tracks on one person (its tracker following them twice for a
                        # while): at one spot, closer than two people side by side (0.8 m in a queue)
                        same_cam = H[i, G.CAM] == V[j, G.CAM] and gap[i, j] < -s.overlap_s
                        late[i, j] = dd <= (SAME_CAMERA_M if same_cam else s.position_slack_m)
                        d2[i, j] = dd * dd
                else:
                    concurrent = None
            reach = g * s.max_speed_mps
            reach += 2.0 * s.position_slack_m
            reach *= reach
            if both is None:
                ok &= d2 <= reach
            else:
                ok &= (d2 <= reach) | ~both
            # where v's last track was heading: someone walking on is near where that leads after
            # a short gap, and walks on in about the same direction (two people crossing at a
            # camera edge, one leaving as the other arrives, head opposite ways)
            ahead = np.minimum(g, PREDICT_S)
            dx -= V[:, G.VX] * ahead
            dy -= V[:, G.VY] * ahead
            dx *= dx
            dy *= dy
            dx += dy
            # seen at once by two views, one person is at one place: tighter than any walk (people
            # queueing side by side are 0.8 m apart)
            sig = g * WALK_MPS
            sig += s.position_slack_m
            if concurrent is None:
                np.minimum(d2, dx, out=d2)
            else:
                d2 = np.where(concurrent, d2, np.minimum(d2, dx))
                sig[concurrent] = s.position_slack_m / 3.0
            # -(log half-normal(d; sig) - log uniform over REACH_M)
            st = np.log(sig)
            st -= math.log(2.0 / math.sqrt(2.0 * math.pi) * REACH_M)
            sig *= sig
            d2 /= sig
            d2 *= 0.5
            st += d2
            # heading, for the visits seen recently enough that it still tells something (past
            # HEADING_CUT_S its term is under 0.002 whatever the angle: left out)
            h_moving = H[:, G.SPEED] > MOVING_MPS
            if h_moving.any():
                near = (g.min(axis=0) < HEADING_CUT_S) & (V[:, G.SPEED] > MOVING_MPS)
                every = near.all()
                near = slice(None) if every else np.nonzero(near)[0]
                if every or len(near):
                    cos = H[:, G.DIR_X, None] * V[near, G.DIR_X]
                    cos += H[:, G.DIR_Y, None] * V[near, G.DIR_Y]
                    cos -= 1.0
                    gn = g[:, near]
                    # von Mises against uniform: kappa cos - log I0(kappa), I0 = i0e * e^kappa, with
                    # kappa fading with the gap: its log i0e read from a table of the gap
                    term = gn * (-1.0 / HEADING_GAP_S)
                    np.exp(term, out=term)
                    term *= HEADING_KAPPA
                    term *= cos
                    term -= _heading_log_i0e(gn)
                    if not h_moving.all():
                        term *= h_moving[:, None]  # a head standing: no term
                    st[:, near] -= term
            if both is None:
                cost += st
            else:
                cost += np.where(both, st, 0.0)
        for i, j in same:
            k = int(np.searchsorted(cols, j))
            cost[i, k] -= SAME_TRACK_BONUS
        ok &= late
        out[:, cols] = np.where(ok, cost, np.inf)


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


def _path_distance(a: Tracklet, b: Tracklet) -> float:
    """Mean floor distance between two tracklets over the time both saw their person (every 0.5 s)."""
    t0, t1 = max(a.start, b.start), min(a.end, b.end)
    ts = t0 + 0.5 * np.arange(int(max(t1 - t0, 0.0) / 0.5) + 1)  # (not arange(t0, t1 + 1e-9): epoch seconds absorb 1e-9)
    pa, pb = a.path, b.path
    dx = np.interp(ts, pa[:, 0], pa[:, 1]) - np.interp(ts, pb[:, 0], pb[:, 1])
    dy = np.interp(ts, pa[:, 0], pa[:, 2]) - np.interp(ts, pb[:, 0], pb[:, 2])
    return float(np.hypot(dx, dy).mean())


def _llr_polynomial(am) -> tuple[float, float, float]:
    """(a, b, c) with a x^2 + b x + c = log N(x; same) - log N(x; different): the appearance log
    likelihood ratio of a cosine x under the two Gaussians of ``VisitSettings.appearance``."""
    p1, p2 = 1.0 / am.same_sd ** 2, 1.0 / am.diff_sd ** 2
    return (0.5 * (p2 - p1), am.same_mean * p1 - am.diff_mean * p2,
            0.5 * (am.diff_mean ** 2 * p2 - am.same_mean ** 2 * p1) + math.log(am.diff_sd / am.same_sd))
