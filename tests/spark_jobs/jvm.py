"""JVM options for the tests' Spark drivers: short-lived JVMs on two cores spend less CPU in
the C1 compiler alone than with C2's optimizing compiles (about a quarter off the job-process
tests); production keeps the JVM's default."""

from __future__ import annotations

import json

DRIVER_JAVA_OPTIONS = "-Duser.timezone=UTC -XX:TieredStopAtLevel=1"
SPARK_CONF = {"spark.driver.extraJavaOptions": DRIVER_JAVA_OPTIONS}
# For job processes: CRYPTO_PULSE_SPARK__CONF.
SPARK_CONF_ENV = json.dumps(SPARK_CONF)
