"""Peak resident memory of one run, also when a launcher (joblib, submitit) runs several jobs in one process.

`getrusage`'s ru_maxrss is the peak over the process's whole life, so a job run after a larger one in the same
worker would report the larger job's peak. Linux keeps a resettable high-water mark (VmHWM in /proc/self/status,
reset by writing 5 to /proc/self/clear_refs): `reset_peak_rss` at the start of a run, `peak_rss_mib` at its end."""

from __future__ import annotations

import resource
from pathlib import Path

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")
_AT_RESET: dict[str, float] = {}  # the RSS when the mark was last reset: what the process held before this run


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark to its current RSS; False where the system cannot (then peaks are lifetime)."""
    _AT_RESET["rss_at_start_mib"] = _status_mib("VmRSS") or 0.0
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def run_memory() -> dict[str, float]:
    """peak_rss_mib of this run, and rss_at_start_mib: what a reused launcher worker already held when it began."""
    return {"peak_rss_mib": peak_rss_mib(), **_AT_RESET}


def _status_mib(field: str) -> float | None:
    """A `field:  N kB` line of /proc/self/status in MiB (None where there is no such file or line)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """The peak RSS since the last reset (VmHWM), or the lifetime peak (ru_maxrss) where /proc has no VmHWM."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
