"""What one worker currently believes about the control state, refreshed on every request.

``ControlState.refresh()`` reads the version counters (one SQLite statement, ~4 µs) and reloads
only the parts whose version moved. Every ``/api/*`` and ``/config/*`` request calls it first, and
a background tick calls it every 200 ms, so a change acknowledged by any worker is in effect in
every worker for the next request it serves (and within 200 ms for what runs without requests:
CPU and memory faults, gauges, the desired-workers file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sut.control.model import FLAG_CATALOG, Fault, Flag, Settings, route_regex
from sut.control.store import ConfigRecord, ControlStore, Versions

__all__ = ["ActiveFault", "ControlState", "Snapshot"]


@dataclass(frozen=True)
class ActiveFault:
    fault: Fault
    route: re.Pattern[str] | None

    def matches(self, path: str, now: float) -> bool:
        if now >= self.fault.expires_at:
            return False
        return self.route is None or self.route.match(path) is not None


@dataclass(frozen=True)
class Snapshot:
    versions: Versions
    config: ConfigRecord
    settings: Settings
    flags: Mapping[str, Flag]
    faults: tuple[ActiveFault, ...]

    def flag(self, name: str) -> bool | str:
        """The flag's value, or its catalogue default (False for unknown names)."""
        found = self.flags.get(name)
        if found is not None:
            return found.value
        known = FLAG_CATALOG.get(name)
        return known.default if known else False

    def live_faults(self, now: float) -> list[Fault]:
        return [a.fault for a in self.faults if now < a.fault.expires_at]

    def held_connections(self, now: float) -> int:
        """Pool connections taken by active pool_exhaustion faults (in every worker)."""
        held = 0
        for fault in self.live_faults(now):
            if fault.kind == "pool_exhaustion":
                wanted = fault.params.get("connections")
                held += self.settings.pool_size if wanted is None else int(wanted)
        return min(held, self.settings.pool_size)


class ControlState:
    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self._snapshot = self._load(store.versions(), None)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> Snapshot:
        versions = self.store.versions()
        if versions != self._snapshot.versions:
            self._snapshot = self._load(versions, self._snapshot)
        return self._snapshot

    def _load(self, versions: Versions, old: Snapshot | None) -> Snapshot:
        if old is None or old.versions.config != versions.config:
            config = self.store.config()
            settings = Settings.from_doc(config.doc)
        else:
            config, settings = old.config, old.settings
        if old is None or old.versions.flags != versions.flags:
            flags: Mapping[str, Flag] = self.store.flags()
        else:
            flags = old.flags
        if old is None or old.versions.faults != versions.faults:
            faults = tuple(ActiveFault(f, _route(f)) for f in self.store.active_faults())
        else:
            faults = old.faults
        # Versions read before the data: a change racing this load shows up as a newer version
        # on the next refresh, never as a newer version paired with older data.
        return Snapshot(versions, config, settings, flags, faults)


def _route(fault: Fault) -> re.Pattern[str] | None:
    pattern = fault.params.get("route")
    return route_regex(str(pattern)) if isinstance(pattern, str) else None
