"""The objects every request handler needs, built once per app and passed as one value."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.auth import ClientKeys
from gateway.catalog import Catalogue, ModelSpec
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.store.base import TaskRecord, TaskStore
from gateway.upstream import Upstream


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    catalogue: Catalogue
    client_keys: ClientKeys
    upstreams: dict[str, Upstream]
    store: TaskStore
    clock: Callable[[], float] = field(default=time.time)

    def upstream_for(self, spec: ModelSpec) -> Upstream:
        return self.upstreams[spec.upstream]

    def upstream_of(self, record: TaskRecord) -> Upstream:
        upstream = self.upstreams.get(record.upstream)
        if upstream is None or not upstream.has_key(record.upstream_key):
            # The task was created through an upstream or key that is no longer configured.
            raise GatewayError(
                410, "UpstreamKeyRemoved",
                "This task was created with an upstream key that is no longer configured.",
            )
        return upstream
