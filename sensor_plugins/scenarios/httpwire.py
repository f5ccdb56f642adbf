"""HTTP/1.1 request and response bytes for the scenario pcaps: one GET, one 200 with a body."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

FIREFOX_53 = "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:53.0) Gecko/20100101 Firefox/53.0"


@dataclass(frozen=True)
class HttpExchange:
    host: str
    uri: str
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    user_agent: str = FIREFOX_53
    server: str = "nginx/1.10.3"


def http_request(exchange: HttpExchange) -> bytes:
    return (
        f"GET {exchange.uri} HTTP/1.1\r\n"
        f"Host: {exchange.host}\r\n"
        f"User-Agent: {exchange.user_agent}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")


def http_response(exchange: HttpExchange, unix_time: int) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Date: {email.utils.formatdate(unix_time, usegmt=True)}\r\n"
        f"Server: {exchange.server}\r\n"
        f"Content-Type: {exchange.content_type}\r\n"
        f"Content-Length: {len(exchange.body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + exchange.body


def html_page(title: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        f"{title}</title></head>\n<body><h1>{title}</h1><p>Sensor plugins test page.</p></body></html>\n"
    ).encode("ascii")
