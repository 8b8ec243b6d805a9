"""The app's engine in server mode (``facelive-demo --server URL --api-key KEY``): the same feeds and screens,
with a verification server (``facelive serve``) drawing the challenges, keeping the templates and deciding.

No model is loaded on this device; "loading the model" is reaching the server
(``GET /v1/health``), and a server that cannot be reached is shown on the home
screen like a model that cannot load. Each flow talks to the server over its
own connection; the engine's own client (users, deletes) serves the UI thread.
"""

from __future__ import annotations

import logging
from typing import Any

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.api import UserInfo
from facelivenet.server.client import Client, Forbidden

from .engine import DemoEngine, ModelLoadError
from .feed import FrameFeed
from .flow import Flow
from .server_flows import ServerAuthFlow, ServerEnrollFlow
from .settings import DemoSettings

log = logging.getLogger(__name__)

SERVER_FIX = "fix: start it (facelive serve --db users.db) or pass the right --server URL"


class ServerEngine(DemoEngine):
    """A :class:`DemoEngine` whose flows run on the server at ``settings.server``."""

    def __init__(self, settings: DemoSettings, lossless: bool = False) -> None:
        super().__init__(settings, lossless)
        self.health: dict[str, Any] | None = None
        self.client = self._client(settings)

    @staticmethod
    def _client(settings: DemoSettings) -> Client:
        return Client(settings.server, settings.api_key)

    # ------------------------------------------------------------ the server

    def load_model(self) -> None:
        """Reach the server (its health); ModelLoadError naming the URL and the fix when it cannot be."""
        self.health, self.model_error = None, None
        try:
            self.health = self.client.health()
        except FaceLiveError as exc:
            self.model_error = f"cannot use the server at {self.client.url}: {exc}; {SERVER_FIX}"
            raise ModelLoadError(self.model_error) from exc
        log.info("server %s: %s", self.client.url, self.health)

    @property
    def ready(self) -> bool:
        return self.health is not None

    @property
    def model_description(self) -> str:
        if self.health is None:
            return f"server {self.client.url}: not reached"
        h = self.health
        return f"server {self.client.url} decides (model {h.get('model')}, {h.get('store')} store)"

    def apply(self, settings: DemoSettings) -> None:
        """Swap in new settings: sources reopen when they changed, the server is reached again when its URL or
        key changed (the settings that worked are kept when it cannot be)."""
        self.cancel()
        old, self.settings = self.settings, settings
        if (old.source, old.enroll_source, old.fps) != (settings.source, settings.enroll_source, settings.fps):
            self.close_feeds()
        if (old.server, old.api_key) != (settings.server, settings.api_key) or self.health is None:
            previous, health = self.client, self.health
            self.client = self._client(settings)
            try:
                self.load_model()
            except ModelLoadError:
                if health is not None:
                    self.client.close()
                    self.settings, self.client, self.health, self.model_error = old, previous, health, None
                raise
            previous.close()

    # ------------------------------------------------------------------ flows

    def enroll_flow(self, feed: FrameFeed, user: str) -> Flow:
        s = self.settings
        return ServerEnrollFlow(feed, self._client(s), user, s.enroll_frames, s.enroll_interval_s)

    def auth_flow(self, feed: FrameFeed, user: str) -> Flow:
        return ServerAuthFlow(feed, self._client(self.settings), user)

    # ------------------------------------------------------------------ users

    def users(self) -> list[UserInfo]:
        """The users enrolled on the server; none shown with an app key (only an admin key may list them)."""
        if self.health is None:
            return []
        try:
            listed = self.client.users()
        except Forbidden:
            log.info("an app key cannot list the server's users")
            return []
        return [UserInfo(u["user"], u["model_fingerprint"], int(u["images"]), float(u["created"])) for u in listed]

    def matches_model(self, info: UserInfo) -> bool:
        model = (self.health or {}).get("model")
        return bool(model) and info.model_fingerprint.startswith(str(model))

    def delete_user(self, user: str) -> None:
        self.client.delete_user(user)

    def close(self) -> None:
        super().close()
        self.client.close()
