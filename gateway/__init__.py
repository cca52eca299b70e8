"""escalation-hub: gateway."""
