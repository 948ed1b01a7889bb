-- Event store, read model and snapshots (seed 004, sprint 3), plus the catalogue and the outbox.

CREATE TABLE IF NOT EXISTS products (
  product_id  TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
  is_active   BOOLEAN NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS domain_events (
  event_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  aggregate_id UUID NOT NULL,
  aggregate_type VARCHAR(100) NOT NULL,
  event_type VARCHAR(100) NOT NULL,
  event_version INTEGER NOT NULL,
  event_data JSONB NOT NULL,
  metadata JSONB,
  occurred_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- unique: this is the optimistic-concurrency guard (two writers cannot both append version n)
CREATE UNIQUE INDEX IF NOT EXISTS idx_domain_events_aggregate ON domain_events(aggregate_id, event_version);
CREATE INDEX IF NOT EXISTS idx_domain_events_type ON domain_events(event_type, occurred_at);

CREATE TABLE IF NOT EXISTS cart_projections (
  user_id UUID PRIMARY KEY,
  cart_data JSONB NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  last_event_id UUID REFERENCES domain_events(event_id),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS cart_snapshots (
  aggregate_id UUID PRIMARY KEY,
  aggregate_data JSONB NOT NULL,
  version INTEGER NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- transactional outbox: written with the event, relayed to the event bus, then deleted
CREATE TABLE IF NOT EXISTS event_outbox (
  id BIGSERIAL PRIMARY KEY,
  aggregate_id UUID NOT NULL,
  event_version INTEGER NOT NULL,
  payload JSONB NOT NULL
);
