"""Who is calling: the authenticated principal that owns the jobs it submits.

The server's authentication (server/auth.py) names the caller: a bearer token's name from the token
file, or the subject of a verified client certificate. The core sees only this value, never tokens or
certificates.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """A caller. `name` is "" when the server authenticates no one (every caller is then the same
    anonymous principal); `admin` sees and cancels every principal's jobs.

    Example:
        >>> Principal("ci-bot").can_see("ci-bot"), Principal("ci-bot").can_see("alice")
        (True, False)
    """

    name: str
    admin: bool = False

    def can_see(self, owner: str) -> bool:
        """Whether this caller may see (get, watch, cancel, list) a job owned by `owner`."""
        return self.admin or owner == self.name


ANONYMOUS = Principal("")
SYSTEM = Principal("", admin=True)
"""The server itself (e.g. the robustness monitor): sees every job."""
