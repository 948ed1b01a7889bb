"""Systems under test shipped with edabench; each exposes a driver (see harness.protocol)."""
