"""The webhook deliverer: takes due messages from the outbox and POSTs them, signed.

Every replica runs one. A message is claimed with a lease (the store's), so replicas never send
it at once; an attempt answered 2xx delivers it, anything else schedules the next attempt after
the configured back-off (Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then it
gives up (listed by GET /admin/webhooks/failed). Every attempt carries the same webhook-id and
is signed afresh (a new webhook-timestamp, the key's current secret).

Attempts run as tasks of their own, at most `concurrency` at once: a receiver that never
answers holds one slot until the timeout, not the outbox. Now and then (PRUNE_EVERY) the
deliverer has the store forget messages delivered more than KEEP_SECONDS ago.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import uuid

import aiohttp

from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.followups import KEEP_SECONDS, WebhookDelivery, WebhookState
from gateway.webhooks import signing
from gateway.webhooks.addresses import PrivateAddress, PublicResolver, check_public
from gateway.webhooks.outbox import key_webhook

USER_AGENT = "seedance-gateway-webhooks"
# Seconds between prunes of old delivered messages, per replica: a delete by index, rarely.
PRUNE_EVERY = 3600.0
log = get_logger("gateway.webhooks")


class Deliverer:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._config = services.config.webhooks
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sending: set[asyncio.Task[None]] = set()
        self._pruned_at = -math.inf

    async def run(self) -> None:
        config = self._config
        connector = aiohttp.TCPConnector(
            resolver=None if config.allow_private else PublicResolver(), limit=config.concurrency)
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers={"user-agent": USER_AGENT}) as session:
            try:
                while True:
                    try:
                        await self.tick(session)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # a store hiccup: the next tick tries again
                        log.exception("webhook_tick_failed")
                    await asyncio.sleep(config.tick)
            finally:
                # Stopping: attempts cut short go again when their lease runs out.
                for task in self._sending:
                    task.cancel()
                await asyncio.gather(*self._sending, return_exceptions=True)

    async def tick(self, session: aiohttp.ClientSession) -> None:
        """Prune if it is time, then start attempts for due messages, as many as slots are
        free; returns without waiting for them."""
        services, config = self._services, self._config
        now = services.clock()
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now  # a failing prune waits for the next turn too
            pruned = await services.store.prune_webhooks(now - KEEP_SECONDS)
            if pruned:
                log.info("webhooks_pruned", count=pruned)
        free = min(config.batch, config.concurrency - len(self._sending))
        if free <= 0:
            return
        for delivery in await services.store.claim_webhooks(now, self.holder,
                                                            now + config.lease, free):
            task = asyncio.create_task(self._send(session, delivery))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, session: aiohttp.ClientSession, delivery: WebhookDelivery) -> None:
        try:
            await self.attempt(session, delivery)
        except Exception:  # e.g. the store failed to settle it: it goes again after the lease
            log.exception("webhook_attempt_failed", message_id=delivery.message_id)

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
