"""The cart pipeline (seed 004): CQRS commands over HTTP, an event store in PostgreSQL,
projections and snapshots, a Redis cache. `driver.CartDriver` is its harness driver."""
