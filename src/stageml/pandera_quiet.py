"""pandera, imported without pandas-on-Spark's warning about pandas 3.

pandera imports ``pyspark.pandas`` whenever pyspark is installed (for its own pyspark
API), and under pandas 3 that module warns that pandas-on-Spark is not supported. stageml
never uses pandas-on-Spark (the Spark engine uses pyspark.sql and Arrow), so the warning
only misled users of every command and every scoring worker.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    import pandera.pandas as pa

__all__ = ["pa"]
