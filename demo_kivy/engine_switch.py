"""Which engine the settings call for (Kivy-free): the model on this device (:class:`DemoEngine`), or a
verification server when they name one (:class:`ServerEngine`, as ``--server`` gives); and the swap when the
settings screen changes that."""

from __future__ import annotations

import logging

from .engine import DemoEngine, ModelLoadError
from .server_engine import ServerEngine
from .settings import DemoSettings

log = logging.getLogger(__name__)


def make_engine(settings: DemoSettings, lossless: bool = False) -> DemoEngine:
    """A new engine for ``settings`` (nothing loaded or reached yet)."""
    if settings.server:
        return ServerEngine(settings, lossless=lossless)
    return DemoEngine(settings, lossless=lossless)


def decides_on_server(engine: DemoEngine) -> bool:
    return isinstance(engine, ServerEngine)


def switch_engine(engine: DemoEngine, settings: DemoSettings) -> DemoEngine:
    """The engine to go on with under ``settings``: ``engine`` itself with them applied when it decides the same
    way, else a new engine of the other kind (the old one is closed).

    Raises ModelLoadError only when the new settings cannot work and the old ones did: those are kept, as
    ``DemoEngine.apply`` keeps them. When neither works, the new settings are taken and the returned engine is
    not ``ready``; its ``model_error`` says why.
    """
    if bool(settings.server) == decides_on_server(engine):
        try:
            engine.apply(settings)
        except ModelLoadError:
            if engine.settings is not settings:  # the old settings work and were kept
                raise
        return engine
    new = make_engine(settings, engine.lossless)
    try:
        new.load_model()
    except ModelLoadError:
        if engine.ready:
            new.close()
            raise
    engine.close()
    log.info("now %s decides", "the server" if settings.server else "this device")
    return new
