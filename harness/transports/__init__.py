"""Client transports shared by drivers: the lean HTTP/1.1 client and librdkafka for Kafka.

Part of the public seam: a target's driver may build on them (`from harness.transports.kafka
import KafkaProducer`), and nothing here knows about any target.
"""
