"""Locust front end: Locust workers host the engine's generator; the master merges their results."""
