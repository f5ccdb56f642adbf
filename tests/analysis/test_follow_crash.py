"""Follow mode under kill -9: killed at random instants while a writer appends and rotates,
then restarted, it ends with exactly the findings of one `analyze` over the same rows.

The writer appends real ssl.log rows (given fresh uids so each row is its own finding) in
random-sized pieces, sometimes stopping mid-line, and rotates the log both ways logrotate
does: rename (a new file with a header) and copytruncate (a copy, then the live file cut
to nothing while rows keep coming without a header), and sometimes renames twice while the
follower is down, so a whole file goes by unseen. A rotation is made only once the
follower's checkpoint shows it has reached the current file, as a daily rotation would be.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sensor_plugins.cli import main

ZAT = Path(__file__).parent / "fixtures" / "logs" / "zat"
CATALOGUE = ("ranges:\n  - name: test-lab\n    cidr: 10.0.0.0/8\n    country: ZZ\n    owner: test\n"
             "    source: test catalogue covering a real log\n    confidence: low\n")
KILLS = 50
COPIES = 6
# Each follower is a forked child of a process that has imported the command already, so
# that the 50 runs spend their time reading logs rather than importing polars. The child is
# a separate process all the same, and dies by SIGKILL as a follower on a sensor would.
FORK_SERVER = """
import json, os, sys
from sensor_plugins.cli import main
import sensor_plugins.analysis.follow  # noqa: F401  (imported before the fork)
err = open(sys.argv[1], "ab")
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        os.dup2(err.fileno(), 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os._exit(main(json.loads(line)))
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    print("killed" if killed else f"exited {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def rows_and_header() -> tuple[str, list[str]]:
    lines = (ZAT / "tor_ssl.log").read_text().splitlines(keepends=True)
    header = "".join(x for x in lines if x.startswith("#") and not x.startswith("#close"))
    rows = [x for x in lines if not x.startswith("#")]
    out = []
    for copy in range(COPIES):
        for row in rows:
            cells = row.split("\t")
            cells[1] = f"{cells[1]}c{copy}"
            out.append("\t".join(cells))
    return header, out


class Writer(threading.Thread):
    """Appends rows to DIR/ssl.log in random pieces; rotates when asked."""

    def __init__(self, live: Path, header: str, rows: list[str], seed: int) -> None:
        super().__init__(daemon=True)
        self.live, self.header, self.rows = live, header, rows
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.next = 0
        self.rotations = 0
        self.live.write_text(header)

    def run(self) -> None:
        while self.next < len(self.rows):
            with self.lock:
                n = self.random.randint(1, 25)
                piece = "".join(self.rows[self.next:self.next + n])
                self.next += n
                with self.live.open("a") as handle:
                    if self.random.random() < 0.3:
                        # A row cut in two, as a buffered writer flushes it.
                        cut = self.random.randint(1, len(piece) - 1)
                        handle.write(piece[:cut])
                        handle.flush()
                        time.sleep(0.002)
                        handle.write(piece[cut:])
                    else:
                        handle.write(piece)
            time.sleep(self.random.uniform(0.005, 0.04))

    def _rename(self) -> None:
        self.rotations += 1
        os.rename(self.live, self.live.with_name(f"ssl.{self.rotations:03d}.log"))
        # Zeek opens each new file with its own, later, #open time.
        self.live.write_text(self.header.replace("#open\t2017-10-21-13-04-55",
                                                 f"#open\t2017-10-21-14-{self.rotations:02d}-00", 1))

    def rotate(self) -> str:
        kind = ("rename", "copytruncate", "two renames")[self.rotations % 3]
        with self.lock:
            if kind == "copytruncate":
                self.rotations += 1
                shutil.copyfile(self.live, self.live.with_name(f"ssl.{self.rotations:03d}.log"))
                with self.live.open("r+") as handle:
                    handle.truncate(0)
                return kind
            self._rename()
        if kind == "two renames":
            # Two rotation periods while the follower is down: a whole file it never saw.
            time.sleep(0.15)
            with self.lock:
                self._rename()
        return kind


def stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino


def caught_up(checkpoint: Path, live: Path) -> bool:
    try:
        state = json.loads(checkpoint.read_text())["files"]["ssl"]
        st = live.stat()
    except (OSError, ValueError, KeyError):
        return False
    return (state["dev"], state["inode"]) == (st.st_dev, st.st_ino) and state["offset"] > 0


def canonical(path: Path) -> list[str]:
    return [json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines()]


def test_fifty_kill_9_restarts_give_exactly_the_one_shot_findings(tmp_path: Path) -> None:
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(CATALOGUE)
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "cp.json"
    header, rows = rows_and_header()
    writer = Writer(live_dir / "ssl.log", header, rows, seed=16)
    rng = random.Random(1616)
    command = ["analyze", "--follow", str(live_dir), "--catalogue", str(catalogue), "--out", str(out),
               "--checkpoint", str(checkpoint), "--poll", "0.01"]
    server = subprocess.Popen([sys.executable, "-c", FORK_SERVER, str(tmp_path / "stderr.txt")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    writer.start()
    kinds: Counter = Counter()
    due = False
    for i in range(KILLS):
        before = stamp(checkpoint)
        server.stdin.write(json.dumps(command) + "\n")
        server.stdin.flush()
        pid = int(server.stdout.readline())
        if i % 5 == 0:
            # Anywhere in start-up or the first batches.
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            # Once it is reading (its checkpoint moved), at a random instant of its batches.
            deadline = time.monotonic() + 5
            while stamp(checkpoint) == before and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        os.kill(pid, signal.SIGKILL)
        status = server.stdout.readline().strip()
        assert status == "killed", (status, (tmp_path / "stderr.txt").read_text()[-500:])
        # A rotation is due every fourth run, and made once the follower has reached the file.
        due = due or i % 4 == 2
        if due and caught_up(checkpoint, writer.live):
            kinds[writer.rotate()] += 1
            due = False
    server.stdin.close()
    server.wait(timeout=30)
    writer.join()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    # The last run reads everything that is left, then stops.
    assert main(["analyze", "--follow", str(live_dir), "--catalogue", str(catalogue), "--out", str(out),
                 "--checkpoint", str(checkpoint), "--once"]) in (0, 1)
    whole = tmp_path / "whole" / "ssl.log"
    whole.parent.mkdir()
    whole.write_text(header + "".join(rows))
    one_shot = tmp_path / "one-shot.jsonl"
    assert main(["analyze", "--catalogue", str(catalogue), "--out", str(one_shot), str(whole)]) == 1
    # Every line must parse (no partial line); key order inside evidence is not a difference.
    followed = Counter(canonical(out))
    expected = Counter(canonical(one_shot))
    assert (followed, set(kinds)) == (expected, {"rename", "copytruncate", "two renames"})
