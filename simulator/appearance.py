"""Re-id embeddings without pixels, for the 24 h sample-data generator (issue 17).

The generator (simulator/day.py) has no frames to crop, so it cannot run OSNet; this model
samples embeddings whose cosine statistics match what the served OSNet gives on the
renderer's people (``python -m benchmarks.reid --cross-camera`` measures them and writes
``simulator/appearance_calibration.json``; ``AppearanceModel.from_calibration`` fits to it).

    model = AppearanceModel.from_calibration(seed=42)
    emb = model.embed(truth_ids, camera_index, t=timestamps)      # float32[N, 512], unit rows

The model. Before L2 normalisation, the embedding of customer p seen by camera k at time t is

    x = sqrt(A) c + sqrt(K) q_k + sqrt(B) S z_p + sqrt(G) u_p + sqrt(V) w_pk
        + sum_i sqrt(S_i) d_pki(t) + sqrt(N) e

* c: one common unit direction. Embeddings of different people are far from orthogonal
  (every crop is a person on a store floor); A sets where their cosines centre.
* q_k: per-camera unit direction shared by everyone on camera k (background, scale, light):
  different people in the same frame are a little more alike than on two cameras.
* S z_p: "clothing": S is an orthonormal D x r basis (r small, orthogonal to c) and
  z_p ~ N(0, I_r / r) per customer. Low rank is what the measured per-person mean
  embeddings show (a few directions carry most of the spread: light vs dark clothes...);
  z_p.z_q spreads the different-people cosines, and a customer with a large |z_p| is far
  from everyone (the long lower tail of the measured distribution).
* u_p: per-customer identity, a random unit vector in all D dimensions (what no other
  customer shares).
* w_pk: per-(customer, camera) viewpoint, a random unit vector: the same person looks
  different on another camera.
* d_pki(t): slow drift on one camera (pose, position in the frame, what is behind): random
  unit "knot" vectors K_j at t = j tau_i per (customer, camera, scale i), and between
  knots d(t) = cos(pi u / 2) K_j + sin(pi u / 2) K_{j+1}, u = t / tau_i - j, which keeps
  |d| = 1; correlation rho_i(dt) falls from 1 to 0 over about 1-2 tau_i. Two scales (a fast
  and a slow one) follow the measured decay of a tracklet's crop-to-crop cosine with dt.
* e: per-crop noise, isotropic Gaussian with E|e|^2 = 1 in a fixed random 64-dimensional
  subspace (drawing 64 normals a row instead of D keeps the sampler cheap; two crops' noise
  terms then correlate by ~N / 8, which is below 0.003 at the fitted N).

All random vectors are near-orthogonal in D = 512, so, writing R^2 = |x|^2 =
A + K + B |z_p|^2 + G + V + sum S_i + N (= 1 on average):

    same camera, dt apart:      1 - (N + sum_i S_i (1 - rho_i(dt))) / R^2
    same person, two cameras:   (A + B |z_p|^2 + G) / R^2
    different people, two cams: (A + B z_p.z_q) / (R_p R_q)     (+ K on the same camera)

and a tracklet mean of m crops spanning its seconds has, before normalisation,
T^2 = A + K + B |z|^2 + G + V + sum_i S_i rho_bar_i + N / m (rho_bar_i: the mean drift
correlation over the tracklet's pairs of crops), which replaces R^2 above: averaging
removes noise and part of the drift, so tracklets of one person match better across
cameras than single crops. ``fit`` chooses the weights (and tau_i, and r among 1-4) by
least squares of these expressions, averaged over sampled z and the measured tracklet
sizes, against the calibration's crop-level means (same camera by dt, two cameras,
different people in one frame and on two cameras, and the latter's sd) and tracklet-level
cross-camera same/different means and sds.

Known shortfall. Placeholder OSNet: crop-level means match to ~0.01, tracklet-level
different-people mean/sd to ~0.02, but the tracklet-level same-person mean comes out ~0.85
against the measured 0.915 and its sd ~0.03 against 0.096. Trained demo OSNet (the shipped
calibration): crop-level means to ~0.04, the tracklet-level same-person mean ~0.77 against
0.876. Either way the sampled people are harder to tell apart than the rendered ones: OSNet's
same-person similarity varies by camera pair and with tracklet length (long queue tracklets
dominate the crop pairs), which one viewpoint weight for every (customer, camera) cannot
show. A per-(customer, camera) random viewpoint weight would be the next refinement.

Identity parts (z_p, u_p, w_pk, K_j) come from ``np.random.default_rng([seed, kind, id...])``,
so processes with the same seed agree on every customer without sharing state (a bounded
cache keeps them). Truth id -1 (a false positive) gets a fresh random identity per row.
Without ``t`` the drift is drawn fresh per row (as if the crops were far apart in time).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CALIBRATION = Path(__file__).resolve().parent / "appearance_calibration.json"
DIM = 512
_CACHE_MAX = 20_000  # cached vectors (each D float32) before the cache starts over
NOISE_RANK = 64


@dataclass(frozen=True)
class AppearanceParams:
    """Component weights (variances before normalisation; they sum to 1) and structure."""

    common: float = 0.66  # A
    camera: float = 0.03  # K
    clothing: float = 0.18  # B
    identity: float = 0.02  # G
    viewpoint: float = 0.02  # V
    drift: tuple[float, ...] = (0.015, 0.06)  # S_i
    drift_tau_s: tuple[float, ...] = (10.0, 200.0)  # tau_i
    noise: float = 0.012  # N
    rank: int = 2  # r
    dim: int = DIM

    def normalised(self) -> "AppearanceParams":
        tot = self.common + self.camera + self.clothing + self.identity + self.viewpoint + sum(self.drift) + self.noise
        f = 1.0 / tot
        return AppearanceParams(self.common * f, self.camera * f, self.clothing * f, self.identity * f,
                                self.viewpoint * f, tuple(s * f for s in self.drift), self.drift_tau_s,
                                self.noise * f, self.rank, self.dim)


# ---------------------------------------------------------------------------------------------
# drift correlation and the analytic statistics the fit matches


def _rho(delta: np.ndarray) -> np.ndarray:
    """Correlation of the knot process at lag ``delta`` (in units of tau), averaged over phase."""
    d = np.asarray(delta, np.float64)
    u = (np.arange(64) + 0.5) / 64
    s = u[None, :] + d.reshape(-1, 1)
    j = np.floor(s)
    u2 = s - j
    same = np.cos(np.pi * (u2 - u) / 2)
    nxt = np.sin(np.pi * u / 2) * np.cos(np.pi * u2 / 2)
    r = np.where(j == 0, same, np.where(j == 1, nxt, 0.0)).mean(axis=1)
    return r.reshape(d.shape)


def _rho_bar(sizes: np.ndarray, tau: float) -> np.ndarray:
    """Mean drift correlation over all pairs (self included) of each tracklet's crops, taken
    evenly over its span: sizes float[T, 2] = (crops, seconds)."""
    out = np.empty(len(sizes))
    grid = np.linspace(0, 2.5, 251)
    table = _rho(grid)
    for i, (m, span) in enumerate(sizes):
        m = int(m)
        if m <= 1:
            out[i] = 1.0
            continue
        k = np.arange(1, m)
        r = np.interp(k * (span / (m - 1)) / tau, grid, table, right=0.0)
        out[i] = (m + 2.0 * np.sum((m - k) * r)) / (m * m)
    return out


@dataclass
class _Targets:
    curve_dt: np.ndarray
    curve: np.ndarray
    cross: float
    diff_x: float
    diff_x_sd: float
    diff_frame: float
    t_same: float
    t_same_sd: float
    t_diff: float
    t_diff_sd: float
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @classmethod
    def from_json(cls, cal: dict) -> "_Targets":
        c, t = cal["crop"], cal["tracklet"]
        curve = c["same_tracklet_by_dt"]
        return cls(np.array([b["dt_mean"] for b in curve]), np.array([b["mean"] for b in curve]),
                   c["cross_camera"]["mean"], c["different_cross_camera"]["mean"], c["different_cross_camera"]["sd"],
                   c["different_same_frame"]["mean"], t["same_person_cross_camera"]["mean"],
                   t["same_person_cross_camera"]["sd"], t["different_people_cross_camera"]["mean"],
                   t["different_people_cross_camera"]["sd"], np.array(t["sizes"], np.float64).reshape(-1, 2))


def fit(cal: dict, ranks: tuple[int, ...] = (1, 2, 3, 4), dim: int = DIM) -> tuple[AppearanceParams, dict]:
    """Least-squares fit of the component weights to a calibration (see the module docstring).
    Returns the parameters and the fit's predicted vs measured statistics."""
    from scipy.optimize import least_squares

    tg = _Targets.from_json(cal)
    sizes = tg.sizes
    rb_cache: dict = {}

    def rho_bar(tau):  # the fit revisits taus; memoise on a rounded key
        k = round(float(tau), 3)
        if k not in rb_cache:
            rb_cache[k] = _rho_bar(sizes, k)
        return rb_cache[k]

    def params(th, r):
        w = np.exp(th[:7])
        return AppearanceParams(1.0, w[0], w[1], w[2], w[3], (w[4], w[5]), (float(np.exp(th[7])), float(np.exp(th[8]))),
                                w[6], r, dim)

    def residuals(th, r):
        pr = predict_fast(params(th, r))
        # crop-level means first (what the tracker and the linker see per crop), then tracklet means, sds last
        return np.concatenate([
            3.0 * (pr["curve"] - tg.curve),
            [4 * (pr["cross"] - tg.cross), 4 * (pr["diff_x"] - tg.diff_x), pr["diff_x_sd"] - tg.diff_x_sd,
             3 * (pr["diff_frame"] - tg.diff_frame), 1.5 * (pr["t_same"] - tg.t_same),
             0.5 * (pr["t_same_sd"] - tg.t_same_sd), 1.5 * (pr["t_diff"] - tg.t_diff), pr["t_diff_sd"] - tg.t_diff_sd]])

    rng = np.random.default_rng(0)
    n = 3000
    base_z = rng.standard_normal((2, n, 4))
    idx = rng.integers(0, len(sizes), (3, n))

    def predict_fast(p):  # ``predict`` with fixed draws and memoised rho_bar (the fit calls it often)
        z = base_z[..., :p.rank] / math.sqrt(p.rank)
        z2 = (z ** 2).sum(-1)
        zz = (z[0] * z[1]).sum(-1)
        rest = p.camera + p.identity + p.viewpoint
        r2 = p.common + rest + p.clothing * z2 + sum(p.drift) + p.noise
        loss = sum(s * (1 - _rho(tg.curve_dt / tau)) for s, tau in zip(p.drift, p.drift_tau_s))
        out = {"curve": (1 - (p.noise + np.asarray(loss)[:, None]) / r2[0][None, :]).mean(axis=1),
               "cross": float(((p.common + p.clothing * z2[0] + p.identity) / r2[0]).mean())}
        d = (p.common + p.clothing * zz) / np.sqrt(r2[0] * r2[1])
        out["diff_x"], out["diff_x_sd"] = float(d.mean()), float(d.std())
        out["diff_frame"] = float(((p.common + p.camera + p.clothing * zz) / np.sqrt(r2[0] * r2[1])).mean())
        drift_bar = sum(s * rho_bar(tau) for s, tau in zip(p.drift, p.drift_tau_s))
        t2 = [p.common + rest + p.clothing * zsq + p.noise / sizes[row, 0] + drift_bar[row]
              for row, zsq in ((idx[0], z2[0]), (idx[1], z2[0]), (idx[2], z2[1]))]
        same = (p.common + p.clothing * z2[0] + p.identity) / np.sqrt(t2[0] * t2[1])
        diff = (p.common + p.clothing * zz) / np.sqrt(t2[0] * t2[2])
        out["t_same"], out["t_same_sd"] = float(same.mean()), float(same.std())
        out["t_diff"], out["t_diff_sd"] = float(diff.mean()), float(diff.std())
        return out

    x0 = np.log([0.05, 0.3, 0.05, 0.05, 0.02, 0.1, 0.02, 10.0, 200.0])
    lo = np.log([1e-4] * 7 + [1.0, 20.0])
    hi = np.log([1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 60.0, 3000.0])
    best = None
    for r in ranks:
        sol = least_squares(residuals, x0, args=(r,), bounds=(lo, hi), method="trf", x_scale=1.0, max_nfev=400)
        if best is None or sol.cost < best[0]:
            best = (sol.cost, r, sol.x)
    _, r, th = best
    p = params(th, r).normalised()
    pr = predict_fast(p)
    report = {k: {"fitted": (v.tolist() if isinstance(v, np.ndarray) else round(v, 4)),
                  "measured": (getattr(tg, k).tolist() if isinstance(getattr(tg, k), np.ndarray)
                               else round(getattr(tg, k), 4))} for k, v in pr.items()}
    return p, report


