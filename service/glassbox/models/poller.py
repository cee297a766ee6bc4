"""Loading model versions that appear while the server runs (Triton's `--model-control-mode=poll`, for
additions): every `interval` seconds the repository is scanned and new version folders are loaded, so a
new version is served, listed, health-checked and, where its model.toml asks for it, evaluated by the
robustness monitor (which walks the repository every round) without a restart. Copy a version folder in
whole (write it elsewhere, then rename it into place): a folder caught half-written loads as FAILED and
stays so until the next start."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from glassbox.models.repository import ModelRepository, ModelVersion

log = logging.getLogger(__name__)


class RepositoryPoller:
    """A daemon thread calling `repository.refresh()` every `interval` seconds; `on_added` gets the new
    entries (the server republishes health with it)."""

    def __init__(
        self,
        repository: ModelRepository,
        interval: float,
        on_added: Callable[[list[ModelVersion]], None],
    ) -> None:
        self.repository = repository
        self.interval = interval
        self.on_added = on_added
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="glassbox-repository-poll", daemon=True)

    def poll_once(self) -> list[ModelVersion]:
        """Scan now; the entries loaded by this scan."""
        added = self.repository.refresh()
        if added:
            loaded = ", ".join(f"{e.name}/{e.version} ({e.state.value})" for e in added)
            log.info("model repository: loaded %s", loaded)
            self.on_added(added)
        return added

    def start(self) -> RepositoryPoller:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # a vanished root or an unreadable folder: log, keep serving, try again
                log.exception("model repository scan failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
