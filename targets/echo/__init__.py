"""Synthetic target with a known latency distribution and injected stalls, for truth tests."""
