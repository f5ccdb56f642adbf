"""Bottom layer: running the real engine binaries (find them, check content, replay pcaps).

Every stage that needs an engine uses these: ``generate`` to validate what it staged,
``sensors`` to replay and deploy. So they sit below both and import only ``errors``.
"""

import re
from pathlib import Path


def run_name(index: int, pcap: Path) -> str:
    """``003-name``: the folder one pcap's engine logs go to, safe whatever the pcap is called."""
    return f"{index:03d}-{re.sub(r'[^A-Za-z0-9._-]', '_', Path(pcap).stem)[:80]}"
