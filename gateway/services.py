"""The objects every request handler needs, built once per app and passed as one value."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.catalog import Catalogue, ModelSpec
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.keys.auth import ClientIdentity, ClientKeys
from gateway.keys.policy import Policy
from gateway.observability.metrics import Metrics
from gateway.observability.middleware import note
from gateway.store.base import GatewayStore, TaskRecord
from gateway.tasks.inflight import Fetches
from gateway.upstream import Upstream

if TYPE_CHECKING:
    from gateway.results.archiver import Archiver


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    catalogue: Catalogue
    client_keys: ClientKeys
    upstreams: dict[str, Upstream]
    store: GatewayStore
    metrics: Metrics
    policy: Policy
    clock: Callable[[], float] = field(default=time.time)
    fetches: Fetches = field(default_factory=Fetches)  # upstream GETs in flight, shared by polls
    archive: Archiver | None = None  # the result archive (gateway/results/), unless turned off

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


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def caller_of(request: Request, services: Services) -> ClientIdentity:
    """The authenticated client key behind a request (401 if none); the pipeline applies its
    policy."""
    identity = await services.client_keys.authenticate(request.headers.get("authorization"))
    note(client_key=identity.name)
    return identity


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id
