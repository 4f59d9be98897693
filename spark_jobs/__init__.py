"""PySpark Structured Streaming jobs (built on the common layer in spark_jobs.common)."""
