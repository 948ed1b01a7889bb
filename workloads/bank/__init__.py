"""The bank workload: account life cycles with realistic French data and a shadow ledger."""
