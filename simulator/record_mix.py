"""A pipeline-like mix of every record type, for sink tests and benchmarks (no camera, no model).

    batches = pipeline_records(t0, seconds=300, streams=("cam-a", "cam-b"), fps=5.0, seed=0)
    for batch in batches: sink.write(batch)        # one batch per frame tick, all streams

Records: detections (people + carts, tracked), queue metrics per lane, zone occupancy,
footfall, heatmap summaries, finished journeys (several closed on the same frame, as a
flush does), raised/cleared alerts, stream health, and Triton metrics points parsed by the
real parser from ``TRITON_METRICS_TEMPLATE`` (Prometheus text as Triton 2.5x prints it).
Deterministic for a given ``seed``.

Imports: ``analytics.records`` and ``monitoring.triton_metrics`` (lazily).
"""
from __future__ import annotations

__all__ = ["TRITON_METRICS_TEMPLATE", "pipeline_records"]

TRITON_METRICS_TEMPLATE = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="retail_pipeline",version="1"}} {req}
nv_inference_request_success{{model="yolov8n",version="1"}} {req}
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="yolov8n",reason="REJECTED",version="1"}} 0
nv_inference_request_failure{{model="yolov8n",reason="BACKEND",version="1"}} 1
# HELP nv_inference_count Number of inferences performed (does not include cached requests)
# TYPE nv_inference_count counter
nv_inference_count{{model="retail_pipeline",version="1"}} {req}
nv_inference_count{{model="yolov8n",version="1"}} {req}
# HELP nv_inference_exec_count Number of model executions performed (does not include cached requests)
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="retail_pipeline",version="1"}} {req}
nv_inference_exec_count{{model="yolov8n",version="1"}} {execs}
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="retail_pipeline",version="1"}} {queue_us}
nv_inference_queue_duration_us{{model="yolov8n",version="1"}} {queue_us}
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="retail_pipeline",version="1"}} {compute_us}
nv_inference_compute_infer_duration_us{{model="yolov8n",version="1"}} {compute_us}
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="yolov8n",version="1"}} 2
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{{gpu_uuid="GPU-5e9f1c2a"}} 0.42
nv_gpu_memory_used_bytes{{gpu_uuid="GPU-5e9f1c2a"}} 1.2e+09
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.31
nv_cpu_memory_used_bytes 2.1e+09
"""


def pipeline_records(t0: float, seconds: float = 300.0, streams: tuple[str, ...] = ("cam-entrance-1", "cam-checkout-1"),
                     fps: float = 5.0, seed: int = 0, people: int = 4) -> list[list]:
    """Batches of records as a pipeline emits them, one batch per frame tick (all streams).

    Every record type appears: detections (people + carts, tracked), queue metrics per
    lane, zone occupancy, footfall, heatmap summaries, finished journeys (several closed
    on the same frame, as a flush does), raised/cleared alerts, stream health, and Triton
    metrics (Prometheus text as Triton 2.5x prints it, parsed by the real parser).
    """
    import random

    from analytics.records import (
        AlertRecord,
        DetectionRecord,
        FootfallRecord,
        HeatmapRecord,
        Hotspot,
        JourneyRecord,
        QueueMetricsRecord,
        StreamHealthRecord,
        ZoneOccupancyRecord,
    )
    from monitoring.triton_metrics import TritonMetricsParser

    rng = random.Random(seed)
    triton = TritonMetricsParser()
    batches: list[list] = []
    n_frames = int(seconds * fps)
    journey = 0
    for i in range(n_frames):
        t = t0 + i / fps
        batch: list = []
        for s_idx, sid in enumerate(streams):
            for k in range(rng.randint(max(people - 2, 0), people + 2)):
                batch.append(DetectionRecord(sid, i, t, "person", 0.5 + 0.4 * rng.random(), 100 + 50 * k, 200,
                                             60, 160, 1000 * s_idx + k))
            if i % 3 == 0:
                batch.append(DetectionRecord(sid, i, t, "shopping_cart", 0.7, 300, 250, 90, 80, None))
            sec = i % int(fps) == 0
            if sec and (i // int(fps)) % 5 == 0:  # every 5 s
                for lane in ("checkout-1", "checkout-2"):
                    batch.append(QueueMetricsRecord(lane, sid, t, rng.randint(0, 6), 60 + 100 * rng.random(),
                                                    200 + 100 * rng.random(), 1.0 + rng.random(), rng.randint(0, 1)))
                for zone in ("entrance", "aisle-1", "checkout"):
                    batch.append(ZoneOccupancyRecord(sid, t, zone, rng.randint(0, 8), rng.randint(0, 3),
                                                     rng.randint(0, 3)))
                batch.append(FootfallRecord(sid, t, "door", rng.randint(0, 4), rng.randint(0, 4), rng.randint(0, 20)))
            if sec and (i // int(fps)) % 10 == 0:  # every 10 s
                batch.append(StreamHealthRecord(sid, t, fps - rng.random(), 30 + 5 * rng.random(), 60.0, i, i // 50,
                                                0, 0, {"frames_read": i + 1, "bytes_per_frame": 51234.5}))
            if sec and (i // int(fps)) % 60 == 0:  # every minute
                grid = [[rng.random() * (c % 7 == 0) for c in range(96)] for _ in range(54)]
                batch.append(HeatmapRecord(sid, (96, 54), 20, grid, (Hotspot(0.15, 0.85, 0.95), Hotspot(0.5, 0.5, 0.6)),
                                           timestamp=t))
            if sec and (i // int(fps)) % 20 == 7:  # journeys close in pairs on the same frame
                for _ in range(2):
                    journey += 1
                    zones = ("entrance", "aisle-1", "checkout") if journey % 2 else ("entrance", "aisle-1")
                    batch.append(JourneyRecord(f"journey-{journey:06d}", journey, sid, t - 300, t, zones,
                                               {z: 30.0 + 10 * j for j, z in enumerate(zones)}, journey % 2 == 1,
                                               journey % 3 == 0))
            if sec and (i // int(fps)) % 30 == 15:
                batch.append(AlertRecord(f"alert-{i}-{sid}", sid, t, "queue_length", "warning",
                                         "queue at checkout-1 is long", 7.0, 5.0, "checkout-1", "raised"))
                batch.append(AlertRecord(f"alert-{i}-{sid}-c", sid, t + 0.5, "queue_length", "warning",
                                         "queue at checkout-1 back to normal", 3.0, 5.0, "checkout-1", "cleared"))
        if i % int(10 * fps) == 0:  # Triton scrape every 10 s
            req = 1 + i * len(streams)
            text = TRITON_METRICS_TEMPLATE.format(req=req, execs=max(req // 3, 1), queue_us=req * 850,
                                                  compute_us=req * 12000)
            batch.extend(triton.points(text, t))
        batches.append(batch)
    return batches
