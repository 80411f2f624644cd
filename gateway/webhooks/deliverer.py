"""The webhook deliverer: takes due messages from the outbox and POSTs them, signed.

Every replica runs one. A message is claimed with a lease (the store's), so replicas never send
it at once; an attempt answered 2xx delivers it, anything else schedules the next attempt after
the configured back-off (Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then it
gives up (listed by GET /admin/webhooks/failed). Every attempt carries the same webhook-id and
is signed afresh (a new webhook-timestamp, the key's current secret).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import aiohttp

from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.followups import WebhookDelivery, WebhookState
from gateway.webhooks import signing
from gateway.webhooks.addresses import PrivateAddress, PublicResolver, check_public
from gateway.webhooks.outbox import key_webhook

USER_AGENT = "seedance-gateway-webhooks"
log = get_logger("gateway.webhooks")


class Deliverer:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._config = services.config.webhooks
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(self) -> None:
        config = self._config
        connector = aiohttp.TCPConnector(
            resolver=None if config.allow_private else PublicResolver(), limit=config.concurrency)
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers={"user-agent": USER_AGENT}) as session:
            while True:
                try:
                    await self.tick(session)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a store hiccup: the next tick tries again
                    log.exception("webhook_tick_failed")
                await asyncio.sleep(config.tick)

    async def tick(self, session: aiohttp.ClientSession) -> None:
        now = self._services.clock()
        due = await self._services.store.claim_webhooks(
            now, self.holder, now + self._config.lease, self._config.batch)
        if due:
            await asyncio.gather(*(self.attempt(session, d) for d in due))

    async def attempt(self, session: aiohttp.ClientSession, delivery: WebhookDelivery) -> None:
        services = self._services
        _, secret = await key_webhook(services, delivery.owner)
        error: str | None = None
        give_up = False
        if secret is None:
            error, give_up = "the key has no webhook secret", True
        else:
            headers = signing.headers(secret, delivery.message_id, int(services.clock()),
                                      delivery.body)
            try:
                if not self._config.allow_private:
                    # aiohttp skips the resolver for an address literal: check it here too.
                    await check_public(delivery.url)
                async with session.post(delivery.url, data=delivery.body, headers=headers,
                                        allow_redirects=False) as response:
                    await response.read()
                    if not 200 <= response.status < 300:
                        error = f"HTTP {response.status}"
            except PrivateAddress as exc:
                error, give_up = str(exc), True
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = type(exc).__name__
                if isinstance(exc.__cause__, PrivateAddress) or isinstance(
                        exc.__context__, PrivateAddress):
                    error, give_up = str(exc.__cause__ or exc.__context__), True
        attempts = delivery.attempts + 1
        schedule = self._config.retry_schedule
        state: WebhookState
        if error is None:
            state, next_at = "delivered", services.clock()
        elif give_up or attempts > len(schedule):
            state, next_at = "failed", services.clock()
        else:
            state, next_at = "pending", services.clock() + schedule[attempts - 1]
        settled = await services.store.settle_webhook(
            delivery.message_id, self.holder, state=state, attempts=attempts, next_at=next_at,
            last_error=error)
        outcome = {"pending": "retry"}.get(state, state)
        services.metrics.webhook_deliveries.labels(delivery.kind, outcome).inc()
        log.info("webhook_attempt", message_id=delivery.message_id, task_id=delivery.task_id,
                 kind=delivery.kind, attempt=attempts, outcome=outcome, error=error,
                 settled=settled)
