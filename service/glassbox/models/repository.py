"""The model repository: every `<root>/<name>/<version>/model.toml`, loaded once at start-up.

A broken version is kept as FAILED with its reason (logged, and shown by GetModel and health) while the
others serve. Request names are only ever looked up among the folders found by the scan, never joined
into a path, so no request can reach outside the repository. A model or version folder (or a
`model.toml`) that is a symlink resolving outside the repository is logged and skipped: whoever can
write into the repository must not be able to serve, or make the server read, files from elsewhere.
Symlinks that stay inside (a version aliasing another) are followed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch

from glassbox.backends.base import Model
from glassbox.core.errors import FailedPrecondition, InvalidArgument, NotFound, echo
from glassbox.core.model_config import ConfigError, ModelConfig, load_config
from glassbox.core.reasons import Reason
from glassbox.models.datasets import (
    DATASETS_FOLDER,
    DatasetConfig,
    LabelledImages,
    load_dataset_config,
    load_named_set,
    named_sets,
    resolves_inside,
)
from glassbox.models.loaders import load_model

log = logging.getLogger(__name__)

MAX_KEPT_SET_BYTES = 256 * 1024 * 1024
"""Named sets up to this size (their images as float32) stay loaded between jobs."""

MAX_NAME_CHARS = 128
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""Model, version and named-set folder names; a requested name longer than MAX_NAME_CHARS cannot exist."""


def check_name_length(name: str, *, what: str, field: str) -> None:
    """InvalidArgument for a requested name no folder can have (bounded before any lookup or echo)."""
    if len(name) > MAX_NAME_CHARS:
        raise InvalidArgument(
            f"{what} name is {len(name)} characters, longer than any {what} name (at most {MAX_NAME_CHARS})",
            field=field,
        )


class ModelState(StrEnum):
    READY = "ready"
    FAILED = "failed"


@dataclass
class ModelVersion:
    """One version folder: its config and loaded model when READY, its error when FAILED."""

    name: str
    version: str
    folder: Path
    state: ModelState
    config: ModelConfig | None = None
    model: Model | None = None
    error: str = ""


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _version_folders(model_dir: Path) -> list[Path]:
    """A model's version folders, oldest first (its `datasets` folder is not a version)."""
    folders = (
        p
        for p in model_dir.iterdir()
        if p.is_dir() and NAME_PATTERN.match(p.name) and p.name != DATASETS_FOLDER
    )
    return sorted(folders, key=lambda p: _version_key(p.name))


