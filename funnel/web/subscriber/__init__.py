"""Subscribers' personal links: confirm, unsubscribe, preferences, the plan."""
