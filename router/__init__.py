"""escalation-hub: router. ``decide()`` is the pure brain; ``Decision`` is what it returns."""

from router.decide import decide
from router.decision import Decision

__all__ = ["Decision", "decide"]
