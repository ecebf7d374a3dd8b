"""Dated JSON files: where a day's seed files live, and deleting the expired ones.

    day = utc_day(record.timestamp)                     # datetime.date, UTC
    path = day_file(out, day, "journeys.json")          # out/2026-12-06/journeys.json
    deleted = expire(out, {"journeys.json": 90, ...}, today=utc_day(time.time()),
                     keep={day})                        # -> the paths deleted, one log line each

Layout: one directory per UTC day, named ``YYYY-MM-DD``, holding the seed's file names
unchanged (``detections.json``, ``journeys.json``, ``queue_metrics.json``, ``heatmap.json``,
``alerts.json``), each a JSON array in the seed's schema. Any tool that reads "a
directory of seed files" reads a day directory as it is.

Expiry rule: with a period of N days (N > 0) a file of day D is deleted once D < today - N,
i.e. when even its newest possible record (D 23:59:59 UTC) is more than N days old. So
nothing is deleted younger than N days, nothing is kept older than N + 1 days. N = 0 keeps
the type forever.

What ``expire`` may delete, and nothing else: regular files (not links) whose name is one
of the seed names given, inside directories of ``output_dir`` itself (not links) whose name
is a valid ``YYYY-MM-DD`` date. A day directory left empty is removed (``rmdir``: only
when empty). Days in ``keep`` (the days the sink has written in this run) are never
touched. Other files, other directories and anything outside ``output_dir`` stay.

Imports: the standard library only.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger("sinks.json_files")

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def utc_day(ts: float) -> dt.date:
    """The UTC calendar day of a Unix timestamp."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def day_dir(output_dir: Path, day: dt.date) -> Path:
    return output_dir / day.isoformat()


def day_file(output_dir: Path, day: dt.date, name: str) -> Path:
    return day_dir(output_dir, day) / name


def dated_dirs(output_dir: Path) -> list[tuple[dt.date, Path]]:
    """``(day, directory)`` of the day directories directly in ``output_dir``, oldest first."""
    out = []
    try:
        entries = list(output_dir.iterdir())
    except FileNotFoundError:
        return []
    for p in entries:
        if not DAY_RE.match(p.name) or p.is_symlink() or not p.is_dir():
            continue
        try:
            out.append((dt.date.fromisoformat(p.name), p))
        except ValueError:  # 2026-13-45: not a day, not ours
            continue
    return sorted(out)


def expire(output_dir: Path, days_by_name: Mapping[str, int], today: dt.date,
           keep: Iterable[dt.date] = ()) -> list[Path]:
    """Delete the expired seed files of ``output_dir``'s day directories (rule in the module
    docstring); returns the deleted paths. An error on one file is logged, the rest go on."""
    keep = set(keep)
    deleted: list[Path] = []
    for day, d in dated_dirs(output_dir):
        if day in keep:
            continue
        for name, days in days_by_name.items():
            if days <= 0 or day >= today - dt.timedelta(days=days):
                continue
            p = d / name
            if p.is_symlink() or not p.is_file():
                continue
            try:
                p.unlink()
            except OSError as e:
                log.error("retention: cannot delete %s: %s", p, e)
                continue
            deleted.append(p)
            log.info("retention: deleted %s (day %s is older than %d day(s) before %s, UTC)",
                     p, day.isoformat(), days, today.isoformat())
        try:
            d.rmdir()  # only when empty: other files keep the directory
            log.info("retention: removed the empty day directory %s", d)
        except OSError:
            pass
    return deleted
