"""The edabench engine: scheduler, recorder, runner, driver protocol, gate and CLI."""
