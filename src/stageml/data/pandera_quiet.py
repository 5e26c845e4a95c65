"""pandera, imported without pandas-on-Spark's warning about pandas 3.

pandera imports ``pyspark.pandas`` whenever pyspark is installed (for its own pyspark
API): once on import and again when its pandas checks register on the first validation.
Under pandas 3 that import warns that pandas-on-Spark is not supported and then fails, so
each attempt warns anew. stageml never uses pandas-on-Spark (the Spark engine uses
pyspark.sql and Arrow), so the warning only misled users of every command and every
scoring worker. Both attempts happen here, with the warning filtered.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    import pandera.backends.pandas.builtin_checks  # noqa: F401  (the second attempt)
    import pandera.pandas as pa

__all__ = ["pa"]
