"""The bundled benchmark files are the real, unmodified copies their manifest names."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.tasks import datasets_dir

MANIFEST = json.loads((datasets_dir() / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("relpath", sorted(MANIFEST["files"]))
def test_bundled_file_matches_manifest(relpath: str) -> None:
    entry = MANIFEST["files"][relpath]
    data = (datasets_dir() / relpath).read_bytes()
    assert len(data) == entry["bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_every_licence_notice_ships() -> None:
    assert (datasets_dir() / "SOURCES.md").is_file()
    assert (datasets_dir() / "stsb" / "LICENSE.txt").is_file()


def test_sst2_loads_through_datasets_with_official_row_counts() -> None:
    from core.tasks import get_task

    sst2 = get_task("sst2")
    assert sst2.load("dev").num_rows == 872
    assert sst2.load("train").num_rows == 67_349
