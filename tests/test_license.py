"""The licence: Apache-2.0, its full text at the root, declared in the package metadata."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte.
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_license_file_is_the_verbatim_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0, January 2004" in text
    assert b"END OF TERMS AND CONDITIONS" in text
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256


def test_pyproject_declares_it_with_pep_639_fields() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    # setuptools reads PEP 639's `license` expression and `license-files` from 77 on.
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
