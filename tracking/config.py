"""Tracker settings: every knob in one validated dataclass."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`tracking.Tracker`. Times are in seconds, never frames, so a stream
    that drops frames or has uneven timestamps behaves the same. Scores, IoU and cosine
    distances are unitless. Association stages accept a pair when its cost (1 - IoU, adjusted
    by appearance) is <= the stage's threshold, and the IoU alone must pass that threshold too
    (motion always gates; a pair of different classes never matches). Why the defaults are
    what they are, with the measurements: docs/tracking-tuning.md.

    Detection confidence:
      high_thresh:        score >= this: high-confidence stage; may start tracks.
      low_thresh:         scores in [low_thresh, high_thresh) only keep tracks alive (the
                          low-confidence stage); lower scores are ignored.
      new_track_thresh:   an unmatched detection starts a tentative track at or above this.

    Association (thresholds are the largest accepted cost; 0.8 = IoU >= 0.2):
      match_thresh:                high stage: tracked + recently lost tracks x high detections.
      low_match_thresh:            low stage: the same tracks still unmatched x the remaining
                                   detections, IoU only (ByteTrack's recovery of occluded boxes).
      appearance_low_match_thresh: low_match_thresh when embeddings are in use (stricter).
      tentative_match_thresh:      tentative tracks x remaining high detections.
      new_track_speed:             box heights per second: a new track that starts where a
                                   tentative one just died, further than plain IoU follows but
                                   within this speed, starts with the velocity of that move (at a
                                   low frame rate someone walking across the view then confirms).
                                   0: off (new tracks start at rest).
      fuse_score:                  multiply IoU by the detection score in the high and
                                   tentative stages (a confident box wins a tie).
      appearance_weight:           the high and tentative stages add weight * (d - neutral),
                                   d = cosine distance of detection to track EMA embedding,
                                   when both have one. 0 disables.
      appearance_neutral:          the d that neither helps nor hurts.
      contested_neutral:           neutral for the pairs of a detection two or more tracks
                                   reach by overlap (needs clearer appearance evidence);
                                   = appearance_neutral: off.
      crowded_neutral:             neutral for the other candidate detections of a track that
                                   reaches a contested one; = appearance_neutral: off.
      ema_momentum:                track embedding <- m * track + (1 - m) * detection; m rises
                                   towards 1 as the detection's score falls to high_thresh, and
                                   is at most n / (n + 1) over the first n clean views.
      ema_max_overlap:             a detection is clean (may update the embedding) when no box
                                   in front of it (lower bottom edge) covers more than this
                                   share of it.

    Track life:
      min_hits:        matches in a row before a track is confirmed and gets an id (>= 2).
      max_lost_s:      how long an unmatched confirmed track is still matched by motion;
                       without an embedding it is then deleted.
      reid_window_s:   how long a lost track with an embedding is kept for re-identification
                       by appearance (>= max_lost_s).
      reid_thresh:     largest cosine distance accepted for re-identification.
      reid_margin:     re-id takes a pair only when it beats the runner-up of its row and
                       column by this cosine distance; 0: off (optimal assignment).
      reid_max_speed:  re-id motion gate, box heights per second: a detection further than
                       (1 + reid_max_speed * seconds lost) box heights from where the track
                       was last seen is not the same object.

    Output:
      coast_output_s:  a confirmed track missed for up to this long is still output at its
                       predicted box (``coasting`` True, det_index -1); never longer than it
                       had been seen, nor than max_lost_s, nor once its box reaches the edge
                       of the area detections have covered. 0: matched tracks only.
      frame_rate:      frames per second assumed between calls without timestamps.
    """

    frame_rate: float = 25.0
    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_thresh: float = 0.8
    low_match_thresh: float = 0.5
    appearance_low_match_thresh: float = 0.4
    tentative_match_thresh: float = 0.7
    new_track_speed: float = 1.0
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
    reid_max_speed: float = 1.0
    reid_margin: float = 0.05
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
            ("new_track_speed", self.new_track_speed >= 0, "must be >= 0"),
            ("reid_margin", 0 <= self.reid_margin <= 2, "must be in [0, 2]"),
            ("coast_output_s", self.coast_output_s >= 0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"TrackerConfig.{name}={getattr(self, name)!r}: {why}")
