"""What is sent: workload specs (TOML), generators, fake data and locustfiles."""
