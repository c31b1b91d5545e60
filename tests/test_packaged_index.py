"""The suites' index that `cnnbench list suites` reads is what loading and expanding each
packaged suite gives, so the fast listing never shows a stale count."""

from __future__ import annotations

import json

from cnnbench import api
from cnnbench.packaged import read_index


def test_the_index_matches_every_packaged_suite():
    expected = api.suite_index()
    assert read_index() == expected, (
        "suites/index.json is stale; write this into it:\n"
        + json.dumps(expected, indent=2, sort_keys=True))


def test_list_suites_shows_the_indexed_counts():
    rows = {row["name"]: row for row in api.suites()}
    assert rows["quickstart"]["runs"] == 40 and rows["quickstart"]["suite"] == "quickstart"
