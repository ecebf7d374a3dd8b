"""Train the offline demo re-id model: OSNet x0_25 on person crops rendered by the store simulator.

The served OSNet is an untrained placeholder (``modelops.build.export_osnet``: random
weights, BatchNorm calibrated); across the store's cameras it tells rendered people apart
only weakly. The simulator knows who is who on every camera, so an OSNet trained on its
crops makes cross-camera re-identification (issue 17) real and checkable offline.

Steps (``all`` runs them in order; each can run alone):

  dataset   render all four cameras (simulator.world.CAMERA_IDS) over one window per
            training seed (windows spread over the day: quiet to busy), 2 fps; cut person
            crops exactly as the ensemble does (serving.postprocess.reid_crops on the
            ground-truth boxes >= 40 px tall); identity = (seed, customer id); at most
            ``--per-track`` crops per person per camera visit, evenly spaced. Evaluation
            windows are rendered here too (held-out seeds: never trained on)
  train     modelops.architectures.OSNet from scratch on CPU (torch, 2 threads): identity
            softmax with label smoothing + batch-hard triplet on the L2-normalised
            embedding, P x K batches; flips, brightness/contrast/tint, small shifts, random
            erasing; AdamW with warm-up and cosine decay
  export    ONNX opset 17 with the served signature: ``images`` float32 [batch, 3, 256, 128]
            -> ``features`` float32 [batch, 512] (the eval-mode embedding; the ensemble
            L2-normalises downstream)
  pack      fp16 weights with Cast to fp32 in the graph -> data/models/demo/osnet_x0_25_demo.onnx
  evaluate  tracklet-level cross-camera rank-1 and d' on the held-out windows (the protocol of
            ``python -m benchmarks.reid --cross-camera``), for the packed model and for the
            placeholder (re-exported by ``modelops.build.export_osnet``)
  card      data/models/demo/OSNET_MODEL_CARD.md

    .venv/bin/python scripts/train_demo_reid.py all [--minutes 25]
    # a reproduction beside the shipped model:
    .venv/bin/python scripts/train_demo_reid.py all --work .run/retrain-reid --out .run/retrain-reid/model

``make models`` installs the packed model as the newest ``osnet_x0_25`` version through
``modelops.versions.add_version`` (``modelops.build.install_demo_reid``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK = REPO_ROOT / "data" / "demo_train" / "reid"
OUT_DIR = REPO_ROOT / "data" / "models" / "demo"
PACKED = OUT_DIR / "osnet_x0_25_demo.onnx"
CARD = OUT_DIR / "OSNET_MODEL_CARD.md"

FPS = 2.0
MIN_HEIGHT = 40  # px: the benchmark's (and a usable crop's) minimum person height
MAX_GAP_S = 4.0  # a tracklet: one person's run of sightings on one camera without a longer gap
DAY = "2024-01-15"
TRAIN_STARTS = ("11:00", "12:30", "14:00", "15:30", "17:00", "18:30")
# held out: other seeds (never trained on); the first is benchmarks.reid's window (seed 7, 17:30)
EVAL_WINDOWS = ((7, "17:30", 300.0), (1001, "12:00", 300.0))
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def train_seeds(n: int) -> list[int]:
    """Training seeds: 101, 102, ... (never 7, the benchmark's, nor the held-out 1000s)."""
    return [101 + k for k in range(n)]


# ----------------------------------------------------------------------------- dataset

def sightings(camera: str, seconds: float, seed: int, start: str):
    """Per rendered frame with someone >= MIN_HEIGHT px tall: (crops float32[k,3,256,128] as the
    ensemble cuts them, customer ids int64[k], time)."""
    from serving.postprocess import reid_crops
    from simulator.camera import PERSON
    from simulator.render import render_camera

    for img, t, boxes, cls, who in render_camera(camera, seconds=seconds, fps=FPS, seed=seed, start=start):
        keep = (cls == PERSON) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_HEIGHT)
        if keep.any():
            yield reid_crops(img, boxes[keep]), who[keep].astype(np.int64), t


