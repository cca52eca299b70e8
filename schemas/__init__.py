"""The common escalation schema v1: the one language every connector speaks."""
