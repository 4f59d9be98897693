"""Detector classes for registry tests (the real ones live in spark_jobs.detectors)."""