def to_uint8(crops: np.ndarray) -> np.ndarray:
    """reid_crops' normalised float32 NCHW back to uint8 RGB NCHW (exact: the resize is uint8)."""
    x = crops * _STD[None, :, None, None] + _MEAN[None, :, None, None]
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def normalise(x_uint8: np.ndarray) -> np.ndarray:
    return ((x_uint8.astype(np.float32) - _MEAN[None, :, None, None]) / _STD[None, :, None, None]).astype(np.float32)


def tracklets(ids: np.ndarray, cams: np.ndarray, times: np.ndarray, max_gap_s: float = MAX_GAP_S) -> np.ndarray:
    """int64[K]: tracklet index of each sighting (one person, one camera, no gap > max_gap_s)."""
    order = np.lexsort((times, cams, ids))
    i, c, t = ids[order], cams[order], times[order]
    new = np.ones(len(order), bool)
    new[1:] = (i[1:] != i[:-1]) | (c[1:] != c[:-1]) | (t[1:] - t[:-1] > max_gap_s)
    out = np.empty(len(order), np.int64)
    out[order] = np.cumsum(new) - 1
    return out


def render_window(seed: int, start: str, seconds: float, per_track: int | None):
    """All cameras over one window: uint8 crops [K,3,256,128], ids, camera index, times."""
    from simulator import world as W

    crops, ids, cams, times = [], [], [], []
    iso = f"{DAY}T{start}:00Z"
    for k, cam in enumerate(W.CAMERA_IDS):
        for c, who, t in sightings(cam, seconds, seed, iso):
            crops.append(to_uint8(c))
            ids.append(who)
            cams.append(np.full(len(who), k, np.int64))
            times.append(np.full(len(who), t))
    if not ids:
        return np.zeros((0, 3, 256, 128), np.uint8), *(np.zeros(0, np.int64),) * 2, np.zeros(0)
    crops, ids, cams, times = (np.concatenate(x) for x in (crops, ids, cams, times))
    if per_track:
        tk = tracklets(ids, cams, times)
        keep = []
        for j in np.unique(tk):
            m = np.flatnonzero(tk == j)
            m = m[np.argsort(times[m])]
            keep.extend(m[np.unique(np.linspace(0, len(m) - 1, min(per_track, len(m))).round().astype(int))])
        keep = np.sort(np.asarray(keep))
        crops, ids, cams, times = crops[keep], ids[keep], cams[keep], times[keep]
    return crops, ids, cams, times


def make_dataset(seeds: int, seconds: float, per_track: int) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    X, Y, C = [], [], []
    label = {}
    for k, seed in enumerate(train_seeds(seeds)):
        start = TRAIN_STARTS[k % len(TRAIN_STARTS)]
        crops, ids, cams, _ = render_window(seed, start, seconds, per_track)
        for i in ids:
            label.setdefault((seed, int(i)), len(label))
        X.append(crops)
        Y.append(np.array([label[(seed, int(i))] for i in ids], np.int64))
        C.append(cams)
        print(f"dataset: seed {seed} {start} {seconds:g} s: {len(ids)} crops, {len(np.unique(ids))} people")
    X, Y, C = np.concatenate(X), np.concatenate(Y), np.concatenate(C)
    np.savez(WORK / "train.npz", x=X, y=Y, cam=C)
    for seed, start, secs in EVAL_WINDOWS:
        crops, ids, cams, times = render_window(seed, start, secs, None)
        np.savez(WORK / f"eval_{seed}.npz", x=crops, id=ids, cam=cams, t=times)
        print(f"dataset: held-out seed {seed} {start} {secs:g} s: {len(ids)} crops, {len(np.unique(ids))} people")
    per_id = np.bincount(Y)
    cams_per_id = [len(np.unique(C[Y == i])) for i in range(len(per_id))]
    info = {"train_crops": int(len(Y)), "train_people": int(len(per_id)), "seeds": train_seeds(seeds),
            "starts": [TRAIN_STARTS[k % len(TRAIN_STARTS)] for k in range(seeds)], "seconds": seconds,
            "per_track": per_track, "fps": FPS, "min_height": MIN_HEIGHT,
            "people_on_2plus_cameras": int(sum(c >= 2 for c in cams_per_id)),
            "render_seconds": round(time.perf_counter() - t0, 1),
            "eval_windows": [{"seed": s, "start": f"{DAY}T{st}:00Z", "seconds": sec} for s, st, sec in EVAL_WINDOWS]}
    (WORK / "dataset.json").write_text(json.dumps(info))
    print(f"dataset: {info}")
    return info


