"""GET /admin/tasks and /admin/stats (what the web console shows an operator), and how the
gateway serves the console's files. Real sockets: a gateway in front of the simulator, on both
stores."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread

pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
ITEM_FIELDS = {"id", "owner", "model", "status", "created_at", "updated_at", "prompt", "tokens",
               "cost", "currency", "video_url", "thumbnail_url"}


@pytest.fixture
def admin_gateway(simulator: ServerThread, start_gateway: GatewayFactory,
                  backend_url: str) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3", store_url=backend_url,
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def create(gateway: ServerThread, key: str, prompt: str) -> str:
    response = httpx.post(gateway.url + "/v1/videos", headers={"Authorization": f"Bearer {key}"},
                          json={"prompt": prompt, "model": "sora-2", "seconds": "4"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def tasks(gateway: ServerThread, **params: Any) -> dict[str, Any]:
    response = httpx.get(gateway.url + "/admin/tasks", headers=ADMIN, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_recent_tasks_merge_every_owner_newest_first_and_page_by_cursor(
        admin_gateway: ServerThread) -> None:
    made = []
    for i in range(5):  # across two seconds at least, so both tie rules are exercised
        made.append(create(admin_gateway, (FAKE_ALICE_KEY, FAKE_BOB_KEY)[i % 2], f"p{i} <b>&"))
        time.sleep(0.3)
    first = tasks(admin_gateway)
    assert first["object"] == "list" and first["has_more"] is False
    # Newest first; one second's tasks by owner name, each owner's own newest first.
    when = {t["id"]: (t["created_at"], t["owner"]) for t in first["data"]}
    order = sorted(made, key=lambda i: (-when[i][0], when[i][1], -made.index(i)))
    assert [t["id"] for t in first["data"]] == order
    item = first["data"][0]
    assert set(item) == ITEM_FIELDS
    item = next(t for t in first["data"] if t["id"] == made[4])
    assert item["owner"] == "alice" and item["model"] == "sora-2"
    assert item["prompt"] == "p4 <b>&" and item["status"] == "queued"
    assert item["video_url"] is None and item["thumbnail_url"] is None

    seen, after = [], None
    while True:
        page = tasks(admin_gateway, limit=2, **({"after": after} if after else {}))
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == order

    bobs = tasks(admin_gateway, owner="bob")
    assert [t["id"] for t in bobs["data"]] == [made[3], made[1]]
    assert tasks(admin_gateway, owner="nobody")["data"] == []
    assert tasks(admin_gateway, after="cgt-unknown")["data"] == []
    refused = httpx.get(admin_gateway.url + "/admin/tasks", headers=ADMIN,
                        params={"limit": "0"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "limit"
    member = httpx.get(admin_gateway.url + "/admin/tasks",
                       headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"})
    assert member.status_code == 401


def test_stats_count_tasks_in_flight_and_today(admin_gateway: ServerThread) -> None:
    create(admin_gateway, FAKE_ALICE_KEY, "one")
    create(admin_gateway, FAKE_BOB_KEY, "two")
    stats = httpx.get(admin_gateway.url + "/admin/stats", headers=ADMIN).json()
    assert stats["object"] == "gateway.stats"
    assert stats["in_flight"] == 2 and stats["today"]["tasks"] == 2
    assert stats["day"] == time.strftime("%Y-%m-%d", time.gmtime())


def test_the_console_is_served_with_its_headers(gateway: ServerThread) -> None:
    root = httpx.get(gateway.url + "/")
    assert root.status_code == 307 and root.headers["location"] == "/console"
    page = httpx.get(gateway.url + "/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, media in (("app.js", "text/javascript"), ("style.css", "text/css")):
        asset = httpx.get(f"{gateway.url}/console/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
        assert "max-age" in asset.headers["cache-control"]
        again = httpx.get(f"{gateway.url}/console/{name}",
                          headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304
    # Nothing is fetched from elsewhere: the page works offline.
    for name in ("index.html", "app.js", "style.css"):
        text = httpx.get(f"{gateway.url}/console/{name}").text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and "innerHTML" not in text
    assert httpx.get(gateway.url + "/console/nope.js").status_code == 404
