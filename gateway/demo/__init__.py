"""``escalation-hub demo``: the hub, three simulated case systems and a business-office inbox."""
