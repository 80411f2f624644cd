"""What a failed upstream call means for the caller: 502 or 504, and whether a retry is safe.

A create that failed *after* its request may have reached the upstream may have made a task
(and a bill): those answers carry ``x-should-retry: false``, which both official SDKs obey.
Failures before anything was sent (connect, TLS, proxy, DNS) are always safe to retry.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp

from gateway.errors import GatewayError, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable


class NotSent(GatewayError):
    """A call that failed before its request could reach the upstream (connect, TLS, proxy,
    DNS): nothing was created there, so a create may go to another upstream. The caller sees
    the error it wraps."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.status, error.code, error.message, param=error.param,
                         headers=error.headers)


@dataclass(frozen=True, slots=True)
class Failure:
    error: GatewayError  # what the caller sees
    metric_status: str  # the upstream call's `status` label: "timeout" or "error"
    reason: str  # the full cause, for the log only


def classify(exc: BaseException, *, target: str, sent_may_create: bool) -> Failure:
    """The failure for `exc`, raised while calling `target` ("upstream ark", "the result
    file"). `sent_may_create`: the request creates something if it reached the upstream."""
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Failure(NotSent(UpstreamTimeout(f"timed out connecting to {target}",
                                               may_exist=False)), "timeout", reason)
    if isinstance(exc, TimeoutError):  # sock_read or the total budget: the request went out
        return Failure(UpstreamTimeout(f"{target} did not answer in time",
                                       may_exist=sent_may_create), "timeout", reason)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        detail = getattr(cause, "verify_message", None) or str(cause)
        return _unreachable(target, f"TLS certificate verification failed ({detail})", reason)
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        cause = exc.os_error
        detail = cause.reason if isinstance(cause, ssl.SSLError) and cause.reason else str(cause)
        return _unreachable(target, f"TLS handshake failed ({detail})", reason)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return _unreachable(target, "could not connect to the proxy", reason)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _unreachable(target, f"the proxy refused the connection (HTTP {exc.status})",
                            reason)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _unreachable(target, "its host name did not resolve", reason)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _unreachable(target, f"connection failed ({exc.os_error.strerror or exc})",
                            reason)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return Failure(UpstreamBadResponse(f"{target} redirected too many times"), "error",
                       reason)
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not valid HTTP
        return Failure(UpstreamBadResponse(f"{target} sent a malformed answer ({exc.message})",
                                           may_exist=sent_may_create), "error", reason)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Failure(UpstreamUnavailable(f"{target} ended its answer early",
                                           may_exist=sent_may_create), "error", reason)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError):
        return Failure(UpstreamBadResponse(f"{target} has an address that is not an http(s) "
                                           "URL"), "error", reason)
    # ServerDisconnectedError, resets: the request may have been read before the close.
    return Failure(UpstreamUnavailable(f"{target} closed the connection",
                                       may_exist=sent_may_create), "error", reason)


def _unreachable(target: str, why: str, reason: str) -> Failure:
    # Nothing reached the upstream: no task can exist, a retry is safe.
    return Failure(NotSent(UpstreamUnavailable(f"could not connect to {target}: {why}",
                                               may_exist=False)), "error", reason)
