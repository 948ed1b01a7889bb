"""edabench infra: the services a run needs (Kafka, PostgreSQL, Redis), embedded or external.

    from infra.stack import Stack, StackError
    async with Stack(needs={"kafka", "postgres"}, run_dir=run_dir) as stack:
        stack.urls["kafka"], stack.urls["postgres"]

Per service: explicit URL > EDABENCH_KAFKA_BOOTSTRAP / EDABENCH_POSTGRES_DSN / EDABENCH_REDIS_URL >
a healthy `edabench infra up` stack > an embedded server started (and stopped) by the Stack.
"""
