"""The serving core: one compute scheduler per device owns all model work (see `scheduler`)."""

from glassbox.serving.calls import Priority
from glassbox.serving.cost import Estimate
from glassbox.serving.scheduler import ComputeScheduler

__all__ = ["ComputeScheduler", "Estimate", "Priority"]
