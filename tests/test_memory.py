"""Peak memory per run: the high-water mark is reset at a run's start, so a launcher worker that ran a larger job
before does not lend it its peak."""

import sys

import numpy as np
import pytest

from recarena.utils.memory import peak_rss_mib, reset_peak_rss, run_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resettable high-water mark is Linux's")
def test_peak_rss_is_reset_between_runs():
    assert reset_peak_rss()
    before = peak_rss_mib()
    block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
    grown = peak_rss_mib()
    del block
    assert grown - before >= 35
    reset_peak_rss()
    assert peak_rss_mib() < grown - 30  # the earlier peak no longer counts
    held = run_memory()
    assert 0 < held["rss_at_start_mib"] <= held["peak_rss_mib"]