# ----------------------------------------------------------------------------- train

def augment(x, rng):
    """uint8 [B,3,256,128] torch tensor -> normalised float32 with flips, light, shifts, erasing."""
    import torch

    b = x.shape[0]
    x = x.float()
    flip = torch.from_numpy(rng.random(b) < 0.5)
    x[flip] = x[flip].flip(-1)
    gain = torch.from_numpy(rng.uniform(0.65, 1.35, (b, 1, 1, 1)).astype(np.float32))
    tint = torch.from_numpy(rng.uniform(0.9, 1.1, (b, 3, 1, 1)).astype(np.float32))
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = torch.from_numpy(rng.uniform(0.75, 1.25, (b, 1, 1, 1)).astype(np.float32))
    x = ((x - mean) * contrast + mean) * gain * tint
    pad = 10  # box jitter: shift by up to 10 px (edge-replicated)
    xp = torch.nn.functional.pad(x, (pad // 2, pad // 2, pad, pad), mode="replicate")
    out = torch.empty_like(x)
    for i in range(b):
        dy, dx = rng.integers(0, 2 * pad + 1), rng.integers(0, pad + 1)
        out[i] = xp[i, :, dy:dy + 256, dx:dx + 128]
        if rng.random() < 0.5:  # random erasing (Zhong et al.): a box of noise
            area = rng.uniform(0.02, 0.25) * 256 * 128
            ar = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            h, w = int(round(math.sqrt(area * ar))), int(round(math.sqrt(area / ar)))
            if h < 256 and w < 128:
                y0, x0 = rng.integers(0, 256 - h), rng.integers(0, 128 - w)
                out[i, :, y0:y0 + h, x0:x0 + w] = torch.from_numpy(rng.uniform(0, 255, (3, h, w)).astype(np.float32))
    out = out.clamp(0, 255)
    m = torch.from_numpy(_MEAN).view(1, 3, 1, 1)
    s = torch.from_numpy(_STD).view(1, 3, 1, 1)
    return (out - m) / s


def pk_batches(y: np.ndarray, p: int, k: int, rng):
    """One epoch of P identities x K crops (sampled with replacement where a person has fewer)."""
    by = [np.flatnonzero(y == i) for i in range(int(y.max()) + 1)]
    people = rng.permutation(len(by))
    for s in range(0, len(people) - p + 1, p):
        yield np.concatenate([rng.choice(by[i], k, replace=len(by[i]) < k) for i in people[s:s + p]])


def batch_hard_triplet(f, y, margin: float):
    import torch

    f = torch.nn.functional.normalize(f, dim=1)
    d = (2 - 2 * f @ f.T).clamp_min(1e-12).sqrt()
    same = y[:, None] == y[None, :]
    hardest_pos = (d * same).max(1).values
    hardest_neg = (d + same * 1e3).min(1).values
    return torch.relu(hardest_pos - hardest_neg + margin).mean()


def train(epochs: int, p: int, k: int, lr: float, seed: int, minutes: float) -> dict:
    import torch

    from modelops.architectures import OSNet, count_params

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d = np.load(WORK / "train.npz")
    x, y = torch.from_numpy(d["x"]), d["y"]
    n_ids = int(y.max()) + 1
    model = OSNet()
    head = torch.nn.Linear(512, n_ids)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=5e-4)
    steps_per_epoch = n_ids // p
    total = epochs * steps_per_epoch
    warm = max(1, min(30, total // 10))

    def progress() -> float:
        """Share of the schedule done: by steps, or by the time budget when that is nearer
        (the CPU may be shared, so a step's cost is not known in advance)."""
        by_time = (time.perf_counter() - t0) / (minutes * 60) if minutes else 0.0
        return max(step / total, by_time)

    def lr_now() -> float:  # linear warm-up, then cosine decay over the schedule
        return lr * ((step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * min(1.0, progress()))))

    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    t0 = time.perf_counter()
    step, log = 0, []
    stopped_early = False
    model.train()
    head.train()
    for ep in range(epochs):
        tot = {"ce": 0.0, "tri": 0.0, "acc": 0.0, "n": 0}
        for idx in pk_batches(y, p, k, rng):
            if progress() >= 1.0:
                stopped_early = step < total
                break
            xb = augment(x[idx], rng)
            yb = torch.from_numpy(y[idx])
            f = model(xb)
            logits = head(f)
            l_ce, l_tri = ce(logits, yb), batch_hard_triplet(f, yb, 0.3)
            opt.zero_grad()
            (l_ce + l_tri).backward()
            for g in opt.param_groups:
                g["lr"] = lr_now()
            opt.step()
            step += 1
            tot["ce"] += float(l_ce.detach())
            tot["tri"] += float(l_tri.detach())
            tot["acc"] += float((logits.argmax(1) == yb).float().mean())
            tot["n"] += 1
        n = max(tot["n"], 1)
        e = {"epoch": ep + 1, "steps": step, "ce": round(tot["ce"] / n, 3), "triplet": round(tot["tri"] / n, 3),
             "train_acc": round(tot["acc"] / n, 3), "minutes": round((time.perf_counter() - t0) / 60, 2)}
        log.append(e)
        print(f"train: {e}", flush=True)
        torch.save(model.state_dict(), WORK / "osnet.pt")
        if progress() >= 1.0:
            stopped_early = step < total
            break
    result = {"epochs": epochs, "epochs_run": len(log), "steps": step, "planned_steps": total, "p": p, "k": k, "lr": lr,
              "seed": seed, "identities": n_ids, "params": count_params(model), "train_seconds": time.perf_counter() - t0,
              "stopped_by_time_budget": stopped_early, "log": log}
    (WORK / "train.json").write_text(json.dumps(result))
    return result


# ----------------------------------------------------------------------------- export / pack

def export(dst: Path) -> None:
    import torch

    from modelops.architectures import OSNet

    model = OSNet()
    model.load_state_dict(torch.load(WORK / "osnet.pt"))
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, 256, 128), str(dst), dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["features"],
                      dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})


