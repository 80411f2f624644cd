"""The one place that talks to an Ark-compatible upstream: task calls and result files."""

from gateway.upstream.client import TASKS_PATH, Upstream, UpstreamReply
from gateway.upstream.files import UpstreamFile

__all__ = ["TASKS_PATH", "Upstream", "UpstreamFile", "UpstreamReply"]
