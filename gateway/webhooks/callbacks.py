"""A native create's `callback_url`: kept by the gateway, never forwarded to Ark.

Ark would POST its task object there, unsigned, from the internet; the gateway does it itself
when the task reaches a final status (gateway/webhooks/outbox.py), signed with the key's
webhook secret, so it works behind NAT and the receiver can verify it.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError, invalid_parameter
from gateway.services import Services
from gateway.webhooks.addresses import PrivateAddress, check_public, url_problem
from gateway.webhooks.signing import new_secret


async def take_callback(services: Services, owner: str, body: dict[str, Any]) -> str | None:
    """Removes `callback_url` from the create body; returns it once checked (or None)."""
    url = body.pop("callback_url", None)
    if url is None:
        return None
    problem = url_problem(url) if isinstance(url, str) else "must be an http:// or https:// URL"
    if problem is not None:
        raise invalid_parameter("callback_url", problem)
    if not services.config.webhooks.allow_private:
        try:
            await check_public(url)
        except PrivateAddress as exc:
            raise invalid_parameter("callback_url", f"{exc}; callbacks may not target this "
                                    "network") from None
    await _ensure_secret(services, owner)
    return str(url)


async def _ensure_secret(services: Services, owner: str) -> None:
    """Callbacks are signed with the key's webhook secret: a stored key without one gets one
    (the admin reads it with GET /admin/keys/{name}/webhook-secret)."""
    for key in services.config.client_keys:
        if key.name == owner:
            if key.webhook_secret is None:
                raise GatewayError(
                    400, "InvalidParameter", "The parameter `callback_url` needs a webhook "
                    "secret to sign callbacks: set webhook_secret for this key in the config.",
                    param="callback_url")
            return
    record = await services.store.get_key(owner)
    if record is not None and record.webhook_secret is None:
        record.webhook_secret = new_secret()
        await services.store.put_key(record)
