"""Bottom layer: running the real engine binaries (find them, check content, replay pcaps).

Every stage that needs an engine uses these: ``generate`` to validate what it staged,
``sensors`` to replay and deploy. So they sit below both and import only ``errors``.
"""

import os
import re
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError

# Suricata and Zeek both carry on, and exit 0, when a log write fails for want of space:
# the lines are simply lost, and a full disk would read as "nothing reported". A log
# directory left with less than this free after a run is taken to have cost log lines.
MIN_FREE_AFTER_RUN = 1024 * 1024


def bytes_free(directory: Path) -> int:
    """The bytes this process may still write on ``directory``'s filesystem (root may use the
    blocks reserved for it, others may not)."""
    st = os.statvfs(directory)
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def check_logs_kept(log_dir: Path, what: str, error: type[SensorPluginsError]) -> None:
    """Refuse the result of a run whose log directory ran (nearly) out of space during it."""
    free = bytes_free(log_dir)
    if free < MIN_FREE_AFTER_RUN:
        raise error(f"{log_dir}: only {free} bytes left free after {what}; the engine loses log lines "
                    "on a full disk without failing, so its results may be incomplete; free some space "
                    "or choose another --log-dir")


def log_write_error(log_dir: Path, exc: OSError, error: type[SensorPluginsError]) -> SensorPluginsError:
    """One line for a log directory that cannot be written (full, read-only, gone)."""
    return error(f"{exc.filename or log_dir}: cannot write the engine's logs: {exc.strerror or exc}")


def run_name(index: int, pcap: Path) -> str:
    """``003-name``: the folder one pcap's engine logs go to, safe whatever the pcap is called."""
    return f"{index:03d}-{re.sub(r'[^A-Za-z0-9._-]', '_', Path(pcap).stem)[:80]}"
