"""The bank pipeline (EDA-Lab): Avro events over Kafka applied to a PostgreSQL ledger."""