class ModelRepository:
    """All model versions under one root, loaded on one device."""

    def __init__(
        self,
        root: Path,
        *,
        device: torch.device,
        onnx_threads: int = 0,
        on_loaded: Callable[[ModelVersion, float], None] | None = None,
        check: Callable[[ModelVersion, list[str]], None] | None = None,
    ) -> None:
        self.root = root
        self.device = device
        self.onnx_threads = onnx_threads
        self._on_loaded = on_loaded
        self._check = check
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._datasets: dict[str, dict[str, Path]] = {}
        self._loaded_sets: dict[tuple[str, str, str], LabelledImages] = {}
        self._sets_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._skipped: set[str] = set()

    def load_all(self) -> None:
        """Scan the root and load every version; failures are recorded, never raised."""
        self._models = {}
        self.refresh()

    def refresh(self) -> list[ModelVersion]:
        """Load the version folders (and models) that appeared since the last scan, and pick up new named
        sets; returns the new entries. A version already loaded is kept as it is: a changed or removed
        folder takes effect at the next start. Requests keep being served meanwhile: the new mapping
        replaces the old one in one assignment, after the new versions have loaded."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {self.root} is not a directory")
        root = self.root.resolve()
        with self._refresh_lock:
            models = dict(self._models)
            added: list[ModelVersion] = []
            for model_dir in sorted(
                p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                if not NAME_PATTERN.match(model_dir.name):
                    self._skip(model_dir, "not a valid model name")
                    continue
                if not resolves_inside(model_dir, root):
                    self._skip(model_dir, "a symlink to a folder outside the model repository")
                    continue
                known = dict(models.get(model_dir.name, {}))
                self._datasets[model_dir.name] = named_sets(model_dir)
                for folder in _version_folders(model_dir):
                    if not resolves_inside(folder, root):
                        self._skip(folder, "a symlink to a folder outside the model repository")
                        continue
                    if folder.name not in known:
                        known[folder.name] = self._load_version(model_dir.name, folder)
                        added.append(known[folder.name])
                models[model_dir.name] = dict(sorted(known.items(), key=lambda item: _version_key(item[0])))
            self._models = models
        return added

    def _skip(self, path: Path, reason: str) -> None:
        """Log a folder the scan leaves out, once (the poller scans again and again)."""
        key = str(path)
        if key not in self._skipped:
            log.warning("skipping %s: %s", path, reason)
            self._skipped.add(key)

    def _load_version(self, name: str, folder: Path) -> ModelVersion:
        version = folder.name
        started = time.perf_counter()
        manifest = folder / "model.toml"
        if manifest.is_symlink() and not resolves_inside(manifest, folder.resolve()):
            reason = "model.toml is a symlink to a file outside its version folder"
            log.error("model %s version %s in %s is broken: %s", name, version, folder, reason)
            return ModelVersion(name, version, folder, ModelState.FAILED, error=reason)
        try:
            config = load_config(folder)
        except ConfigError as exc:
            log.error("model %s version %s in %s is broken: %s", name, version, folder, exc)
            return ModelVersion(name, version, folder, ModelState.FAILED, error=str(exc))
        try:
            model = load_model(
                name, version, folder, config, device=self.device, onnx_threads=self.onnx_threads
            )
        except Exception as exc:
            log.exception("model %s version %s from %s failed to load", name, version, folder)
            return ModelVersion(
                name, version, folder, ModelState.FAILED, config=config, error=f"failed to load: {exc}"
            )
        seconds = time.perf_counter() - started
        log.info(
            "loaded model %s version %s from %s (%s, %s) on %s in %.2f s",
            name,
            version,
            folder,
            config.format.value,
            model.backend_name,
            model.device,
            seconds,
        )
        entry = ModelVersion(name, version, folder, ModelState.READY, config=config, model=model)
        if self._check is not None:
            try:
                self._check(entry, sorted(self._datasets.get(name, {})))
            except ValueError as exc:
                log.error("model %s version %s in %s is broken: %s", name, version, folder, exc)
                return ModelVersion(name, version, folder, ModelState.FAILED, config=config, error=str(exc))
        if self._on_loaded is not None:
            self._on_loaded(entry, seconds)
        return entry

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of a model, oldest first; NotFound if the model does not exist."""
        check_name_length(name, what="model", field="model")
        if name not in self._models:
            raise NotFound(
                f"model {echo(name)} does not exist; ListModels lists the served models",
                field="model",
                reason=Reason.MODEL_NOT_FOUND,
                metadata={"model": name},
            )
        return list(self._models[name].values())

    def entry(self, name: str, version: str = "", *, field: str = "model") -> ModelVersion:
        """A version entry; an empty version means the newest READY one (or the newest, if none is)."""
        check_name_length(name, what="model", field=field)
        check_name_length(version, what="version", field="version")
        versions = self._models.get(name)
        if versions is None:
            raise NotFound(
                f"model {echo(name)} does not exist; ListModels lists the served models",
                field=field,
                reason=Reason.MODEL_NOT_FOUND,
                metadata={"model": name},
            )
        if version:
            if version not in versions:
                raise NotFound(
                    f"model {name!r} has no version {echo(version)}; it has {list(versions)}",
                    field="version",
                    reason=Reason.VERSION_NOT_FOUND,
                    metadata={"model": name, "version": version},
                )
            return versions[version]
        if not versions:
            raise NotFound(
                f"model {name!r} has no versions",
                field=field,
                reason=Reason.VERSION_NOT_FOUND,
                metadata={"model": name},
            )
        ready = [v for v in versions.values() if v.state is ModelState.READY]
        return ready[-1] if ready else list(versions.values())[-1]

    def get(self, name: str, version: str = "", *, field: str = "model") -> Model:
        """A ready model; NotFound for unknown names, FailedPrecondition for a broken version."""
        entry = self.entry(name, version, field=field)
        if entry.model is None:
            raise FailedPrecondition(
                f"model {name!r} version {entry.version!r} is not ready: {entry.error}",
                field=field,
                reason=Reason.MODEL_NOT_READY,
                metadata={"model": name, "version": entry.version},
            )
        return entry.model

    def all_entries(self) -> list[ModelVersion]:
        return [v for name in self.names() for v in self._models[name].values()]

    def dataset_names(self, name: str) -> list[str]:
        """The named sets stored beside a model (`<root>/<name>/datasets/<set>/dataset.toml`)."""
        self.versions(name)
        return sorted(self._datasets.get(name, {}))

    def dataset(self, name: str, set_name: str, version: str = "", *, max_pixels: int) -> LabelledImages:
        """A named set at the input size of the model version, loaded once and kept when it takes at most
        MAX_KEPT_SET_BYTES (the demo sets take 12 MB; 4,096 images at 224² would take 2.5 GB, so a set that
        large is loaded again by each job instead of held for the server's lifetime).

        NotFound (field `named`) for an unknown set; FailedPrecondition naming the set when it is broken.
        """
        entry = self.entry(name, version)
        check_name_length(set_name, what="named set", field="named")
        folders = self._datasets.get(name, {})
        if set_name not in folders:
            raise NotFound(
                f"model {name!r} has no named set {echo(set_name)}; it has {sorted(folders)}",
                field="named",
                reason=Reason.DATASET_NOT_FOUND,
                metadata={"model": name, "dataset": set_name},
            )
        key = (name, entry.version, set_name)
        with self._sets_lock:
            kept = self._loaded_sets.get(key)
        if kept is not None:
            return kept
        model = self.get(name, entry.version)
        config = self._dataset_config(set_name, folders[set_name])
        images = load_named_set(config, model.config.input, model.labels, max_pixels=max_pixels)
        if images.images.element_size() * images.images.nelement() <= MAX_KEPT_SET_BYTES:
            with self._sets_lock:
                images = self._loaded_sets.setdefault(key, images)
        return images

    @staticmethod
    def _dataset_config(set_name: str, folder: Path) -> DatasetConfig:
        try:
            return load_dataset_config(set_name, folder)
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(
                f"named set {set_name!r} is broken: {exc}",
                field="named",
                reason=Reason.DATASET_BROKEN,
                metadata={"dataset": set_name},
            ) from exc
