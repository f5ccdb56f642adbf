"""A small client for Suricata's unix command socket (the protocol `suricatasc` speaks).

Talking JSON to the socket directly avoids depending on where a distribution installs
suricatasc's Python package. The protocol: send ``{"version": "0.2"}``, then one JSON
command per line; every answer is one JSON object ending in a newline.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor_plugins.errors import SensorPluginsError

PROTOCOL_VERSION = "0.2"
# reload-rules answers only once the new detection engine is live; a large ruleset on a
# busy sensor can take minutes.
DEFAULT_TIMEOUT = 300.0


class SuricataSocketError(SensorPluginsError):
    """The socket is missing, refused the connection, or answered a command with NOK."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: Any


class SuricataSocket:
    """One connection to a running Suricata; use as a context manager."""

    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> SuricataSocket:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise SuricataSocketError(
                f"{self.path}: cannot connect to Suricata's unix socket: {exc.strerror or exc}"
            ) from exc
        self._sock = sock
        answer = self._exchange({"version": PROTOCOL_VERSION})
        if not answer.ok:
            self.close()
            raise SuricataSocketError(f"{self.path}: Suricata refused protocol {PROTOCOL_VERSION}: "
                                      f"{answer.message}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Answer:
        message: dict[str, Any] = {"command": name}
        if arguments:
            message["arguments"] = arguments
        return self._exchange(message)

    def checked(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a command and return its message; raise when Suricata answers NOK."""
        answer = self.command(name, arguments)
        if not answer.ok:
            raise SuricataSocketError(f"{self.path}: Suricata refused `{name}`: {_one_line(answer.message)}")
        return answer.message

    def _exchange(self, message: dict[str, Any]) -> Answer:
        if self._sock is None:
            raise SuricataSocketError(f"{self.path}: not connected")
        try:
            self._sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
            raw = self._read_line()
        except OSError as exc:
            raise SuricataSocketError(f"{self.path}: Suricata's socket failed during "
                                      f"`{message.get('command', 'version')}`: {exc}") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise SuricataSocketError(f"{self.path}: Suricata sent an answer that is not JSON") from exc
        return Answer(ok=data.get("return") == "OK", message=data.get("message"))

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise SuricataSocketError(f"{self.path}: Suricata closed the socket mid-answer")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _one_line(message: Any) -> str:
    text = message if isinstance(message, str) else json.dumps(message)
    return " ".join(text.split())[:300]
