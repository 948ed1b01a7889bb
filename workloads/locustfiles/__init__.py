"""Locustfiles for `edabench locust`: each names its workload (`EDABENCH`) and imports the user class."""
