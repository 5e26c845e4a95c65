"""The Spark engine scores like the local engine and loses no buyer (one local[2] session)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from stageml.data.simulate import simulate
from stageml.errors import ContractError
from stageml.models.train import TrainingResult
from stageml.scoring.local import score_local

pytestmark = [pytest.mark.spark, pytest.mark.slow]

if importlib.util.find_spec("pyspark") is None:
    pytest.skip("pyspark is not installed (pip install pyspark)", allow_module_level=True)
if shutil.which("java") is None:
    pytest.skip("no 'java' on PATH: Spark needs a Java 17+ runtime", allow_module_level=True)

from stageml.scoring.spark import score_spark, spark_session  # noqa: E402

AS_OF = pd.Timestamp("2026-03-01")
KEY = ["table", "buyer_id", "reason"]


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    session = spark_session("local[2]", shuffle_partitions=3)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def dirty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 simulated buyers as CSV, plus the bad rows a real CRM export holds."""
    sim = simulate(300, seed=23)
    interactions = sim.interactions.astype({"occurred_at": "string"})
    good = interactions.iloc[0].to_dict()
    bad = [
        {**good, "buyer_id": None},  # null buyer_id
        {**good, "occurred_at": "not a date"},  # unparseable timestamp
        interactions.iloc[5].to_dict(),  # exact duplicate
        {**good, "buyer_id": "ZZ-ALL-BAD", "occurred_at": "yesterday"},  # only invalid rows
        {**good, "buyer_id": "ZZ-ALL-BAD", "occurred_at": "31/31/2025"},
        {**good, "buyer_id": "ZZ-LATE", "occurred_at": "2026-05-01 10:00:00"},  # only after as-of
        {**good, "buyer_id": f"  {good['buyer_id']} "},  # padded id: same buyer
    ]
    rows = pd.concat([interactions, pd.DataFrame(bad)], ignore_index=True)
    folder = tmp_path_factory.mktemp("dirty")
    rows.to_csv(folder / "interactions.csv", index=False)
    sim.buyers.to_csv(folder / "buyers.csv", index=False)
    return folder


