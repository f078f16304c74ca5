"""Stream sources: memory, Kafka and file folders (see :mod:`.base` for the protocol)."""
