"""A tiny round-robin HTTP reverse proxy: one URL in front of several webhook servers.

Like a load balancer in front of bot instances: each request goes to the next backend in turn;
a backend that refuses the connection (a dead instance) is skipped and the next one is tried.
A backend that dies while answering gets a 502 back, as nginx would answer; the sender (the
fake Telegram's delivery) then tries again and lands on another backend.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from aiohttp import web

# hop-by-hop headers are the proxy's own business, and the length is set anew
_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}
)


@dataclass
class Balancer:
    """``await start()``, point the sender at :attr:`url`, ``await close()``."""

    backends: list[str]  # base URLs, e.g. http://127.0.0.1:8081
    timeout: float = 60.0
    url: str = ""
    served: Counter[str] = field(default_factory=Counter)  # backend -> requests it answered
    skipped: Counter[str] = field(default_factory=Counter)  # backend -> connections refused
    failed: int = 0  # requests no backend answered (502)
    _next: int = 0
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on ``127.0.0.1`` on a free port and set :attr:`url` (no trailing slash)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=False
        )
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Balancer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _turn(self) -> list[str]:
        """The backends in the order this request tries them: the next in turn first."""
        start = self._next % len(self.backends)
        self._next += 1
        return self.backends[start:] + self.backends[:start]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        for backend in self._turn():
            try:
                async with self._http.request(
                    request.method,
                    backend + request.rel_url.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED}
                    self.served[backend] += 1
                    return web.Response(status=answer.status, body=payload, headers=kept)
            except aiohttp.ClientConnectorError:  # nothing listens: a dead instance
                self.skipped[backend] += 1
                continue
            except (aiohttp.ClientError, TimeoutError):  # died or hung while answering
                break
        self.failed += 1
        return web.Response(status=502, text="Bad Gateway")