_FITS: dict = {}


def fitted_params(path: str | Path = CALIBRATION, dim: int = DIM) -> tuple[AppearanceParams, dict]:
    """``fit`` of a calibration file, memoised per path and modification time."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns, dim)
    if key not in _FITS:
        _FITS[key] = fit(json.loads(path.read_text()), dim=dim)
    return _FITS[key]


# ---------------------------------------------------------------------------------------------
# the sampler


class AppearanceModel:
    """Samples L2-normalised float32 embeddings for (truth id, camera) rows; see the module docstring."""

    def __init__(self, params: AppearanceParams = AppearanceParams(), seed: int = 0,
                 rng: np.random.Generator | None = None) -> None:
        self.params = p = params.normalised()
        self.seed = int(seed)
        self.dim = p.dim
        self.rng = rng if rng is not None else np.random.default_rng([self.seed, 9])
        basis, _ = np.linalg.qr(np.random.default_rng([self.seed, 0]).standard_normal((p.dim, 1 + p.rank)))
        self._c = basis[:, 0].astype(np.float32)
        self._S = basis[:, 1:].astype(np.float32)  # D x r
        nb, _ = np.linalg.qr(np.random.default_rng([self.seed, 5]).standard_normal((p.dim, min(NOISE_RANK, p.dim))))
        self._noise_basis = (nb.T * (math.sqrt(p.noise / nb.shape[1]))).astype(np.float32)  # k x D, row var N/k
        self._base: dict = {}  # (cid, camera) -> sqrt-weighted static part, float32[D]
        self._knot: dict = {}  # (cid, camera, scale, j) -> unit float32[D]
        self._sq = {k: math.sqrt(v) for k, v in asdict(p).items() if isinstance(v, float)}
        self._sd = [math.sqrt(s) for s in p.drift]

    @classmethod
    def from_calibration(cls, path: str | Path = CALIBRATION, seed: int = 0, dim: int = DIM,
                         rng: np.random.Generator | None = None) -> "AppearanceModel":
        """A model fitted to ``benchmarks.reid --cross-camera``'s measured statistics."""
        return cls(fitted_params(path, dim)[0], seed=seed, rng=rng)

    # -- per-customer parts -------------------------------------------------------------------
    def _unit(self, *key: int) -> np.ndarray:
        v = np.random.default_rng([self.seed, *key]).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def _static(self, cid: int, cam: int) -> np.ndarray:
        """sqrt(A) c + sqrt(K) q_k + sqrt(B) S z_p + sqrt(G) u_p + sqrt(V) w_pk for one customer on one camera."""
        key = (cid, cam)
        v = self._base.get(key)
        if v is None:
            if len(self._base) >= _CACHE_MAX:
                self._base.clear()
            q = self._sq
            rng = np.random.default_rng([self.seed, 1, cid])
            z = rng.standard_normal(self.params.rank) / math.sqrt(self.params.rank)
            u = rng.standard_normal(self.dim)
            u /= np.linalg.norm(u)
            v = (q["common"] * self._c + q["camera"] * self._unit(4, cam) + q["clothing"] * (self._S @ z)
                 + q["identity"] * u + q["viewpoint"] * self._unit(2, cid, cam)).astype(np.float32)
            self._base[key] = v
        return v

    def _knots(self, cid: int, cam: int, scale: int, j: int) -> np.ndarray:
        key = (cid, cam, scale, j)
        v = self._knot.get(key)
        if v is None:
            if len(self._knot) >= _CACHE_MAX:
                self._knot.clear()
            v = self._knot[key] = self._unit(3, cid, cam, scale, j)
        return v

    # -- sampling ------------------------------------------------------------------------------
    def embed(self, truth_ids, camera_index: int, t=None, rng: np.random.Generator | None = None) -> np.ndarray:
        """float32[N, D] unit rows for customers ``truth_ids`` (int64[N]; -1 = false positive, a fresh
        random identity each) seen by camera ``camera_index``. ``t``: time of each row in seconds (a
        scalar or float[N], e.g. epoch seconds) for the slow drift; None draws the drift per row.
        ``rng`` (default the model's own) draws the per-crop noise and the false positives."""
        ids = np.asarray(truth_ids, np.int64).reshape(-1)
        n, d = len(ids), self.dim
        rng = rng if rng is not None else self.rng
        cam = int(camera_index)
        q = self._sq
        real = ids >= 0
        r = np.flatnonzero(real)
        fp = np.flatnonzero(~real)
        tt = None if t is None else np.broadcast_to(np.asarray(t, np.float64), (n,))
        # customers: gathered from cached per-(customer, camera) parts, built contiguously then placed once
        xr = np.empty((len(r), d), np.float32)
        if len(r):
            rid = ids[r]
            uniq, inv = np.unique(rid, return_inverse=True)
            np.take(np.stack([self._static(int(c), cam) for c in uniq]), inv.reshape(-1), axis=0, out=xr)
            if tt is not None:
                buf = np.empty_like(xr)
                for s, (sd, tau) in enumerate(zip(self._sd, self.params.drift_tau_s)):
                    if sd == 0:
                        continue
                    pos = tt[r] / tau
                    j = np.floor(pos).astype(np.int64)
                    u = (pos - j).astype(np.float32)
                    j0 = int(j.min())
                    span = int(j.max()) - j0 + 1
                    uk, kin = np.unique(rid * span + (j - j0), return_inverse=True)
                    kin = kin.reshape(-1)
                    pairs = [(int(k // span), int(k % span) + j0) for k in uk]
                    for step, w in ((0, np.cos(np.pi / 2 * u)), (1, np.sin(np.pi / 2 * u))):
                        table = np.stack([self._knots(c, cam, s, jj + step) for c, jj in pairs])
                        np.take(table, kin, axis=0, out=buf)
                        buf *= (sd * w)[:, None]
                        xr += buf
        if not len(fp):
            x = xr
        else:  # false positives: every part per row, a stranger
            x = np.empty((n, d), np.float32)
            x[r] = xr
            p = self.params
            z = rng.standard_normal((len(fp), p.rank)).astype(np.float32) / math.sqrt(p.rank)
            x[fp] = (q["common"] * self._c + q["camera"] * self._unit(4, cam) + q["clothing"] * (z @ self._S.T)
                     + math.sqrt(p.identity + p.viewpoint) * _unit_rows(rng, len(fp), d)
                     + math.sqrt(sum(p.drift)) * _unit_rows(rng, len(fp), d))
        if tt is None and len(r):  # no times: the drift drawn per row
            x[r] += math.sqrt(sum(self.params.drift)) * _unit_rows(rng, len(r), d)
        x += rng.standard_normal((n, len(self._noise_basis)), dtype=np.float32) @ self._noise_basis
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