def _outputs(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = pd.read_parquet(out).sort_values("buyer_id", ignore_index=True)
    rejects = pd.read_csv(out.with_name(out.stem + "_rejects.csv"), dtype={"buyer_id": "string"})
    return scores, rejects


def _reject_set(rejects: pd.DataFrame) -> set[tuple[str, ...]]:
    return set(map(tuple, rejects[[*KEY, "row"]].astype("string").fillna("").to_numpy()))


@pytest.mark.usefixtures("spark")
def test_spark_matches_local_and_loses_no_buyer(
    dirty_dir: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    model = trained.model
    local_summary = score_local(dirty_dir, model, AS_OF, out=tmp_path / "local.parquet")
    summary = score_spark(
        dirty_dir,
        model,
        AS_OF,
        out=tmp_path / "spark.parquet",
        buckets=3,
        model_uri="models:/m/1",
        model_version="1",
    )
    local, local_rejects = _outputs(tmp_path / "local.parquet")
    spark, spark_rejects = _outputs(tmp_path / "spark.parquet")

    # (1) Same buyers, stages and probabilities; same rejects, with the same file rows.
    assert list(spark["buyer_id"]) == list(local["buyer_id"])
    assert list(spark["stage"]) == list(local["stage"])
    probabilities = [c for c in local.columns if c.startswith("p_")]
    probabilities += ["inflection_probability", "inflection_score"]
    pd.testing.assert_frame_equal(spark[probabilities], local[probabilities], rtol=0, atol=1e-9)
    assert set(spark.columns) == set(local.columns)
    assert (spark["model_uri"] == "models:/m/1").all()
    assert _reject_set(spark_rejects) == _reject_set(local_rejects)
    for key in ("input_rows", "rejected_rows", "input_buyers", "scored_buyers", "rejected_buyers"):
        assert summary[key] == local_summary[key], key
    assert summary["engine"] == "spark"

    # (2) Nothing lost: every input buyer is scored once or rejected once, with a reason.
    raw = pd.read_csv(dirty_dir / "interactions.csv", dtype={"buyer_id": "string"})
    inputs = set(raw["buyer_id"].str.strip().dropna())
    buyer_rejects = spark_rejects[spark_rejects["table"] == "buyer"]
    assert spark["buyer_id"].is_unique and buyer_rejects["buyer_id"].is_unique
    assert set(spark["buyer_id"]).isdisjoint(buyer_rejects["buyer_id"])
    assert set(spark["buyer_id"]) | set(buyer_rejects["buyer_id"]) == inputs
    assert buyer_rejects["reason"].notna().all()
    reasons = dict(zip(buyer_rejects["buyer_id"], buyer_rejects["reason"], strict=True))
    assert reasons["ZZ-ALL-BAD"] == "all_interaction_rows_rejected"
    assert reasons["ZZ-LATE"] == "no_interaction_before_as_of"
    assert summary["input_buyers"] == len(inputs) == len(spark) + len(buyer_rejects)


@pytest.mark.usefixtures("spark")
def test_spark_parquet_trends_and_atomic_output(
    export_dir: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    model = trained.model
    first = tmp_path / "first.parquet"
    score_local(export_dir, model, AS_OF, out=first)
    score_local(
        export_dir,
        model,
        AS_OF + pd.Timedelta(days=30),
        out=tmp_path / "local.parquet",
        previous=first,
    )
    score_spark(
        export_dir,
        model,
        AS_OF + pd.Timedelta(days=30),
        out=tmp_path / "spark.parquet",
        previous=first,
    )
    local, _ = _outputs(tmp_path / "local.parquet")
    spark, _ = _outputs(tmp_path / "spark.parquet")
    columns = ["buyer_id", "stage", "stage_change", "inflection_trend"]
    pd.testing.assert_frame_equal(spark[columns], local[columns], check_dtype=False)
    pd.testing.assert_series_equal(
        spark["p_" + model.stages[0]], local["p_" + model.stages[0]], rtol=0, atol=1e-9
    )

    # A failing bucket (the model breaks on the workers) leaves no scores file behind.
    broken = tmp_path / "broken.parquet"
    with pytest.raises(Exception, match="predict_proba"):  # noqa: B017 - Spark wraps it
        score_spark(export_dir, replace(model, stage_model=None), AS_OF, out=broken)
    assert not broken.exists()


def test_spark_input_errors_name_the_fix(export_dir: Path, tmp_path: Path) -> None:
    # Raised on the driver before any SparkSession starts.
    model = object()
    with pytest.raises(ContractError, match="no interactions table"):
        score_spark(tmp_path, model, AS_OF, out=tmp_path / "s.parquet")  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="previous scores file does not exist"):
        score_spark(
            export_dir,
            model,
            AS_OF,
            out=tmp_path / "s.parquet",  # type: ignore[arg-type]
            previous=tmp_path / "missing.parquet",
        )
    with pytest.raises(ValueError, match="buckets must be a positive integer"):
        score_spark(export_dir, model, AS_OF, out=tmp_path / "s.parquet", buckets=0)  # type: ignore[arg-type]


def test_parquet_splits_keep_file_rows_and_the_local_buckets(spark: object, tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa

    from stageml.scoring.blobs import BLOB, BUCKET, interaction_rows, stage_split, table_splits
    from stageml.scoring.staging import bucketed, numbered

    frame = pd.DataFrame({"buyer_id": [f" B{i % 97:04d}" for i in range(2500)], "x": range(2500)})
    path = tmp_path / "interactions.parquet"
    frame.to_parquet(path, row_group_size=300)  # 9 row groups
    splits = table_splits("interactions", path, 700)
    # Whole row groups, at least 700 rows each (the last takes the rest), in file order.
    assert [s.rows for s in splits] == [(0, 900), (900, 1800), (1800, 2500)]
    assert interaction_rows(splits) == 2500

    keys = [10, 20, 30]
    staged = pa.Table.from_batches(
        [b for i, split in enumerate(splits) for b in stage_split(i, split, 3, keys, 1)]
    )
    got = []
    for key, blob in zip(staged[BUCKET].to_pylist(), staged[BLOB].to_pylist(), strict=True):
        part = pa.ipc.open_stream(blob).read_all().to_pandas()
        got.append(part.assign(bucket=keys.index(key)))
    rows = pd.concat(got).sort_values("_source_row", ignore_index=True)
    # Every row once, numbered from 1 in the file; in the bucket the local engine stages it in.
    assert rows["_source_row"].tolist() == list(range(1, 2501))
    assert rows["x"].tolist() == list(range(2500))
    local = duckdb.sql(f"SELECT x, _part FROM ({bucketed(numbered(path), 3)})").df()
    assert rows["bucket"].tolist() == local.sort_values("x")["_part"].tolist()
    assert rows.groupby("buyer_id")["bucket"].nunique().eq(1).all()

    # A table written by Spark is a folder of part files (and a _SUCCESS marker): every
    # part is split and counted, the marker skipped.
    folder = tmp_path / "written.parquet"
    spark.createDataFrame(frame).repartition(3).write.parquet(str(folder))  # type: ignore[attr-defined]
    assert (folder / "_SUCCESS").exists()
    written = table_splits("interactions", folder, 700)
    assert len({s.path for s in written}) == 3
    assert interaction_rows(written) == 2500


def test_each_bucket_gets_its_own_task(spark: object) -> None:
    # The shuffle behind groupBy sends key k to partition pmod(hash(k), n): with keys
    # 0..n-1 buckets would share tasks (and be scored one after the other).
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    from stageml.scoring.spark import BUCKET, _bucket_keys, _spark_hash_long, job_settings

    # The keys are found with a Python copy of Spark's hash of a long: it must agree.
    values = [0, 1, -1, 42, 2**31, -(2**31) - 5, 2**40 + 7, 2**63 - 1, -(2**63), *range(2, 300)]
    hashed = spark.createDataFrame([(v,) for v in values], "v long").select(  # type: ignore[attr-defined]
        "v", F.hash("v").alias("h")
    )
    assert {r["v"]: _spark_hash_long(r["v"]) for r in hashed.collect()} == {
        r["v"]: r["h"] for r in hashed.collect()
    }

    n = 7
    keys = _bucket_keys(n)
    rows = pd.DataFrame({BUCKET: [k for k in keys for _ in range(3)]})
    frame = spark.createDataFrame(rows)  # type: ignore[attr-defined]

    def where(group: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {BUCKET: [group[BUCKET].iloc[0]], "task": [TaskContext.get().partitionId()]}
        )  # type: ignore[union-attr]

    with job_settings(spark, n):  # type: ignore[arg-type]
        placed = frame.groupBy(BUCKET).applyInPandas(where, f"{BUCKET} long, task int").toPandas()
    assert sorted(placed["task"]) == list(range(n))
    assert dict(zip(placed[BUCKET], placed["task"], strict=True)) == {
        k: i for i, k in enumerate(keys)
    }


def test_bucket_frames_give_each_table_back_in_file_order(tmp_path: Path) -> None:
    # One bucket's staged blobs, from several splits of two tables, in shuffle order.
    import pyarrow as pa

    from stageml.scoring.blobs import BUCKET, Split, bucket_frames, stage_split

    n = 1_500
    interactions = pd.DataFrame(
        {
            "buyer_id": [f"B{i % 40}" for i in range(n)],
            "occurred_at": pd.date_range("2026-01-01", periods=n, freq="min"),
            "activity": [["email", "call", "visit"][i % 3] for i in range(n)],
            "note": [f"free text {i}" for i in range(n)],  # one value per row
        }
    )
    interactions.to_parquet(tmp_path / "interactions.parquet", row_group_size=500)
    pd.DataFrame({"buyer_id": ["B1", "B2"], "segment": ["smb", None]}).to_csv(
        tmp_path / "buyers.csv", index=False
    )
    parquet = str(tmp_path / "interactions.parquet")
    splits = [Split("interactions", parquet, (k, k + 500)) for k in (0, 500, 1000)]
    splits.append(Split("buyers", str(tmp_path / "buyers.csv")))
    staged = pa.Table.from_batches(
        [b for i, split in enumerate(splits) for b in stage_split(i, split, 1, [7], 1)]
    )
    assert set(staged[BUCKET].to_pylist()) == {7}
    frames = bucket_frames(staged.take(pa.array([3, 1, 2, 0])))

    got = frames["interactions"]
    assert got["_source_row"].tolist() == list(range(1, n + 1))  # file order
    assert list(got.columns) == [*interactions.columns, "_source_row"]
    for column in ("buyer_id", "activity", "note"):  # dictionaries decoded: the local dtypes
        assert str(got[column].dtype) == "string"
        assert got[column].tolist() == interactions[column].tolist()
    assert got["occurred_at"].dtype == "datetime64[us]"  # naive UTC
    assert got["occurred_at"].tolist() == interactions["occurred_at"].tolist()
    buyers = frames["buyers"]
    assert buyers["buyer_id"].tolist() == ["B1", "B2"]
    assert buyers["segment"].isna().tolist() == [False, True]  # the CSV read as locally


def test_bucket_count_fills_whole_waves_of_tasks() -> None:
    from stageml.scoring.spark import bucket_count

    # 12.4M rows at 1M per bucket: 13 buckets would leave a core idle in the last wave.
    assert bucket_count(12_399_720, 1_000_000, 2) == 14
    assert bucket_count(990_821, 1_000_000, 2) == 2  # one bucket per core at least
    assert bucket_count(49_565_393, 1_000_000, 2) == 50
    assert bucket_count(3_000_001, 1_000_000, 8) == 8
    assert bucket_count(0, 1_000_000, 2) == 2


@pytest.mark.usefixtures("spark")
def test_spark_scores_a_stage_aware_model_like_local(
    exit_export_dir: Path, exit_trained: TrainingResult, tmp_path: Path
) -> None:
    # The buyers and the stage history share the cogroup's right side, told apart by a tag.
    model, as_of = exit_trained.model, pd.Timestamp("2026-05-01")
    score_local(exit_export_dir, model, as_of, out=tmp_path / "local.parquet", reasons=1)
    score_spark(exit_export_dir, model, as_of, out=tmp_path / "spark.parquet", buckets=3, reasons=1)
    local, _ = _outputs(tmp_path / "local.parquet")
    spark, _ = _outputs(tmp_path / "spark.parquet")
    assert list(spark["buyer_id"]) == list(local["buyer_id"])
    columns = ["inflection_probability", "exit_probability", "stage", "inflection_up_1"]
    pd.testing.assert_frame_equal(spark[columns], local[columns], check_exact=False, atol=1e-9)
    assert (local["exit_probability"] == 1.0).any()  # buyers the CRM records as gone
