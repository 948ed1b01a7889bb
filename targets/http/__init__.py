"""`target = "http"`: any HTTP service, from configuration alone (no code to write)."""
