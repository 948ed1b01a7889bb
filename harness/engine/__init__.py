"""The asyncio engine: scheduler hot path, in-flight table, generator processes, run lifecycle."""
