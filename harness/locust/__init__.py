"""Locust integration: open-model users, HDR recording of every request, run directories."""
