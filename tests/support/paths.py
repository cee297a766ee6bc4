"""Where the checkout and its shipped model repository are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""
MODELS = ROOT / "models"
"""The shipped model repository."""
