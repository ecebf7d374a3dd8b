"""The store-level linker on hand-made tracklets with known answers (visits/linker.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from analytics.config import CameraConfig, StoreConfig, VisitSettings
from analytics.floor import Door, FloorCalibration, FloorPlan
from analytics.records import CameraJourneyRecord, JourneyRecord, StoreKpiRecord, VisitRecord
from analytics.tracklets import Tracklet
from visits.linker import VisitLinker

CAMS = ("cam-a", "cam-b", "cam-c")
IDENTITY = FloorCalibration(np.zeros((4, 2)), np.zeros((4, 2)), np.eye(3))
DOOR = Door("main", np.array([2.0, 25.0]), np.array([6.0, 25.0]), np.array([0.0, -1.0]))


def store(calibrated: bool = True, doors: bool = True, **visit_kw) -> StoreConfig:
    cams = {c: CameraConfig(c, (640, 360), floor=IDENTITY if calibrated else None) for c in CAMS}
    plan = FloorPlan(np.array([[0, 0], [40, 0], [40, 25], [0, 25]], np.float64), {"main": DOOR} if doors else {})
    return StoreConfig(Path("store.yaml"), cams, store_id="s1", floor=plan, visits=VisitSettings(**visit_kw))


def ident(seed: int, d: int = 64) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


def noisy(base: np.ndarray, seed: int, sd: float = 0.3) -> np.ndarray:
    """A tracklet mean of ``base`` (noise of norm about ``sd``): two of them have a cosine of
    about 1 / (1 + sd^2), 0.92 by default (the default same-person model says 0.90 +- 0.05)."""
    rng = np.random.default_rng(seed + 1000)
    v = base + sd * rng.normal(size=base.shape) / np.sqrt(len(base))
    return (v / np.linalg.norm(v)).astype(np.float32)


_ids = iter(range(1, 10_000))


def tracklet(cam, t0, t1, p0, p1, emb=None, zones=(), converted=False, final=True, on_floor=True, tid=None):
    tid = next(_ids) if tid is None else tid
    ts = np.linspace(t0, t1, max(int((t1 - t0) / 0.5), 1) + 1)
    xy = np.linspace(p0, p1, len(ts))
    path = np.column_stack([ts, xy]).astype(np.float64)
    zone_visits = tuple((t0 + 0.1 * i, z) for i, z in enumerate(zones))
    j = JourneyRecord(f"j{tid}", tid, cam, t0, t1, tuple(zones), {z: 3.0 for z in zones}, converted, False)
    return Tracklet(cam, tid, t0, t1 if final else t0 + 2.0, final, path if final else path[:5], on_floor,
                    emb, 3.0 if emb is not None else 0.0, zone_visits if final else (), j if final else None)


def run(linker: VisitLinker, tracklets: list[Tracklet], until: float, lost_after: float = 4.0) -> list:
    """Feed heads (2 s after start) and finals (``lost_after`` after end) in time order, as cameras do."""
    events = []
    for tl in tracklets:
        head = Tracklet(tl.camera_id, tl.track_id, tl.start, tl.start + 6.0, False, tl.path[:13], tl.on_floor,
                        tl.embedding, tl.embedding_weight)
        events.append((tl.start + 6.0, 0, head))
        events.append((tl.end + lost_after, 1, tl))
    events.sort(key=lambda e: (e[0], e[1]))
    out, t = [], 0.0
    for at, _, tl in events:
        while t < at:
            out += linker.advance(t)
            t += 0.5
        out += linker.process([tl], at)
    while t < until:
        out += linker.advance(t)
        t += 0.5
    return out + linker.flush(until)


def visits_of(out: list) -> list[VisitRecord]:
    return [r for r in out if isinstance(r, VisitRecord)]


def test_one_customer_door_to_till_is_one_visit():
    e = ident(1)
    tls = [tracklet("cam-a", 0, 20, (4, 27), (9, 16), noisy(e, 1), zones=("entrance",)),
           tracklet("cam-b", 23, 120, (11, 12), (16, 12), noisy(e, 2), zones=("aisle-1",)),
           tracklet("cam-c", 124, 300, (16.5, 13), (16.5, 24), noisy(e, 3), zones=("queue-1", "service-1"),
                    converted=True),
           tracklet("cam-a", 306, 320, (10, 24.2), (4, 27), noisy(e, 4))]
    out = run(VisitLinker(store()), tls, 400)
    v = visits_of(out)
    assert len(v) == 1
    assert v[0].zones_visited == ("entrance", "aisle-1", "queue-1", "service-1")
    assert v[0].converted and v[0].closed_by == "door"
    assert v[0].cameras == ("cam-a", "cam-b", "cam-c")
    assert len(v[0].tracklets) == 4 and v[0].start_time == 0 and v[0].end_time == 320
    assert sum(isinstance(r, CameraJourneyRecord) for r in out) == 4
    kpis = [r for r in out if isinstance(r, StoreKpiRecord)]
    assert sum(k.visits for k in kpis) == 1 and sum(k.converted for k in kpis) == 1


def test_two_people_swapping_places_between_cameras_follow_their_looks():
    a, b = ident(2), ident(3)
    tls = [tracklet("cam-a", 0, 10, (4, 27), (9, 16), noisy(a, 5)),
           tracklet("cam-a", 0.5, 10, (3, 27), (10, 16), noisy(b, 6)),
           # they cross in the blind gap: a appears where b would, b where a would
           tracklet("cam-b", 13, 60, (12, 12), (20, 5), noisy(a, 7)),
           tracklet("cam-b", 13, 60, (11, 12), (25, 5), noisy(b, 8))]
    v = visits_of(run(VisitLinker(store()), tls, 300))
    assert len(v) == 2
    by_start = {r.tracklets[0]: r.tracklets for r in v}
    assert by_start[f"cam-a:{tls[0].track_id}"][1] == f"cam-b:{tls[2].track_id}"
    assert by_start[f"cam-a:{tls[1].track_id}"][1] == f"cam-b:{tls[3].track_id}"


def test_lookalikes_are_told_apart_by_where_they_walk():
    a = ident(4)
    twin = noisy(a, 9, sd=0.1)  # near-identical clothes
    tls = [tracklet("cam-a", 0, 10, (4, 27), (2, 16), noisy(a, 10)),
           tracklet("cam-a", 0, 10, (5, 27), (38, 16), twin),
           tracklet("cam-b", 12, 40, (2, 14), (2, 5), noisy(a, 11)),  # beside where the first left
           tracklet("cam-c", 12, 40, (38, 14), (38, 5), noisy(twin, 12))]
    v = visits_of(run(VisitLinker(store()), tls, 300))
    assert len(v) == 2
    pairs = {r.tracklets for r in v}
    assert (tls[0].label, tls[2].label) in pairs and (tls[1].label, tls[3].label) in pairs


def test_customer_who_leaves_and_comes_back_later_is_a_new_visit():
    e = ident(5)
    tls = [tracklet("cam-a", 0, 20, (4, 27), (9, 16), noisy(e, 13)),
           tracklet("cam-a", 40, 60, (9, 16), (4, 27.5), noisy(e, 14)),  # out through the door
           tracklet("cam-a", 100, 120, (4, 27), (9, 16), noisy(e, 15))]  # back 40 s later
    v = visits_of(run(VisitLinker(store()), tls, 400))
    assert len(v) == 2
    first, second = sorted(v, key=lambda r: r.start_time)
    assert first.closed_by == "door" and len(first.tracklets) == 2
    assert second.start_time == 100


def test_a_camera_that_drops_out_neither_splits_nor_keeps_visits_open():
    e, f = ident(6), ident(7)
    tls = [tracklet("cam-a", 0, 20, (4, 27), (9, 16), noisy(e, 16)),
           tracklet("cam-b", 25, 50, (11, 12), (20, 8), noisy(e, 17)),  # cam-b dies at 50
           tracklet("cam-c", 95, 130, (20, 13), (20, 20), noisy(e, 18)),  # 45 s later elsewhere
           tracklet("cam-a", 0, 20, (3, 27), (8, 17), noisy(f, 19)),
           tracklet("cam-b", 24, 50, (11, 11), (14, 8), noisy(f, 20))]  # never seen again
    linker = VisitLinker(store(timeout_s=90))
    out = run(linker, tls, 600)
    v = sorted(visits_of(out), key=lambda r: len(r.tracklets))
    assert [len(r.tracklets) for r in v] == [2, 3]
    assert v[0].closed_by == "timeout" and v[1].closed_by == "timeout"
    assert not linker.visits and not linker.visit_of and not linker.pending  # nothing left in memory


def test_without_calibration_links_by_appearance_and_time():
    a, b = ident(8), ident(9)
    tls = [tracklet("cam-a", 0, 10, (0, 0), (0, 0), noisy(a, 21), on_floor=False),
           tracklet("cam-a", 1, 10, (0, 0), (0, 0), noisy(b, 22), on_floor=False),
           tracklet("cam-b", 14, 30, (0, 0), (0, 0), noisy(b, 23), on_floor=False),
           tracklet("cam-b", 15, 30, (0, 0), (0, 0), noisy(a, 24), on_floor=False)]
    linker = VisitLinker(store(calibrated=False))
    v = visits_of(run(linker, tls, 400))
    assert "uncalibrated" in linker.mode
    assert {r.tracklets for r in v} == {(tls[0].label, tls[3].label), (tls[1].label, tls[2].label)}


def test_without_embeddings_links_by_space_time():
    tls = [tracklet("cam-a", 0, 10, (4, 27), (3, 16)),
           tracklet("cam-a", 0, 10, (5, 27), (30, 16)),
           tracklet("cam-b", 12, 30, (30, 14), (30, 5)),
           tracklet("cam-c", 12, 30, (3, 14), (3, 5))]
    linker = VisitLinker(store())
    v = visits_of(run(linker, tls, 400))
    assert "space-time only" in linker.mode
    assert {r.tracklets for r in v} == {(tls[0].label, tls[3].label), (tls[1].label, tls[2].label)}


def test_a_walk_faster_than_anyone_can_is_never_linked():
    e = ident(10)
    tls = [tracklet("cam-a", 0, 10, (4, 27), (1, 16), noisy(e, 25)),
           tracklet("cam-b", 12, 30, (39, 1), (39, 2), noisy(e, 26))]  # 40 m in 2 s, same look
    v = visits_of(run(VisitLinker(store()), tls, 400))
    assert len(v) == 2


@pytest.mark.parametrize("delay", [4.0, 8.0])
def test_late_final_within_the_decision_delay_still_links(delay):
    e = ident(11)
    # the aisle track begins while the entrance track has not reported its end yet (lost_after 4 s)
    tls = [tracklet("cam-a", 0, 10, (4, 27), (9, 16), noisy(e, 27)),
           tracklet("cam-b", 10.5, 30, (10, 13), (15, 8), noisy(e, 28))]
    v = visits_of(run(VisitLinker(store(decision_delay_s=delay)), tls, 400))
    assert len(v) == 1 and len(v[0].tracklets) == 2


@pytest.mark.parametrize("apart, linked", [(0.3, True), (1.0, False)])
def test_one_camera_following_one_person_on_two_tracks_links_them(apart, linked):
    """A camera's tracker may start a second track on someone while the first still follows them
    (3 s here). Both tracks at one spot are one person: the second continues the visit. Two tracks
    a metre apart for those seconds are two people side by side (a queue): never linked."""
    a = ident(16)  # one look: only the floor tells
    first = tracklet("cam-b", 0, 30, (11, 12), (20, 8), noisy(a, 37))  # at (19.1, 8.4) at 27 s
    second = tracklet("cam-b", 27, 60, (19.1 + apart, 8.4), (30, 8), noisy(a, 38))
    v = visits_of(run(VisitLinker(store()), [first, second], 400))
    together = any(first.label in r.tracklets and second.label in r.tracklets for r in v)
    assert together == linked


def test_a_linker_at_work_compiles_nothing_after_it_is_made():
    """The compiled passes are built (or loaded from numba's cache) when a linker is made, for the
    argument types its decisions pass: the first decision of a live run never waits for the compiler."""
    from visits import floor_heatmap, gallery, link_costs

    kernels = (link_costs._pair_costs, link_costs.waits, link_costs._paths_distance, gallery._add_looks,
               floor_heatmap._accumulate, floor_heatmap._ordered_t_max)
    linker = VisitLinker(store())
    made = [len(k.signatures) for k in kernels]
    a, b = ident(70), ident(71)
    tls = [tracklet("cam-a", 0, 30, (4, 27), (20, 8), noisy(a, 72)),
           tracklet("cam-b", 27, 60, (19.1, 8.4), (30, 8), noisy(a, 73)),  # seen at once with the first
           tracklet("cam-c", 5, 40, (10, 10), (30, 20), noisy(b, 74)),
           tracklet("cam-a", 70, 90, (30, 8), (5, 26), noisy(a, 75))]
    assert len(visits_of(run(linker, tls, 400))) >= 1
    assert [len(k.signatures) for k in kernels] == made


def test_a_track_id_the_camera_kept_across_a_gap_stays_in_its_visit():
    """The camera's analytics split a track unseen for longer than lost_after_s, but its tracker
    kept the id: the second part continues the same visit even with someone else closer."""
    a, b = ident(12), ident(13)
    tls = [tracklet("cam-a", 0, 10, (4, 27), (9, 16), noisy(a, 29)),
           tracklet("cam-b", 13, 30, (11, 12), (20, 8), noisy(a, 30), tid=7001),
           tracklet("cam-a", 0, 10, (3, 27), (9, 16), noisy(b, 31)),
           tracklet("cam-b", 14, 36, (11, 12), (22, 8), noisy(b, 32)),
           tracklet("cam-b", 37, 60, (22, 8.2), (25, 8), None, tid=7001)]  # no look; beside b's exit
    v = visits_of(run(VisitLinker(store()), tls, 400))
    mine = next(r for r in v if "cam-b:7001" in r.tracklets)
    assert mine.tracklets == (tls[0].label, "cam-b:7001", "cam-b:7001")


def test_a_kept_track_id_is_evidence_not_a_verdict():
    """The camera's tracker kept id 7002 across 18 s unseen, but its second part (no look) begins
    half a second after b's track ended, where b was, walking on as b walked: the linker's own
    evidence outweighs the kept id (worth 3 log-odds, not a verdict) and the part joins b's visit.
    (With a fair case for the kept id, it wins: the test above.)"""
    a, b = ident(14), ident(15)
    tls = [tracklet("cam-a", 0, 10, (4, 27), (9, 16), noisy(a, 33)),
           tracklet("cam-b", 13, 30, (11, 12), (20, 8), noisy(a, 34), tid=7002),
           tracklet("cam-a", 20, 30, (3, 27), (9, 16), noisy(b, 35)),
           tracklet("cam-b", 33, 48, (11, 12), (24, 8), noisy(b, 36)),
           tracklet("cam-b", 48.5, 70, (24.3, 8), (34, 8), None, tid=7002)]
    v = visits_of(run(VisitLinker(store()), tls, 400))
    assert next(r for r in v if tls[2].label in r.tracklets).tracklets == (tls[2].label, tls[3].label, "cam-b:7002")
    assert next(r for r in v if tls[0].label in r.tracklets).tracklets == (tls[0].label, "cam-b:7002")


def test_someone_coming_in_from_the_street_starts_a_new_visit():
    """A head that begins beyond the door line walking in is a customer entering: it does not
    continue a visit still inside (whose exit the door camera missed), however alike they look;
    a visit that just went out through the door may still be continued (a step out and back)."""
    a = ident(40)
    inside = tracklet("cam-b", 0, 30, (11, 12), (9, 20), noisy(a, 41))  # exit unseen: open, last seen inside
    entering = tracklet("cam-a", 40, 60, (4, 27), (9, 16), noisy(a, 42))
    v = visits_of(run(VisitLinker(store()), [inside, entering], 400))
    assert len(v) == 2
    b = ident(43)
    out_ = tracklet("cam-a", 0, 20, (9, 16), (4, 27), noisy(b, 44))  # leaves through the door
    back = tracklet("cam-a", 22, 40, (4, 27), (9, 16), noisy(b, 45))  # and is back 2 s later
    linker = VisitLinker(store(door_close_s=30.0))
    v = visits_of(run(linker, [out_, back], 400, lost_after=0.5))
    assert len(v) == 1 and len(v[0].tracklets) == 2


def test_a_new_visit_inside_is_cheap_only_while_the_linker_warms_up():
    """Customers inside before the linker started are first met inside: until it has run
    timeout_s, a new visit inside costs less (0 at the start, the full odds at timeout_s)."""
    linker = VisitLinker(store(timeout_s=100.0))
    first = tracklet("cam-b", 1000.0, 1020.0, (20, 5), (20, 8), final=False)
    linker.add(first)
    at = [tracklet("cam-b", t0, t0 + 20, (20, 5), (20, 8), final=False) for t0 in (1000.0, 1050.0, 1100.0, 1500.0)]
    costs = [linker._new_cost(h) for h in at]
    assert costs[0] == 0.0 and costs[1] == pytest.approx(costs[2] / 2) and costs[2] == costs[3] > 0
    door = tracklet("cam-a", 1500.0, 1520.0, (4, 27), (9, 16), final=False)
    assert linker._new_cost(door) == 0.0


def test_a_short_track_and_its_continuation_due_together_still_link():
    """Heads are decided in batches; a head that could continue a short track (final before its
    decision) in the same batch waits for the next assignment, which has that track's visit."""
    a = ident(50)
    short = tracklet("cam-a", 0, 4, (4, 27), (8, 18), noisy(a, 51))  # under head_after_s: arrives final only
    on = tracklet("cam-b", 5, 60, (10, 13), (20, 5), noisy(a, 52))
    head = tracklet("cam-b", 5, 60, (10, 13), (20, 5), noisy(a, 52), final=False, tid=on.track_id)
    linker = VisitLinker(store(head_after_s=6.0, decision_delay_s=6.0))
    out = linker.process([short], 4.5)
    out += linker.process([head], 11.0)  # due at 12 and 17: one batch at the 2 s decision step
    out += [r for t in np.arange(11.5, 60.0, 0.5) for r in linker.advance(float(t))]
    out += linker.process([on], 60.5) + linker.flush(400.0)
    v = visits_of(out)
    assert len(v) == 1 and len(v[0].tracklets) == 2


def test_a_head_that_could_continue_a_final_head_of_its_batch_waits_one_decision_step():
    """One assignment a decision step: a head of the batch that could continue the visit a final head
    of it opens (it began after that track ended, within walking reach) waits for the next step and
    links; one that could not (another camera, too far to walk there in the gap) is decided now."""
    a = ident(60)
    short = tracklet("cam-a", 6, 9, (10, 10), (12, 10), noisy(a, 61))  # under head_after_s: arrives final only
    near = tracklet("cam-a", 10, 60, (12.5, 10), (20, 10), noisy(a, 62), final=False)
    far = tracklet("cam-b", 10, 60, (35, 3), (30, 5), ident(63), final=False)  # 24 m off in 1 s
    linker = VisitLinker(store(head_after_s=6.0, decision_delay_s=6.0, decide_every_s=8.0))
    decided = {}
    for t in np.arange(0.0, 40.0, 0.5):  # decision steps at 0, 8, 16, 24, 32
        if t == 9.5:
            linker.process([short], t)  # due at 18
        elif t == 16.5:
            linker.process([near, far], t)  # due at 22: all three in the step at 24
        else:
            linker.advance(float(t))
        for tl in (short, near, far):
            if tl.key in linker.visit_of and tl.key not in decided:
                decided[tl.key] = float(t)
    assert decided == {short.key: 24.0, far.key: 24.0, near.key: 32.0}
    assert linker.visit_of[near.key] == linker.visit_of[short.key] != linker.visit_of[far.key]


def test_pairs_left_out_before_the_floor_terms_change_no_decision():
    """The bound that skips the floor terms is exact: with it (new-visit costs given) and without
    it (new-visit costs inf, every pair scored) the assignment of heads to visits is the same."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    looks = [ident(100 + k) for k in range(30)]
    linker = VisitLinker(store())
    for k in range(30):  # 30 people met and gone at random places and times: open visits
        t0 = float(rng.uniform(0, 100))
        p0, p1 = rng.uniform([1, 1], [39, 24]), rng.uniform([1, 1], [39, 24])
        tl = tracklet(CAMS[k % 3], t0, t0 + 20, tuple(p0), tuple(p1), noisy(looks[k], 200 + k))
        linker._decide([tl], linker._head_rows([tl]))
    heads = []
    for k in range(12):  # some of them again, some never seen, anywhere
        t0 = 130.0 + float(rng.uniform(0, 5))
        p = rng.uniform([1, 1], [38, 23])
        look = looks[k * 2] if k % 3 else ident(400 + k)
        heads.append(tracklet(CAMS[k % 3], t0, t0 + 20, tuple(p), tuple(p + 1), noisy(look, 300 + k), final=False))
    rows = linker.gallery.candidates()
    n, m = len(heads), len(rows)
    new = np.array([linker._new_cost(h) for h in heads])
    pruned = np.full((n, m), np.inf)
    full = np.full((n, m), np.inf)
    H = linker._head_rows(heads)
    linker._link_costs(heads, H, rows, pruned, new)
    linker._link_costs(heads, H, rows, full, np.full(n, np.inf))
    assert np.isfinite(full).sum() > np.isfinite(pruned).sum() > 0  # some pairs were skipped, not all
    kept = np.isfinite(pruned)
    assert np.allclose(pruned[kept], full[kept])
    skipped = ~kept & np.isfinite(full)
    assert (full > new[:, None])[skipped].all()  # each skipped pair costs more than its head's new visit

    def solve(c):
        big = np.hstack([np.where(np.isfinite(c), c, 1e9), np.where(np.eye(n) > 0, new[:, None], 1e9)])
        r, cc = linear_sum_assignment(big)
        return cc[np.argsort(r)].tolist()

    assert solve(pruned) == solve(full)


@pytest.mark.parametrize("bad, message", [
    (np.full(64, np.nan, np.float32), "not a finite vector"),
    (np.zeros(64, np.float32), "all zeros"),
    (noisy(ident(9, d=32), 9), "has 32 values, not 64"),
])
def test_a_look_that_cannot_be_compared_is_dropped_not_fatal(bad, message, caplog):
    """A tracklet whose embedding is broken, empty or of another re-id model's size links by
    space-time alone (logged, naming the tracklet): the decisions it takes part in do not fail,
    and the other tracklets keep their looks."""
    e = ident(1)
    a = tracklet("cam-a", 0, 20, (4, 27), (9, 16), noisy(e, 1), zones=("entrance",))
    b = tracklet("cam-b", 22, 60, (10, 15), (20, 8), bad, zones=("aisle-1",))  # walks on from a's exit
    c = tracklet("cam-c", 62, 90, (21, 7), (30, 4), noisy(e, 3), zones=("checkout",), converted=True)
    linker = VisitLinker(store())
    with caplog.at_level("WARNING", logger="visits.linker"):
        out = run(linker, [a, b, c], until=400)
    assert message in caplog.text and b.label in caplog.text
    (v,) = visits_of(out)  # one customer: the floor carries b, the looks of a and c agree
    assert v.tracklets == (a.label, b.label, c.label)
    assert sum(isinstance(r, CameraJourneyRecord) for r in out) == 3


def test_the_heading_table_read_by_index_is_np_interp_on_it():
    """``_heading_log_i0e`` reads its even table by index arithmetic: the values np.interp gives on
    the same table (between entries, on them, at 0 and past HEADING_CUT_S), and close to the exact
    log i0e(kappa(gap)) it tabulates."""
    from scipy.special import i0e

    from visits import link_costs as lc

    grid = np.linspace(0.0, lc.HEADING_CUT_S, lc._HEADING_STEPS + 1)
    gaps = np.concatenate([np.random.default_rng(3).uniform(0.0, 1.5 * lc.HEADING_CUT_S, (7, 50)).ravel(),
                           grid[::37], [0.0, lc.HEADING_CUT_S, 10 * lc.HEADING_CUT_S]])
    got = lc._heading_log_i0e(gaps.copy())
    assert np.allclose(got, np.interp(gaps, grid, lc._HEADING_LOG_I0E), rtol=0, atol=1e-12)
    exact = np.log(i0e(lc.HEADING_KAPPA * np.exp(-np.minimum(gaps, lc.HEADING_CUT_S) / lc.HEADING_GAP_S)))
    assert np.abs(got - exact).max() < 1e-4
    shape = np.ones((3, 4)) * 7.3  # any shape, as the decision's matrices
    assert lc._heading_log_i0e(shape).shape == (3, 4)


def test_a_flush_decides_the_heads_still_pending():
    """The end of a run decides every head not yet due (none of them waiting for another), then
    closes their visits: nothing is lost."""
    a, b = ident(80), ident(81)
    linker = VisitLinker(store())
    heads = [tracklet("cam-a", 0, 10, (4, 27), (9, 16), noisy(a, 82), final=False),
             tracklet("cam-b", 1, 10, (30, 8), (25, 8), noisy(b, 83), final=False)]
    linker.process(heads, 3.0)
    assert len(linker.pending) == 2
    out = linker.flush(4.0)
    assert not linker.pending and linker.stats["closed_end"] == 2
    assert sum(isinstance(r, StoreKpiRecord) for r in out) >= 1


def test_a_visit_sums_its_final_tracks_as_they_arrive_each_once():
    """An open visit keeps no camera journey: zones, dwell, seconds and conversion are summed as
    its finals arrive (in any order, a repeated final counted once), and its record reads the sums:
    zones in the order entered across cameras, dwell summed per zone in that order."""
    from visits.gallery import OpenVisit

    a = tracklet("cam-a", 0, 20, (4, 27), (9, 16), zones=("entrance", "aisle-1"))
    b = tracklet("cam-b", 25, 60, (11, 12), (16, 12), zones=("aisle-1",), converted=True)
    v = OpenVisit(1)
    v.put(Tracklet(b.camera_id, b.track_id, b.start, b.start + 2.0, False, b.path[:5], True))  # b's head
    assert v.open == 1 and v.journeys == 0
    v.put(b)
    v.put(b)  # its final again: counted once
    v.put(a)  # a track that began earlier, final later
    assert v.open == 0 and v.journeys == 2 and v.converted and v.seen_s == 55.0
    rec = VisitLinker(store())._record(v, "end")
    assert rec.zones_visited == ("entrance", "aisle-1")
    assert list(rec.zone_dwell_times.items()) == [("entrance", 3.0), ("aisle-1", 6.0)]
    assert rec.cameras == ("cam-a", "cam-b") and rec.tracklets == (a.label, b.label)
    assert (rec.start_time, rec.end_time, rec.converted, rec.cart_detected) == (0, 60, True, False)


def test_a_visits_look_is_its_tracklets_looks_weighted_summed_normalised():
    """The gallery's look row of a visit: one look as it came; several summed by crop quality (each
    capped: a long track is not worth many short ones) and normalised, whether they arrive in one
    decision's writes or across several; looks that cancel out give no appearance term."""
    from visits.gallery import FULL_WEIGHT, REL, Gallery, OpenVisit

    def final(emb, weight, t0):
        return dataclasses.replace(tracklet("cam-a", t0, t0 + 5, (1, 1), (2, 2), emb), embedding_weight=weight)

    g = Gallery(capacity=2)  # grows on the third visit
    one, many, cancel = OpenVisit(1), OpenVisit(2), OpenVisit(3)
    a, b, c = ident(1), ident(2), ident(3)
    one.put(final(a.astype(np.float32), 1.0, 0.0))
    many.put(final(a.astype(np.float32), 1.0, 0.0))
    many.put(final(b.astype(np.float32), 100.0, 10.0))  # capped at 4 x FULL_WEIGHT
    cancel.put(final(c.astype(np.float32), 2.0, 0.0))
    cancel.put(final(-c.astype(np.float32), 2.0, 10.0))
    for v in (one, many, cancel):
        g.sync(v)
    rows = g.candidates()
    assert len(rows) == 3
    r1, r2, r3 = (g.row[v] for v in (1, 2, 3))
    assert np.array_equal(g.unit[r1], a.astype(np.float32)) and not one.new_looks  # taken: the visit keeps none
    want = a + 4.0 * FULL_WEIGHT * b
    assert np.allclose(g.unit[r2], want / np.linalg.norm(want), atol=1e-6)
    assert g.feat[r1, REL] == pytest.approx(np.sqrt(1.0 / FULL_WEIGHT)) and g.feat[r2, REL] == 1.0
    assert g.feat[r3, REL] == 0.0  # no look left: no appearance term
    many.put(final(c.astype(np.float32), 1.0, 20.0))  # a later decision: the third look joins
    g.sync(many)
    g.candidates()
    want = want + c
    assert np.allclose(g.unit[r2], want / np.linalg.norm(want), atol=1e-6)
    g.sync(cancel)  # written again without a new look: still none
    g.candidates()
    assert g.feat[r3, REL] == 0.0


@pytest.mark.parametrize("every", [2.0, 8.0])
def test_heads_are_decided_at_the_configured_pace(every):
    """``decide_every_s``: a head due is linked at the first decision time at or after it is due,
    the decisions that often (the clients' pace trades accuracy for cost: VisitSettings)."""
    linker = VisitLinker(store(decide_every_s=every))
    head = tracklet("cam-a", 10.0, 40.0, (10, 10), (12, 12), ident(5), final=False)
    t, decided = 0.0, None
    while decided is None and t < 60.0:  # decisions at 0, every, 2 every, ...
        if t == 16.0:
            linker.process([head], t)  # due at 10 + 6 + 6 = 22
        else:
            linker.advance(t)
        if head.key in linker.visit_of:
            decided = t
        t += 0.5
    first = every * np.ceil(22.0 / every)  # the first decision time at or after 22
    assert decided == pytest.approx(first)
