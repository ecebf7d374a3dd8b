"""Alert rules on the metrics: threshold, hysteresis, hold time, cooldown, severity.

For each (rule, target) the engine raises an alert once the value has stayed at or above
``threshold`` for ``for_s``, clears it once the value falls below ``clear_below`` (the
hysteresis band stops a value hovering at the threshold from flapping), and raises no
new alert for ``cooldown_s`` after a clear. Raising and clearing both emit an
``AlertRecord`` (``state`` raised / cleared).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from analytics.config import AlertRule
from analytics.records import AlertRecord

_DEFAULT_MSG = {"queue_length": "{target}: queue of {value:.0f} (threshold {threshold:g})",
                "wait_time": "{target}: wait of {value:.0f} s (threshold {threshold:g} s)",
                "occupancy": "{target}: {value:.0f} people (threshold {threshold:g})",
                "dwell": "{target}: dwell of {value:.0f} s (threshold {threshold:g} s)"}


@dataclass
class _State:
    active: bool = False
    above_since: float | None = None
    cleared_at: float | None = None
    alert_id: str = ""


class AlertEngine:
    def __init__(self, stream_id: str, rules: Sequence[AlertRule], next_id: Callable[[], str]) -> None:
        self.stream_id = stream_id
        self.rules = [r for r in rules if not r.cameras or stream_id in r.cameras]
        self.next_id = next_id
        self._state: dict[tuple[str, str], _State] = {}

    def wants(self, alert_type: str) -> bool:
        return any(r.type == alert_type for r in self.rules)

    def observe(self, t: float, alert_type: str, target: str, value: float) -> list[AlertRecord]:
        out = []
        for r in self.rules:
            if r.type != alert_type or (r.target is not None and r.target != target):
                continue
            st = self._state.setdefault((r.rule_id, target), _State())
            if st.active:
                if value < r.clear_below:
                    st.active, st.above_since, st.cleared_at = False, None, t
                    out.append(self._record(r, st, t, target, value, "cleared"))
                continue
            if value >= r.threshold:
                if st.above_since is None:
                    st.above_since = t
                cooling = st.cleared_at is not None and t - st.cleared_at < r.cooldown_s
                if t - st.above_since >= r.for_s and not cooling:
                    st.active, st.alert_id = True, self.next_id()
                    out.append(self._record(r, st, t, target, value, "raised"))
            else:
                st.above_since = None
        return out

    def _record(self, r: AlertRule, st: _State, t: float, target: str, value: float, state: str) -> AlertRecord:
        tmpl = r.message or _DEFAULT_MSG[r.type]
        try:
            msg = tmpl.format(target=target, value=value, threshold=r.threshold, camera=self.stream_id)
        except (KeyError, IndexError, ValueError):
            msg = tmpl  # a user template with unknown fields still says something
        if state == "cleared":
            msg = f"cleared: {msg}"
        return AlertRecord(st.alert_id, self.stream_id, t, r.type, r.severity, msg, value, r.threshold,
                           target, state)
