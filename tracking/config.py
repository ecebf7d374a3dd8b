"""Tracker settings: every knob in one validated dataclass."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`tracking.Tracker`. Times are in seconds, never frames,
    so a stream that drops frames or has uneven timestamps behaves the same.

    Detection confidence (two-stage, ByteTrack-style):
      high_thresh:       detections with score >= this go to the first association stage and
                         may start tracks.
      low_thresh:        detections with low_thresh <= score < high_thresh are only used to
                         keep existing, currently-tracked tracks alive (occluded people score
                         low); lower scores are ignored.
      new_track_thresh:  an unmatched detection starts a (tentative) track only at or above
                         this score (a little above high_thresh keeps clutter out).

    Association costs (1 - IoU, adjusted by appearance; a pair is accepted when its cost is
    <= the stage's threshold). Motion always gates: the IoU alone must pass the threshold, and
    be above 0 whatever the threshold (1.0 = any overlap, never none), so appearance never
    matches a detection away from the track's predicted box (that is re-identification,
    below), and a detection of another class, whose IoU with the track counts as 0, never
    matches at all.
      match_thresh:           stage 1, tracked + recently lost tracks x high detections (0.8 =
                              IoU >= 0.2).
      low_match_thresh:       stage 2, the same tracks still unmatched x the remaining
                              detections (low-score ones, and high ones whose appearance kept
                              them out of stage 1), IoU only: ByteTrack's recovery of occluded,
                              low-confidence boxes, whose crops mostly show the occluder.
                              Recently lost tracks take part too: someone coming out from
                              behind a shelf is first detected at a low score.
      appearance_low_match_thresh: low_match_thresh when embeddings are in use (0.4 = IoU >=
                              0.6): a track whose person is hidden then goes lost, to be taken
                              back by appearance in stage 1 or re-identified, instead of
                              taking a neighbour's box on a loose overlap. Measured on the
                              benchmark's crowd-200 with re-id: ID switches 1232 at 0.5, 1082
                              at 0.4, 1110 at 0.35.
      tentative_match_thresh: stage 3, tentative tracks x remaining high detections.
      fuse_score:             multiply IoU by the detection score in stages 1 and 3 (a
                              confident box wins a tie against a doubtful one).
      appearance_weight:      stages 1 and 3 add weight * (d - appearance_neutral) to the cost,
                              d = cosine distance (1 - similarity) of the detection's embedding
                              to the track's EMA embedding, when both have one: a look-alike
                              pair gets cheaper, a pair that looks like someone else dearer
                              (it may still match in stage 2 on a clear overlap). 0 disables.
      appearance_neutral:     the cosine distance that neither helps nor hurts: a detection to
                              its own established EMA is ~0.25-0.3 apart, different people
                              ~0.6-0.7 for OSNet-like embeddings; kept low so that mostly
                              unlike pairs are pushed apart (measured best on the benchmark's
                              crowd-200: ID switches 1389 / 1291 / 1232 / 1230 at 0.45 / 0.35 /
                              0.3 / 0.25).
      contested_neutral:      appearance_neutral for the pairs of a detection that two or more
                              tracks could take by overlap in stages 1 and 3 (mutual exclusion:
                              in a crowd, a track whose own person is hidden and missed reaches
                              for the neighbour's box, which that neighbour's track wants too).
                              Such a pair costs weight * (appearance_neutral - contested_neutral)
                              more, so it needs clear appearance evidence; a detection only one
                              track reaches is costed as before (a sparse scene is unaffected).
                              = appearance_neutral: off. Measured on the benchmark's crowd-200
                              with re-id, ID switches seeds 0-2 / held-out seeds 3-8 (no
                              embeddings: 1777 / 3639): 1082 / 2164 off, 903 / 1841 at 0.0,
                              872 / 1908 at -0.1, 935 / 1936 at -0.2 (crowded_neutral off), 852
                              / 1856 at -0.1 with crowded_neutral 0.1. Lowering
                              appearance_neutral for every pair instead helps crowds as much but
                              costs TUD-Campus MOTA (0.888 -> 0.846 at 0.2).
      crowded_neutral:        appearance_neutral for the other, uncontested candidate
                              detections of a track that reaches a contested one (a milder
                              form of the same rule; crowd-60 held-out IDsw 100 -> 92 with it);
                              = appearance_neutral: off.
      ema_momentum:           track embedding <- m * track + (1 - m) * detection, then
                              re-normalised. Only clean detections update it, and the less
                              confident the detection the closer m gets to 1 (Deep OC-SORT's
                              dynamic appearance): crops of occluded people describe the occluder.
                              Over a track's first clean views m is at most n / (n + 1) (n clean
                              views so far: a running mean, not one noisy crop weighted 0.9); a
                              track first seen occluded keeps that embedding only until its first
                              clean view replaces it.
      ema_max_overlap:        a detection is clean when no detection in front of it (lower
                              bottom edge, i.e. nearer the camera) covers more than this share of
                              its box. Coverage by boxes in front, not IoU with any box: a small
                              person half hidden by a big one has a small IoU with it, and a
                              person in front is not hidden by the one behind.

    Track life:
      min_hits:        matches in a row before a track is confirmed and gets an id (>= 2:
                       one-frame tracks are never output).
      max_lost_s:      a confirmed track unmatched for longer than this is no longer matched
                       by motion (its Kalman prediction); without an embedding it is deleted.
      reid_window_s:   a lost track with an embedding is kept this long for re-identification
                       by appearance alone (>= max_lost_s).
      reid_thresh:     largest cosine distance (1 - similarity) accepted for re-identification.
      reid_margin:     re-identification takes a pair only when it is the best of both its
                       track's and its detection's candidates by at least this cosine distance
                       (a near tie in a crowd is more often a look-alike than the lost person;
                       ambiguous matches are refused and the detection starts a new track).
                       0 (default): off, the optimal assignment under reid_thresh. Measured
                       neutral on the benchmark's crowd-200 (IDsw 413 at 0.05 and 0.1 vs 413
                       off, seed 0): re-id decides few switches there.
      reid_max_speed:  spatial gate for re-identification, in box heights per second: a
                       detection further than (1 + reid_max_speed * seconds lost) box heights
                       from where the track was last seen is not the same object.

    Output:
      coast_output_s:  a confirmed track missed for up to this long is still output, at its
                       Kalman-predicted box, with ``coasting`` True and det_index -1 (people
                       behind a shelf or another shopper for a few frames stay in the
                       analytics; 0: only tracks matched this frame). A track coasts at most
                       as long as it had been seen (a two-frame track is not extrapolated for
                       a second), and not once its predicted box reaches the edge of the area
                       detections have covered so far (someone walking out of view is gone,
                       not hidden). Never longer than max_lost_s in effect: a track no longer
                       matched by motion is not output.

      frame_rate:      frames per second assumed between calls when no timestamp is given.
    """

    frame_rate: float = 25.0
    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_thresh: float = 0.8
    low_match_thresh: float = 0.5
    appearance_low_match_thresh: float = 0.4
    tentative_match_thresh: float = 0.7
    fuse_score: bool = True
    appearance_weight: float = 0.5
    appearance_neutral: float = 0.3
    contested_neutral: float = -0.1
    crowded_neutral: float = 0.1
    ema_momentum: float = 0.9
    ema_max_overlap: float = 0.3
    min_hits: int = 2
    max_lost_s: float = 1.0
    reid_window_s: float = 10.0
    reid_thresh: float = 0.45
    reid_max_speed: float = 2.0
    reid_margin: float = 0.0
    coast_output_s: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.fuse_score, bool):
            raise ValueError(f"TrackerConfig.fuse_score: expected True or False, got {self.fuse_score!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "fuse_score":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"TrackerConfig.{f.name}: expected a finite number, got {v!r}")
        checks = [
            ("frame_rate", self.frame_rate > 0, "must be > 0"),
            ("low_thresh", 0 <= self.low_thresh <= self.high_thresh, "must be in [0, high_thresh]"),
            ("high_thresh", 0 <= self.high_thresh <= 1, "must be in [0, 1]"),
            ("new_track_thresh", self.new_track_thresh >= self.high_thresh, "must be >= high_thresh"),
            ("match_thresh", 0 < self.match_thresh <= 1, "must be in (0, 1]"),
            ("low_match_thresh", 0 < self.low_match_thresh <= 1, "must be in (0, 1]"),
            ("appearance_low_match_thresh", 0 < self.appearance_low_match_thresh <= 1, "must be in (0, 1]"),
            ("tentative_match_thresh", 0 < self.tentative_match_thresh <= 1, "must be in (0, 1]"),
            ("appearance_weight", self.appearance_weight >= 0, "must be >= 0"),
            ("appearance_neutral", 0 <= self.appearance_neutral <= 2, "must be in [0, 2]"),
            ("contested_neutral", -2 <= self.contested_neutral <= self.appearance_neutral,
             "must be in [-2, appearance_neutral]"),
            ("crowded_neutral", -2 <= self.crowded_neutral <= self.appearance_neutral,
             "must be in [-2, appearance_neutral]"),
            ("ema_momentum", 0 <= self.ema_momentum < 1, "must be in [0, 1)"),
            ("ema_max_overlap", 0 <= self.ema_max_overlap <= 1, "must be in [0, 1]"),
            ("min_hits", self.min_hits >= 2 and int(self.min_hits) == self.min_hits,
             "must be an integer >= 2 (one-frame tracks are never output)"),
            ("max_lost_s", self.max_lost_s >= 0, "must be >= 0"),
            ("reid_window_s", self.reid_window_s >= self.max_lost_s, "must be >= max_lost_s"),
            ("reid_thresh", 0 <= self.reid_thresh <= 2, "must be in [0, 2]"),
            ("reid_max_speed", self.reid_max_speed >= 0, "must be >= 0"),
            ("reid_margin", 0 <= self.reid_margin <= 2, "must be in [0, 2]"),
            ("coast_output_s", self.coast_output_s >= 0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"TrackerConfig.{name}={getattr(self, name)!r}: {why}")
