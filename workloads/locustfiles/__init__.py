"""Locustfiles for `edabench locust`; each declares its target and goals in a literal `EDABENCH` dict."""
