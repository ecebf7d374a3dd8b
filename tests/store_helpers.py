"""Hand-made store-level records (issue 17: visits across cameras) for the sink and dashboard tests."""
from __future__ import annotations

from analytics.records import (
    CameraJourneyRecord,
    FloorHeatmapRecord,
    Hotspot,
    JourneyRecord,
    StoreKpiRecord,
    VisitRecord,
)


def visit(i: int, t: float, store_cams=("cam-entrance-1", "cam-checkout-1"), converted: bool = True) -> VisitRecord:
    return VisitRecord(f"visit-{i:06d}", i, store_cams[0], t - 120.0, t, ("entrance", "aisle-1", "checkout"),
                       {"entrance": 10.0, "aisle-1": 60.0, "checkout": 40.0}, converted, i % 2 == 0,
                       cameras=tuple(store_cams), tracklets=tuple(f"{c}:{i}" for c in store_cams), closed_by="door")


def camera_journey(i: int, t: float, cam: str = "cam-checkout-1") -> CameraJourneyRecord:
    return CameraJourneyRecord(JourneyRecord(f"journey-{cam}-{i}", i, cam, t - 50.0, t, ("checkout",),
                                             {"checkout": 40.0}, True, False))


def kpis(t: float, store: str = "store-1", visits: int = 4, converted: int = 1) -> StoreKpiRecord:
    return StoreKpiRecord(store, t, 60.0, visits, converted, 95.5, 7,
                          (("entrance>aisle-1>checkout", 3), ("entrance>aisle 2,b=c", 1)))


def floor_heatmap(t: float, store: str = "store-1") -> FloorHeatmapRecord:
    return FloorHeatmapRecord(store, t, (3, 2), 0.5, (1.0, 2.0), [[0.0, 0.25, 1.0], [0.5, 0.0, 0.0]],
                              (Hotspot(0.8333, 0.25, 1.0), Hotspot(0.1667, 0.75, 0.5)))


def store_records(t0: float, seconds: float = 300.0, every_s: float = 60.0, store: str = "store-1") -> list[list]:
    """Batches as a store-level linker emits them: per window, finished visits and their camera
    journeys, the store KPIs and the floor heatmap."""
    out, i, t = [], 0, t0 + every_s
    while t <= t0 + seconds:
        batch: list = []
        for k in range(3):
            i += 1
            batch += [camera_journey(i, t - 5 - k, "cam-entrance-1"), camera_journey(i, t - k),
                      visit(i, t - k, converted=k != 1)]
        batch += [kpis(t, store, visits=3, converted=2), floor_heatmap(t, store)]
        out.append(batch)
        t += every_s
    return out
