"""Live store configuration: watch the store config file and swap the changed cameras' analytics.

    watch = StoreWatch(store, StoreAnalytics(store), poll_s=2.0)
    watch.register(tracked_camera)        # every stream's TrackedCamera (clients.app's factory does it)
    task = asyncio.create_task(watch.run())   # the runner: poll the file every poll_s (0: never)
    watch.request("SIGHUP")               # check now (the runner's SIGHUP handler)
    watch.stats()                         # {"applied", "refused", "unchanged", "cameras_replaced", ...}

Contract:

- What is watched: ``store.path``, the file ``analytics.store_config`` of the app config
  points at. ``run()`` stats it every ``poll_s`` seconds (mtime, size, inode: an editor's
  in-place save and an atomic rename are both seen); a changed file is read once it has
  stayed the same for ``settle_s`` (a half-written file is not taken for an edit). A
  ``request`` reads it at once, changed or not. Nothing here runs per frame.
- A valid edit (``analytics.config.load_store_config``) is compared camera by camera
  (``analytics.changes.store_changes``). Each running stream whose camera changed gets
  fresh analytics from the new config (``StoreAnalytics.fresh``: journey/alert ids continue),
  staged on its ``TrackedCamera``: they take over before that stream's next frame, and the
  old ones are flushed then (their open journeys close, records go to the sinks). A camera
  added to the file for a running stream that had none gets analytics the same way; a camera
  removed from the file has its analytics flushed and stopped (the stream stays tracked:
  detection records only, like a stream that is no camera of the store). Streams whose
  camera did not change keep their analytics object: nothing is flushed or reset. Cameras
  that are no stream of this process only update the config that later swaps are built from.
- An invalid edit (YAML syntax, unknown field, bad polygon, a missing file...) is refused:
  the ``ConfigError`` message (file, field, value) is logged once per version of the file,
  and the running configuration stays in force, also as the base of the next comparison.
- Counted (``stats()``, in the health file and the run summary): ``applied`` (valid versions
  that changed something), ``refused`` (invalid versions), ``unchanged`` (valid, nothing
  that shapes any camera's analytics differed: a comment, the store's name), and
  ``cameras_replaced`` (swaps done at frame boundaries), plus ``pending`` (staged, waiting
  for a frame) and ``last_error`` (the refusal in force; None once a valid version is read).

All methods run on the event loop's thread (the runner's), like the cameras' ``process``.
May import: analytics (config, changes, pipeline), clients.camera, the standard library.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from analytics.changes import store_changes
from analytics.config import ConfigError, StoreConfig, load_store_config
from analytics.pipeline import StoreAnalytics
from clients.camera import TrackedCamera

log = logging.getLogger("clients.store_watch")

DEFAULT_POLL_S = 2.0
SETTLE_S = 0.3  # a changed file must stay unchanged this long before it is read
MAX_SETTLE_ROUNDS = 20  # ... but a file that keeps changing is read after this many rounds anyway

Signature = tuple  # (mtime_ns, size, inode), or (None,) for a file that cannot be stat'ed


def file_signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return (None,)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class StoreWatch:
    """See the module docstring. ``store``: the configuration running now (its ``path`` is
    watched); ``analytics``: the ``StoreAnalytics`` the running cameras' analytics came from."""

    def __init__(self, store: StoreConfig, analytics: StoreAnalytics, poll_s: float = DEFAULT_POLL_S,
                 settle_s: float = SETTLE_S) -> None:
        self.store = store
        self.path = Path(store.path)
        self.analytics = analytics
        self.poll_s = float(poll_s)
        self.settle_s = float(settle_s)
        self.cameras: dict[str, TrackedCamera] = {}
        self.applied = self.refused = self.unchanged = 0
        self.last_error: str | None = None
        self._sig = file_signature(self.path)  # the version running now
        self._refused_sig: Signature | None = None
        self._wake = asyncio.Event()
        self._reason = ""

    def register(self, camera: TrackedCamera) -> None:
        """A running stream (its id is its camera id in the store config)."""
        self.cameras[camera.stream_id] = camera

    # ------------------------------------------------------------------ the loop

    def request(self, reason: str) -> None:
        """Check the file now (e.g. ``"SIGHUP"``), changed or not."""
        self._reason = reason
        self._wake.set()

    async def run(self) -> None:
        """Poll every ``poll_s`` and serve ``request``s until cancelled."""
        while True:
            reason = await self._next()
            if reason == "poll":
                sig = file_signature(self.path)
                if sig == self._sig or sig == self._refused_sig:
                    continue
                if not await self._settled(sig):
                    continue  # a request came meanwhile: served next round
            try:
                self.check(reason)
            except Exception:  # noqa: BLE001 (a bug here must not end the watch, nor the run)
                log.exception("%s: store config check failed", self.path)

    async def _next(self) -> str:
        try:
            await asyncio.wait_for(self._wake.wait(), self.poll_s if self.poll_s > 0 else None)
        except asyncio.TimeoutError:
            return "poll"
        self._wake.clear()
        return self._reason or "request"

    async def _settled(self, sig: Signature) -> bool:
        """Wait until the file stays as it is for ``settle_s``; False when a request came meanwhile."""
        for _ in range(MAX_SETTLE_ROUNDS):
            await asyncio.sleep(self.settle_s)
            if self._wake.is_set():
                return False
            now = file_signature(self.path)
            if now == sig:
                return True
            sig = now
        return True

    # ------------------------------------------------------------------ one check

    def check(self, reason: str = "request") -> str:
        """Read the file and apply it: ``"applied"``, ``"unchanged"``, ``"refused"``, or
        ``"same"`` (a poll of the version running or last refused: nothing read)."""
        sig = file_signature(self.path)
        if reason == "poll" and sig in (self._sig, self._refused_sig):
            return "same"
        try:
            new = load_store_config(self.path)
        except ConfigError as e:
            return self._refuse(e, sig, reason)
        self._sig, self._refused_sig, self.last_error = sig, None, None
        changes = store_changes(self.store, new)
        old, self.store = self.store, new
        self.analytics.reconfigure(new)
        if not changes:
            self.unchanged += 1
            log.info("%s: store config read (%s): nothing that shapes a camera's analytics changed; "
                     "every camera keeps running as it was", self.path, reason)
            return "unchanged"
        self.applied += 1
        self._stage(changes, old, reason)
        return "applied"

    def _refuse(self, e: ConfigError, sig: Signature, reason: str) -> str:
        if sig == self._refused_sig:  # the same bad version again (a repeated SIGHUP): said already
            log.info("%s: %s: still the refused version (%s); the running configuration stays in force",
                     self.path, reason, self.last_error)
            return "refused"
        self._refused_sig = sig
        self.refused += 1
        self.last_error = str(e)
        log.error("store config edit refused (%s): %s; the running configuration stays in force", reason, e)
        return "refused"

    def _stage(self, changes: dict[str, list[str]], old: StoreConfig, reason: str) -> None:
        done, elsewhere = [], []
        for cid, parts in changes.items():
            cam = self.cameras.get(cid)
            if cam is None:
                elsewhere.append(cid)
                continue
            why = ", ".join(parts)
            cam.stage(self.analytics.fresh(cid), why)
            what = {"added": "analytics start", "removed": "analytics flush and stop (tracked only)"}.get(
                parts[0], "fresh analytics")
            done.append(f"{cid} ({why}: {what})")
        kept = [cid for cid in self.cameras if cid not in changes and cid in old.cameras]
        log.info("%s: store config reloaded (%s): %s at the next frame; unchanged: %s%s", self.path, reason,
                    "; ".join(done) or "no running stream affected", ", ".join(kept) or "none",
                    f"; changed, not streamed here: {', '.join(elsewhere)}" if elsewhere else "")

    # ------------------------------------------------------------------ reporting

    def stats(self) -> dict:
        return {"store_config": str(self.path), "poll_s": self.poll_s, "applied": self.applied,
                "refused": self.refused, "unchanged": self.unchanged,
                "cameras_replaced": sum(len(c.swaps) for c in self.cameras.values()),
                "pending": sorted(cid for cid, c in self.cameras.items() if c.staged),
                "last_error": self.last_error}