def pack_fp16(src: Path, dst: Path) -> int:
    """Float weights stored fp16 with a Cast to fp32 in the graph: half the bytes, fp32 compute
    (as the demo detector; its helper insists on detector metadata, so this is the re-id one)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    casts, halves = [], []
    for init in list(g.initializer):
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) > 16:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
            halves.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"))
            g.initializer.remove(init)
    g.initializer.extend(halves)
    for i, c in enumerate(casts):
        g.node.insert(i, c)
    del m.metadata_props[:]
    for key, value in {"description": "demo: OSNet x0_25 trained on the store simulator's rendered person crops "
                                      "(see OSNET_MODEL_CARD.md)", "feature_dim": "512"}.items():
        m.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(m)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return dst.stat().st_size


def embed(onnx_path: Path, crops_uint8: np.ndarray, batch: int = 64) -> np.ndarray:
    """L2-normalised embeddings through ONNX Runtime (what the ensemble computes)."""
    import onnxruntime as ort

    from serving.postprocess import l2_normalise

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: normalise(crops_uint8[i:i + batch])})[0] for i in range(0, len(crops_uint8), batch)]
    return l2_normalise(np.concatenate(out))


# ----------------------------------------------------------------------------- evaluate / card

def _stats(x) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()) if len(x) else float("nan"), "sd": float(x.std()) if len(x) else float("nan"),
            "pairs": int(len(x))}


def _d_prime(same: dict, diff: dict) -> float:
    pooled = math.sqrt((same["sd"] ** 2 + diff["sd"] ** 2) / 2)
    return float((same["mean"] - diff["mean"]) / pooled) if pooled > 0 else float("nan")


def tracklet_scores(emb: np.ndarray, ids: np.ndarray, cams: np.ndarray, times: np.ndarray) -> dict:
    """Tracklet-level cross-camera re-id (as ``benchmarks.reid --cross-camera``): one L2-normalised
    mean embedding per person per camera visit; same person on two cameras vs different people on
    two cameras (cosine mean/sd, d'); rank-1: query = a tracklet whose person has one on another
    camera, gallery = every tracklet on the other cameras; chance = the gallery's share of that person."""
    tk = tracklets(ids, cams, times)
    n = int(tk.max()) + 1
    mean = np.zeros((n, emb.shape[1]), np.float64)
    np.add.at(mean, tk, emb)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    t_id, t_cam = np.zeros(n, np.int64), np.zeros(n, np.int64)
    t_id[tk], t_cam[tk] = ids, cams
    sim = mean @ mean.T
    other = t_cam[:, None] != t_cam[None, :]
    same = t_id[:, None] == t_id[None, :]
    up = np.triu(np.ones((n, n), bool), 1)
    same_x, diff_x = _stats(sim[up & other & same]), _stats(sim[up & other & ~same])
    has = (other & same).any(axis=1)
    best = np.where(other, sim, -np.inf).argmax(axis=1)
    rank1 = float((t_id[best] == t_id)[has].mean()) if has.any() else float("nan")
    chance = float(((other & same).sum(1) / np.maximum(other.sum(1), 1))[has].mean()) if has.any() else float("nan")
    return {"crops": int(len(ids)), "people": int(len(np.unique(ids))), "tracklets": n, "queries": int(has.sum()),
            "same_person_cross_camera": same_x, "different_people_cross_camera": diff_x,
            "d_prime": _d_prime(same_x, diff_x), "rank1": rank1, "chance": chance}


def evaluate(model_path: Path) -> dict:
    """The packed model and the placeholder on every held-out window."""
    from modelops.build import export_osnet

    placeholder = WORK / "placeholder.onnx"
    export_osnet(placeholder)
    result = {}
    for seed, _start, _secs in EVAL_WINDOWS:
        d = np.load(WORK / f"eval_{seed}.npz")
        row = {}
        for name, path in (("placeholder", placeholder), ("trained", model_path)):
            t0 = time.perf_counter()
            emb = embed(path, d["x"])
            ms = (time.perf_counter() - t0) / max(len(emb), 1) * 1000
            row[name] = {**tracklet_scores(emb, d["id"], d["cam"], d["t"]), "ms_per_crop": round(ms, 2)}
            r = row[name]
            print(f"evaluate seed {seed} {name}: rank-1 {r['rank1']:.3f} (chance {r['chance']:.3f}), d' {r['d_prime']:.2f}, "
                  f"same {r['same_person_cross_camera']['mean']:.3f} +- {r['same_person_cross_camera']['sd']:.3f}, "
                  f"different {r['different_people_cross_camera']['mean']:.3f} +- "
                  f"{r['different_people_cross_camera']['sd']:.3f} ({r['tracklets']} tracklets, {r['queries']} queries)")
        result[str(seed)] = row
    (WORK / "eval.json").write_text(json.dumps(result))
    return result


def fp16_agreement(fp32: Path, fp16: Path, n: int = 256) -> float:
    """Lowest cosine between the fp32 export's and the packed model's embeddings of held-out crops."""
    d = np.load(WORK / f"eval_{EVAL_WINDOWS[1][0]}.npz")
    x = d["x"][np.linspace(0, len(d["x"]) - 1, min(n, len(d["x"]))).astype(int)]
    return float(np.min(np.sum(embed(fp32, x) * embed(fp16, x), 1)))


def write_card(size: int) -> None:
    ds = json.loads((WORK / "dataset.json").read_text())
    tr = json.loads((WORK / "train.json").read_text())
    ev = json.loads((WORK / "eval.json").read_text())
    pk = json.loads((WORK / "pack.json").read_text())

    def ms(s):
        return f"{s['mean']:.3f} ± {s['sd']:.3f}"

    rows = []
    for (seed, start, secs) in EVAL_WINDOWS:
        for name in ("placeholder", "trained"):
            r = ev[str(seed)][name]
            label = "placeholder (`export_osnet`: random, BatchNorm calibrated)" if name == "placeholder" else "this model"
            rows.append(f"| seed {seed}, {start}, {secs:g} s | {label} | {r['people']} / {r['tracklets']} / {r['queries']} | "
                        f"{ms(r['same_person_cross_camera'])} | {ms(r['different_people_cross_camera'])} | "
                        f"{r['d_prime']:.2f} | {r['rank1']:.3f} | {r['chance']:.3f} |")
    last = tr["log"][-1]
    better = all(ev[str(w[0])]["trained"][k] > ev[str(w[0])]["placeholder"][k] for w in EVAL_WINDOWS
                 for k in ("rank1", "d_prime"))
    verdict = "higher rank-1 and d' on every window" if better else "NOT better on every window (do not ship)"
    undertrained = "" if not tr["stopped_by_time_budget"] else f"""
**Under-trained**: the time budget allowed {tr['steps']} of {tr['planned_steps']} planned steps (training
accuracy {last['train_acc']} over {tr['identities']} identities); more steps (`--minutes`) should do better.
Against the placeholder on the held-out windows above: {verdict}.
"""
    seeds = ds["seeds"]
    CARD.write_text(f"""# Model card: OSNet x0_25 demo re-id (store simulator)

- **What**: OSNet x0_25 (`modelops.architectures.OSNet`, {tr['params'] / 1e6:.2f} M parameters), trained from
  scratch (no pretrained weights offline). ONNX opset 17, input `images` float32 [batch, 3, 256, 128]
  (RGB, ImageNet-normalised, cut by `serving.postprocess.reid_crops`), output `features` float32
  [batch, 512] (unnormalised; the ensemble L2-normalises); the served `osnet_x0_25` signature.
  Weights stored fp16 (Cast to fp32 in the graph), {size / 1e6:.2f} MB; lowest cosine between the fp32 export's
  and the packed model's embeddings of {pk['crops']} held-out crops: {pk['min_cosine_fp32_vs_fp16']:.5f}.
- **For**: the offline demo and tests only. It knows the simulator's rendered people (a clothing
  palette, skin, hair, build and height per customer), not real people or cameras. Real deployments
  use `scripts/download_models.sh` or their own trained re-id model.
- **Data**: {ds['train_crops']} crops of {ds['train_people']} identities ({ds['people_on_2plus_cameras']} seen on two
  or more cameras), rendered by `simulator/render.py` on all four cameras at {ds['fps']:g} fps, one
  {ds['seconds']:g} s window per seed (seeds {seeds[0]}-{seeds[-1]}, starts cycling over {', '.join(TRAIN_STARTS)} on {DAY});
  people >= {ds['min_height']} px tall, crops cut on the ground-truth boxes by the ensemble's `reid_crops`;
  identity = (seed, customer id); at most {ds['per_track']} crops per person per camera visit, evenly spaced.
  Held out: seeds {', '.join(str(s) for s, _, _ in EVAL_WINDOWS)} (never trained on); seed 7 at 17:30 is
  `benchmarks.reid`'s window.
- **Training**: `modelops/train_demo_reid.py`: identity softmax (label smoothing 0.1) + batch-hard
  triplet (margin 0.3, L2-normalised embedding), P x K = {tr['p']} x {tr['k']} batches, AdamW lr {tr['lr']:g} with
  warm-up and cosine decay, {tr['steps']} steps ({tr['epochs_run']} of {tr['epochs']} planned epochs{', cosine schedule over the time budget' if tr['stopped_by_time_budget'] else ''});
  augmentation: horizontal flip, brightness/contrast/tint, shifts up to 10 px, random erasing.
  CPU, 2 threads: {tr['train_seconds'] / 60:.1f} min wall clock (last epoch: softmax {last['ce']}, triplet
  {last['triplet']}, training accuracy {last['train_acc']}).
- **Reproduce**: `.venv/bin/python scripts/train_demo_reid.py all --seeds {len(seeds)} --seconds {ds['seconds']:g} --per-track {ds['per_track']} --epochs {tr['epochs']} --p {tr['p']} --k {tr['k']} --lr {tr['lr']:g} --seed {tr['seed']} --minutes <budget>`
  (add `--work .run/retrain-reid --out .run/retrain-reid/model` to keep the shipped model).

## Cross-camera re-identification on held-out windows

Protocol of `python -m benchmarks.reid --cross-camera`: all four cameras over the same window at
{ds['fps']:g} fps, crops on ground-truth boxes >= {ds['min_height']} px tall; a tracklet is one person's
sightings on one camera with no gap over {MAX_GAP_S:g} s, embedded as the L2-normalised mean of its crops'
embeddings. Cosine mean ± sd of same person on two cameras vs different people on two cameras, d'
from those; rank-1: query = a tracklet whose person has one on another camera, gallery = every
tracklet on the other cameras (chance = the share of the gallery that is the same person).
ONNX Runtime CPU.

| window | model | people / tracklets / queries | same person, two cameras | different people, two cameras | d' | rank-1 | chance |
|---|---|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

CPU time per crop in this evaluation (ONNX Runtime, 2 threads, batch 64): {ev[str(EVAL_WINDOWS[0][0])]['trained']['ms_per_crop']} ms.
{undertrained}""")
    print(f"wrote {CARD}")


def _set_dirs(work: Path, out: Path) -> None:
    global WORK, OUT_DIR, PACKED, CARD
    WORK, OUT_DIR = work.resolve(), out.resolve()
    PACKED, CARD = OUT_DIR / "osnet_x0_25_demo.onnx", OUT_DIR / "OSNET_MODEL_CARD.md"
    WORK.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["all", "dataset", "train", "export", "pack", "evaluate", "card"])
    ap.add_argument("--seeds", type=int, default=30, help="training windows (one per seed)")
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each training window")
    ap.add_argument("--per-track", type=int, default=6, help="crops kept per person per camera visit")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--p", type=int, default=16, help="identities per batch")
    ap.add_argument("--k", type=int, default=4, help="crops per identity in a batch")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time budget (0: none)")
    ap.add_argument("--work", type=Path, default=WORK, help="dataset, checkpoints and reports")
    ap.add_argument("--out", type=Path, default=OUT_DIR,
                    help="packed model + card (another folder to re-train without replacing the shipped one)")
    a = ap.parse_args(argv)
    _set_dirs(a.work, a.out)
    steps = ["dataset", "train", "export", "pack", "evaluate", "card"] if a.step == "all" else [a.step]
    if "dataset" in steps:
        make_dataset(a.seeds, a.seconds, a.per_track)
    if "train" in steps:
        r = train(a.epochs, a.p, a.k, a.lr, a.seed, a.minutes)
        print(f"trained in {r['train_seconds'] / 60:.1f} min ({r['steps']} steps)")
    if "export" in steps:
        export(WORK / "osnet_fp32.onnx")
    if "pack" in steps:
        size = pack_fp16(WORK / "osnet_fp32.onnx", PACKED)
        cos = fp16_agreement(WORK / "osnet_fp32.onnx", PACKED)
        (WORK / "pack.json").write_text(json.dumps({"size_bytes": size, "min_cosine_fp32_vs_fp16": cos, "crops": 256}))
        print(f"packed {size / 1e6:.2f} MB -> {PACKED} (fp32 vs fp16 embeddings: lowest cosine {cos:.5f})")
    if "evaluate" in steps:
        evaluate(PACKED)
    if "card" in steps:
        write_card(PACKED.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
