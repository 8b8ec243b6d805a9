"""A real verification server for client-side tests: ``create_app`` served by uvicorn on a loopback socket in a
thread of the test process, on a fresh SQLite database with an admin and an app key; and a JAFFE subject
performing through the client what the server asks (app_fixtures.Performer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from facelivenet.edge_runtime.options import SessionSettings
from facelivenet.server.client import FrameReply, ServerSession
from facelivenet.server.config import ServerConfig

from .app_fixtures import DRAW_SEED, FPS, Performer, add_key

# what a recorded source can pass: no live target ovals, no random rests
RECORDED = SessionSettings(positions=None, timing=None)


@dataclass(frozen=True)
class LiveServer:
    url: str
    admin_key: str
    app_key: str
    config: ServerConfig

    def add_key(self, name: str, scope: str = "app") -> str:
        """Another key in the server's database (the full key)."""
        return add_key(self.config.db, name, scope)


@contextlib.contextmanager
def running_server(db: Path, uvicorn_options: dict | None = None, draw_seed: int | None = DRAW_SEED,
                   **settings) -> Iterator[LiveServer]:
    """The app on 127.0.0.1:<free port> with ``settings`` (ServerConfig fields; ``session`` a SessionSettings)
    over the SQLite file ``db``, uvicorn given ``uvicorn_options`` (e.g. ``ssl_certfile``), its sessions drawn
    from ``draw_seed`` (app_fixtures.DRAW_SEED); stopped on exit."""
    import uvicorn

    from facelivenet.server.app import create_app

    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it: no 40 ms Nagle waits
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = ServerConfig(host="127.0.0.1", port=port, db=str(db), **settings)
    admin, app = add_key(config.db, "test-admin", "admin"), add_key(config.db, "test-app", "app")
    options = {"timeout_keep_alive": 30, **(uvicorn_options or {})}
    asgi_app = create_app(config, test_draw_seed=draw_seed)
    server = uvicorn.Server(uvicorn.Config(asgi_app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        scheme = "https" if (uvicorn_options or {}).get("ssl_certfile") else "http"
        yield LiveServer(f"{scheme}://127.0.0.1:{port}", admin, app, config)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def perform(session: ServerSession, performer: Performer, max_frames: int = 400) -> list[FrameReply]:
    """``performer`` (app_fixtures.Performer: a JAFFE subject doing what the server asks) in front of the
    client's camera until the server has decided; the replies. Frame ``i`` is captured at ``i / FPS``."""
    replies: list[FrameReply] = []
    step = session.opened["step"]
    while session.pending and len(replies) < max_frames:
        i = len(replies)
        replies.append(session.send(performer.frame(i, step), i / FPS))
        step = replies[-1].raw["step"]
    return replies


def recorded(**changes) -> SessionSettings:
    """Session settings for a recorded source (positions and timing off), with ``changes``."""
    return dataclasses.replace(RECORDED, **changes)
