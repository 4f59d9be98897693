"""What every Spark job shares: schemas, settings, session, Kinesis source, quality, sinks."""
