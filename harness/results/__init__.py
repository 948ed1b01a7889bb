"""What a run leaves behind and how it is judged: run directory, messages, summary, gate, JUnit.

The layer below the engine, the Locust front end and the reports: they all read and write runs
through it, and it imports nothing of theirs.
"""
