"""Admission: before any work, whether the compute scheduler can serve a call in time and in memory.

Refusals are ResourceExhausted with a retry delay where waiting helps:
* **memory**: the bytes the call holds (decoded images, maps, renderings) do not fit what admitted calls
  leave of the memory budget (`memory_budget_bytes`, default a fraction of the machine's memory);
* **queue**: its priority class already has `max_queue_seconds` of estimated work;
* **deadline**: the work ranked before it (every call of a higher class, and every call of its class
  with less remaining work) plus its own, times `admission_safety`, does not fit its deadline; or a call
  that is not short would push admitted calls with more remaining work past their deadlines. Shorter
  calls that arrive later run first, until an admitted call's slack runs out; then the scheduler serves
  the admitted calls in deadline order (scheduler.py, `_urgent`), which keeps this promise.
Calls of unknown cost (a model never measured) are refused on memory only.
"""

from __future__ import annotations

import os
import time

from glassbox.config import SchedulerSettings
from glassbox.core.errors import ResourceExhausted
from glassbox.core.reasons import Reason
from glassbox.serving.calls import Priority, ScheduledCall, SchedulerObserver


class Admission:
    """The admission policy and the memory the admitted calls hold (guarded by the scheduler's lock)."""

    def __init__(self, settings: SchedulerSettings, observer: SchedulerObserver | None) -> None:
        self.settings = settings
        self.observer = observer
        self.memory_budget = settings.memory_budget_bytes or int(
            machine_memory_bytes() * settings.memory_budget_fraction
        )
        self.reserved = 0

    def admit(
        self,
        calls: list[ScheduledCall],
        priority: Priority,
        deadline: float | None,
        estimated: float | None,
        memory: int,
    ) -> None:
        """Refuse (ResourceExhausted) a call that cannot be served in time or in memory (lock held)."""
        self.admit_memory(memory)
        same_class = [c for c in calls if c.priority == priority]
        queued = sum(c.remaining() for c in same_class)
        if estimated is None:
            return
        if queued + estimated > self.settings.max_queue_seconds:
            self._refuse(
                "queue",
                f"{queued:.1f} s of {priority.name.lower()} work is queued and this call needs about "
                f"{estimated:.2f} s, over scheduler.max_queue_seconds "
                f"({self.settings.max_queue_seconds:g} s); retry later or on another replica",
                queued,
            )
        if deadline is None:
            return
        ahead = sum(c.remaining() for c in calls if c.priority < priority)
        ahead += sum(c.remaining() for c in same_class if c.remaining() <= estimated)
        share = 1.0
        if priority is Priority.INTERACTIVE and any(c.priority > priority for c in calls):
            share -= self.settings.background_min_share
        finish = (ahead + estimated + self.settings.max_unit_seconds) / max(share, 0.05)
        left = deadline - time.monotonic()
        if finish * self.settings.admission_safety > left:
            self._refuse(
                "deadline",
                f"estimated {finish:.2f} s until done ({ahead:.2f} s of work ahead, {estimated:.2f} s "
                f"its own), {max(left, 0.0):.2f} s left before the deadline; retry later",
                max(ahead, 0.1),
            )
        self._protect_admitted(same_class, estimated)

    def admit_memory(self, memory: int) -> None:
        """Refuse memory the budget cannot give now (lock held)."""
        if memory > self.memory_budget:
            self._refuse(
                "memory",
                f"the call needs about {memory / 2**20:.0f} MiB, over the server's whole memory budget "
                f"({self.memory_budget / 2**20:.0f} MiB, scheduler.memory_budget_bytes); send fewer or "
                "smaller images",
                None,
            )
        if self.reserved + memory > self.memory_budget:
            self._refuse(
                "memory",
                f"the memory budget is full ({self.reserved / 2**20:.0f} of "
                f"{self.memory_budget / 2**20:.0f} MiB held by admitted calls); retry shortly",
                1.0,
            )

    def _protect_admitted(self, same_class: list[ScheduledCall], estimated: float) -> None:
        """A call that is not short must not push admitted calls of its class past their deadlines: it
        runs before every call with more remaining work."""
        if estimated <= 4 * self.settings.max_unit_seconds:
            return
        now = time.monotonic()
        ordered = sorted(same_class, key=ScheduledCall.rank)
        done_at = 0.0
        for call in ordered:
            done_at += call.remaining()
            if call.deadline is None or call.remaining() <= estimated:
                continue
            if now + (done_at + estimated) * self.settings.admission_safety > call.deadline:
                self._refuse(
                    "deadline",
                    f"about {estimated:.2f} s of work would delay admitted calls past their deadlines",
                    done_at,
                )

    def _refuse(self, reason: str, message: str, retry_after: float | None) -> None:
        if self.observer is not None:
            self.observer.count_admission_refused(reason)
        raise ResourceExhausted(message, reason=Reason.OVERLOADED, retry_after_seconds=retry_after)


def machine_memory_bytes() -> int:
    """The memory this process may use: the cgroup limit when there is one, else the machine's."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            return int(text)
    return total
