"""escalation-hub: connectors."""
