"""`target = "kafka"`: produce to a user's topic, measure the ack or the record's arrival on an output topic."""
