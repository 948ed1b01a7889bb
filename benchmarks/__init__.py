"""Generator benchmarks: edabench's own send paths as ratios to anchor tools measured in the same run.

Run a full comparison with ``python -m benchmarks.kafka_send_rate --out results.json`` or
``python -m benchmarks.http_generator --out results.json``; docs/benchmarks.md has the numbers.
"""
