"""Peak resident memory of one run, also when a launcher (joblib, submitit) runs several jobs in one process.

`getrusage`'s ru_maxrss is the peak over the process's whole life, so a job run after a larger one in the same
worker would report the larger job's peak. Linux keeps a resettable high-water mark (VmHWM in /proc/self/status,
reset by writing 5 to /proc/self/clear_refs): `reset_peak_rss` at the start of a run, `peak_rss_mib` at its end."""

from __future__ import annotations

import resource
from pathlib import Path

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark to its current RSS; False where the system cannot (then peaks are lifetime)."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The peak RSS since the last reset (VmHWM), or the lifetime peak (ru_maxrss) where /proc has no VmHWM."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
