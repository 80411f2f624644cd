"""Which task on Ark's list could be the one a create with a lost answer made."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tasks.lost_creates import matches

MODEL = "doubao-seedance-2-0-fast-260128"


@pytest.mark.parametrize(("asked", "listed", "same"), [
    ({"resolution": "720p", "ratio": "16:9", "duration": 5},
     {"resolution": "720p", "ratio": "16:9", "duration": 5, "seed": 11}, True),
    ({"ratio": "adaptive", "duration": -1, "seed": -1},
     {"ratio": "9:16", "duration": 7, "seed": 11}, True),
    ({}, {"resolution": "1080p", "ratio": "1:1"}, True),  # Ark's defaults: anything goes
    ({"resolution": "480p"}, {"resolution": "720p"}, False),
    ({"ratio": "16:9"}, {"ratio": "9:16"}, False),
    ({"duration": 5}, {"duration": 10}, False),
    ({"frames": 121}, {"duration": 5}, True),  # Ark answers frames only when asked for them
    ({"seed": 42}, {"seed": 43}, False),
    ({"generate_audio": False}, {"generate_audio": True}, False),
    ({"service_tier": "flex"}, {"service_tier": "default"}, False),
    ({"safety_identifier": "u1"}, {"safety_identifier": "u2"}, False),
    ({"output_format": "mov"}, {}, True),  # not echoed: cannot tell them apart
])
def test_which_listed_tasks_could_be_a_lost_create(asked: dict[str, Any],
                                                   listed: dict[str, Any], same: bool) -> None:
    assert matches(listed, {"model": MODEL, "content": [], **asked}) is same
