"""The data contract: errors that stop a run, rows that are set aside, and the accounting."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from stageml.cli import app
from stageml.data.validate import (
    Export,
    InteractionsSchema,
    StageHistorySchema,
    load_export,
    summary_table,
    write_rejects,
)
from stageml.errors import ContractError

GOOD_INTERACTIONS = """\
buyer_id,occurred_at,activity,channel,direction
b1,2024-01-01T10:00:00Z,email_open,email,inbound
b2,2024-01-02T11:00:00Z,web_visit,web,outbound
"""
GOOD_STAGES = """\
buyer_id,stage,entered_at
b1,alerted,2024-01-01
b2,engaged,2024-01-02
"""


def put(folder: Path, name: str, content: str | pd.DataFrame) -> Path:
    """Write one table: CSV text as given (dedented), a frame as Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        path = folder / f"{name}.parquet"
        content.to_parquet(path, index=False)
    else:
        path = folder / f"{name}.csv"
        path.write_text(textwrap.dedent(content))
    return path


def where(file: str, column: str | None = None, rows: str | None = None) -> str:
    """Regex for the start of a ContractError message: file, column, rows."""
    text = file + (f", column '{column}'" if column else "") + (f", rows {rows}" if rows else "")
    return re.escape(text)


def reasons(export: Export, table: str) -> list[tuple[int, str]]:
    rows = export.rejects[export.rejects["table"] == table]
    return list(zip(rows["row"].tolist(), rows["reason"].tolist(), strict=True))


# --- contract errors --------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="export folder does not exist"):
        load_export(tmp_path / "nowhere")


def test_missing_interactions_file(tmp_path: Path) -> None:
    put(tmp_path, "stage_history", GOOD_STAGES)
    with pytest.raises(ContractError, match=where(str(tmp_path)) + ": no interactions table"):
        load_export(tmp_path)


def test_stage_history_required_for_training(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    assert load_export(tmp_path).stage_history is None
    with pytest.raises(ContractError, match="no stage_history table.*need stage labels"):
        load_export(tmp_path, require_stage_history=True)


@pytest.mark.parametrize(
    ("table", "header", "column", "hint"),
    [
        ("interactions", "buyer_id,Occurred At,activity", "occurred_at", "rename 'Occurred At'"),
        ("interactions", "buyer_id,time,activity", "occurred_at", "add the column"),
        ("stage_history", "buyer_id,Stage,entered_at", "stage", "rename 'Stage' to 'stage'"),
        ("buyers", "BuyerID,segment", "buyer_id", "rename 'BuyerID' to 'buyer_id'"),
    ],
)
def test_missing_required_column(
    tmp_path: Path, table: str, header: str, column: str, hint: str
) -> None:
    if table != "interactions":
        put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, table, f"{header}\n" + ",".join(["x"] * len(header.split(","))) + "\n")
    with pytest.raises(ContractError, match=where(f"{table}.csv", column) + ".*Fix: " + hint):
        load_export(tmp_path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_table(tmp_path: Path, fmt: str) -> None:
    if fmt == "csv":
        put(tmp_path, "interactions", "buyer_id,occurred_at,activity\n")
    else:
        empty = pd.DataFrame({c: pd.Series([], dtype="string") for c in ("buyer_id", "activity")})
        put(tmp_path, "interactions", empty.assign(occurred_at=pd.Series([], dtype="string")))
    with pytest.raises(ContractError, match=where(f"interactions.{fmt}") + ": .*no data rows"):
        load_export(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "interactions.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ContractError, match=where("interactions.parquet") + ": .*cannot be read"):
        load_export(tmp_path)


def test_timestamp_column_in_wrong_format(tmp_path: Path) -> None:
    # Epoch seconds: most rows fail, so the column (not the rows) is wrong.
    put(
        tmp_path,
        "interactions",
        """\
        buyer_id,occurred_at,activity
        b1,1704103200,email_open
        b1,2024-01-02T10:00:00Z,email_open
        b2,1704189600,web_visit
        """,
    )
    with pytest.raises(
        ContractError,
        match=where("interactions.csv", "occurred_at", "1, 3")
        + r": 2 of 3 values \(67%\) are not timestamps.*'1704103200'.*Fix: write timestamps",
    ):
        load_export(tmp_path)


def test_timestamp_column_with_no_value(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "stage_history", "buyer_id,stage,entered_at\nb1,alerted,\nb2,engaged,\n")
    with pytest.raises(
        ContractError, match=where("stage_history.csv", "entered_at", "1, 2") + ": 2 of 2 values"
    ):
        load_export(tmp_path)


def test_half_unparseable_is_rejected_not_fatal(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        """\
        buyer_id,occurred_at,activity
        b1,2024-01-02T10:00:00Z,email_open
        b1,yesterday,email_open
        """,
    )
    export = load_export(tmp_path)
    assert reasons(export, "interactions") == [(2, "unparseable_occurred_at")]


def test_stage_outside_taxonomy(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(
        tmp_path,
        "stage_history",
        """\
        buyer_id,stage,entered_at
        b1,alerted,2024-01-01
        b1,Evaluation,2024-01-05
        b2,closed-won,2024-01-06
        b2,closed-won,2024-01-07
        """,
    )
    with pytest.raises(
        ContractError,
        match=where("stage_history.csv", "stage", "2, 3, 4")
        + r": 3 rows use stage names outside the taxonomy: 'closed-won' \(2 rows\), "
        r"'Evaluation' \(1 rows\).*Fix: map these names",
    ):
        load_export(tmp_path)


def test_custom_taxonomy_accepts_its_stages(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "stage_history", "buyer_id,stage,entered_at\nb1,lead,2024-01-01\n")
    export = load_export(tmp_path, stages=("lead", "customer"))
    assert export.stage_history is not None
    assert export.stage_history["stage"].tolist() == ["lead"]


def test_repeated_stage_rows_keep_one_and_reject_the_rest(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(
        tmp_path,
        "stage_history",
        """\
        buyer_id,stage,entered_at
        b1,alerted,2024-01-01T00:00:00Z
        b1,engaged,2024-01-03
        b1,alerted,2024-01-01
        b1,alerted,2024-01-01 00:00:00+00:00
        """,
    )
    export = load_export(tmp_path)
    assert reasons(export, "stage_history") == [
        (3, "duplicate_stage_row"),
        (4, "duplicate_stage_row"),
    ]
    assert export.stage_history is not None
    assert export.stage_history["stage"].tolist() == ["alerted", "engaged"]
    report = export.reports[-1]
    assert (report.input_rows, report.accepted_rows, report.rejected_rows) == (4, 2, 2)
    assert any("2 exact repeat(s) of a stage row" in w for w in export.warnings)


def test_conflicting_stage_rows_the_later_listed_row_wins(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(
        tmp_path,
        "stage_history",
        """\
        buyer_id,stage,entered_at
        b1,committed,2024-01-05T10:00:00Z
        b1,alerted,2024-01-01
        b1,committed,2024-01-05T10:00:00Z
        b1,evaluating,2024-01-05T11:00:00+01:00
        b2,alerted,2024-01-05T10:00:00Z
        b2,engaged,2024-01-05T10:00:00Z
        """,
    )
    export = load_export(tmp_path)
    # Row 4 is the same instant written with an offset: it corrects rows 1 and 3. Rows 5
    # and 6 are a pass through two stages at once, listed in taxonomy order: both stay.
    assert reasons(export, "stage_history") == [
        (1, "conflicting_stage_row"),
        (3, "conflicting_stage_row"),
    ]
    assert export.stage_history is not None
    kept = export.stage_history[["buyer_id", "stage"]].agg(":".join, axis=1).tolist()
    assert kept == ["b1:alerted", "b1:evaluating", "b2:alerted", "b2:engaged"]
    assert any("2 row(s) contradicted by a later-listed row" in w for w in export.warnings)


def test_duplicate_buyer_ids(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "buyers", "buyer_id,segment\nb1,smb\nb2,ent\n b1 ,ent\n")
    with pytest.raises(
        ContractError,
        match=where("buyers.csv", "buyer_id", "1, 3") + r": 2 rows share a buyer_id.*\['b1'\]",
    ):
        load_export(tmp_path)


def test_every_row_rejected_is_an_error(tmp_path: Path) -> None:
    put(tmp_path, "interactions", "buyer_id,occurred_at,activity\n,2024-01-01,a\n,2024-01-02,b\n")
    with pytest.raises(
        ContractError,
        match=where("interactions.csv", rows="1, 2") + r": none of the 2 rows.*missing_buyer_id: 2",
    ):
        load_export(tmp_path)


def test_explicit_paths(tmp_path: Path) -> None:
    interactions = put(tmp_path / "a", "interactions", GOOD_INTERACTIONS)
    stages = put(tmp_path / "b", "stage_history", GOOD_STAGES)
    export = load_export({"interactions": interactions, "stage_history": str(stages)})
    assert export.sources == {"interactions": interactions, "stage_history": stages}
    with pytest.raises(ContractError, match=r"unknown table name\(s\) \['history'\]"):
        load_export({"interactions": interactions, "history": stages})
    with pytest.raises(ContractError, match=where(str(tmp_path / "missing.csv"))):
        load_export({"interactions": tmp_path / "missing.csv"})


# --- row rejects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",2024-01-05,call,phone,inbound", "missing_buyer_id"),
        ("   ,2024-01-05,call,phone,inbound", "missing_buyer_id"),
        ("b3,,call,phone,inbound", "missing_occurred_at"),
        ("b3,2024-02-30,call,phone,inbound", "unparseable_occurred_at"),
        ("b3,2024-01-05,,phone,inbound", "missing_activity"),
        ("b3,2024-01-05,call,phone,sideways", "invalid_direction"),
        ("b1,2024-01-01T10:00:00Z,email_open,email, Inbound", "duplicate_interaction"),
    ],
)
def test_row_problem_goes_to_rejects(tmp_path: Path, row: str, reason: str) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS + f"{row}\n")
    export = load_export(tmp_path)
    assert reasons(export, "interactions") == [(3, reason)]
    assert export.reports[0].accepted_rows == 2
    assert export.reports[0].rejected == {reason: 1}


def test_stage_history_and_buyers_rows_go_to_rejects(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "buyers", "buyer_id,segment\nb1,smb\n,ent\nb2,\n")
    put(
        tmp_path,
        "stage_history",
        GOOD_STAGES
        + textwrap.dedent("""\
        ,engaged,2024-01-02
        b1,,2024-01-02
        b2,evaluating,not-a-date
        b2,evaluating,
        """),
    )
    export = load_export(tmp_path)
    assert reasons(export, "buyers") == [(2, "missing_buyer_id")]
    assert reasons(export, "stage_history") == [
        (3, "missing_buyer_id"),
        (4, "missing_stage"),
        (5, "unparseable_entered_at"),
        (6, "missing_entered_at"),
    ]


def test_accounting_adds_up_with_every_kind_of_bad_row(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        GOOD_INTERACTIONS
        + textwrap.dedent("""\
        ,2024-01-05,call,phone,inbound
        b3,,call,phone,inbound
        b3,2024-01-05T25:00,call,phone,inbound
        b3,2024-01-05,,phone,inbound
        b3,2024-01-05,call,phone,sideways
        b1,2024-01-01T10:00:00Z,email_open,email,INBOUND
        b1,2024-01-01T10:00:00Z,email_open,email,inbound
        b3,2024-01-06,call,,
        b3,2024-01-06,call,,
        """),
    )
    put(tmp_path, "buyers", pd.DataFrame({"buyer_id": ["b1", None, "b3"], "employees": [5, 7, 9]}))
    put(tmp_path, "stage_history", GOOD_STAGES + "b3,engaged,2024-01-06\n,engaged,2024-01-07\n")
    export = load_export(tmp_path)

    input_rows = {"interactions": 11, "buyers": 3, "stage_history": 4}
    for report in export.reports:
        assert report.input_rows == input_rows[report.table]
        assert report.accepted_rows + report.rejected_rows == report.input_rows
        rejected = export.rejects[export.rejects["table"] == report.table]
        assert len(rejected) == report.rejected_rows
        assert rejected["reason"].value_counts().to_dict() == report.rejected
    clean = {
        "interactions": export.interactions,
        "buyers": export.buyers,
        "stage_history": export.stage_history,
    }
    assert {r.table: r.accepted_rows for r in export.reports} == {
        name: len(frame) for name, frame in clean.items() if frame is not None
    }
    assert export.reports[0].rejected == {
        "missing_buyer_id": 1,
        "missing_occurred_at": 1,
        "unparseable_occurred_at": 1,
        "missing_activity": 1,
        "invalid_direction": 1,
        "duplicate_interaction": 3,
    }
    # Every buyer id in the input is visible to callers, wherever it ended up.
    assert export.buyer_ids == {"b1", "b2", "b3"}


# --- types, time zones, normalisation ---------------------------------------------------


def test_ids_are_strings_in_csv_and_parquet(tmp_path: Path) -> None:
    put(
        tmp_path / "csv",
        "interactions",
        """\
        buyer_id,occurred_at,activity
        00042,2024-01-01,a
        42,2024-01-01,a
        """,
    )
    frame = pd.DataFrame({"buyer_id": [42, 7], "occurred_at": ["2024-01-01"] * 2, "activity": 1})
    put(tmp_path / "int", "interactions", frame)
    floats = frame.assign(buyer_id=[42.0, np.nan])
    put(tmp_path / "float", "interactions", floats)

    assert load_export(tmp_path / "csv").interactions["buyer_id"].tolist() == ["00042", "42"]
    from_int = load_export(tmp_path / "int").interactions
    assert from_int["buyer_id"].tolist() == ["42", "7"]
    assert from_int["activity"].tolist() == ["1", "1"]
    from_float = load_export(tmp_path / "float")
    assert from_float.interactions["buyer_id"].tolist() == ["42"]
    assert reasons(from_float, "interactions") == [(2, "missing_buyer_id")]


def test_timestamps_end_up_utc_and_naive(tmp_path: Path) -> None:
    put(
        tmp_path / "csv",
        "interactions",
        """\
        buyer_id,occurred_at,activity
        b1,2024-03-31T03:30:00+02:00,a
        b2,2024-03-31T01:30:00Z,a
        b3,2024-03-31 01:30:00,a
        b4,2024-03-30T20:30:00.000-05:00,a
        """,
    )
    expected = [pd.Timestamp("2024-03-31 01:30")] * 4
    csv = load_export(tmp_path / "csv").interactions
    assert csv["occurred_at"].tolist() == expected
    assert csv["occurred_at"].dtype == np.dtype("datetime64[us]")

    berlin = pd.Series([pd.Timestamp("2024-03-31 03:30")] * 2).dt.tz_localize("Europe/Berlin")
    aware = pd.DataFrame({"buyer_id": ["b1", "b2"], "occurred_at": berlin, "activity": "a"})
    put(tmp_path / "aware", "interactions", aware)
    assert load_export(tmp_path / "aware").interactions["occurred_at"].tolist() == expected[:2]

    naive = aware.assign(occurred_at=berlin.dt.tz_convert(None).astype("datetime64[ns]"))
    put(tmp_path / "naive", "interactions", naive)
    loaded = load_export(tmp_path / "naive").interactions["occurred_at"]
    assert loaded.tolist() == expected[:2]
    assert loaded.dtype == np.dtype("datetime64[us]")


def test_clean_frames_have_documented_dtypes_and_order(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        """\
        buyer_id,occurred_at,activity,channel,direction,notes
        b2,2024-01-02,web_visit, Web ,OUTBOUND ,x
        b1,2024-01-03,call,,,y
        b1,2024-01-01,email_open,email, inbound,z
        """,
    )
    put(tmp_path, "buyers", "buyer_id,segment,employees\nb2,ent,500\nb1,smb,\n")
    put(
        tmp_path,
        "stage_history",
        """\
        buyer_id,stage,entered_at
        b1,engaged,2024-01-02
        b1,alerted,2024-01-01
        """,
    )
    export = load_export(tmp_path)
    interactions = export.interactions
    assert list(interactions.columns) == [
        "buyer_id",
        "occurred_at",
        "activity",
        "channel",
        "direction",
    ]
    assert interactions["buyer_id"].tolist() == ["b1", "b1", "b2"]
    assert interactions["activity"].tolist() == ["email_open", "call", "web_visit"]
    assert interactions["channel"].tolist() == ["email", "unknown", "web"]
    assert interactions["direction"].tolist() == ["inbound", pd.NA, "outbound"]
    assert isinstance(interactions.index, pd.RangeIndex)
    InteractionsSchema.validate(interactions)

    assert export.buyers is not None
    assert export.buyers["buyer_id"].tolist() == ["b1", "b2"]
    assert export.buyers["segment"].dtype == pd.StringDtype()
    assert pd.api.types.is_float_dtype(export.buyers["employees"])

    assert export.stage_history is not None
    StageHistorySchema.validate(export.stage_history)
    assert export.stage_history["stage"].tolist() == ["alerted", "engaged"]
    assert export.rejects.dtypes.astype(str).to_dict() == {
        "table": "string",
        "row": "int64",
        "buyer_id": "string",
        "reason": "string",
    }


def test_optional_columns_absent(tmp_path: Path) -> None:
    put(tmp_path, "interactions", "buyer_id,occurred_at,activity\nb1,2024-01-01,a\n")
    interactions = load_export(tmp_path).interactions
    assert interactions["channel"].tolist() == ["unknown"]
    assert interactions["direction"].isna().all()
    assert interactions["direction"].dtype == pd.StringDtype()


def test_warns_about_stage_history_buyers_without_interactions(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "stage_history", GOOD_STAGES + "b9,alerted,2024-01-01\nb8,alerted,2024-01-01\n")
    export = load_export(tmp_path)
    assert len(export.warnings) == 1
    assert re.search(
        r"stage_history\.csv: 2 buyer\(s\) .* no accepted interactions.*: b8, b9",
        export.warnings[0],
    )
    assert export.reports[-1].accepted_rows == 4  # a warning, not a reject


# --- outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_rejects_round_trip(tmp_path: Path, suffix: str) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS + ",2024-01-05,call,phone,inbound\n")
    export = load_export(tmp_path)
    path = write_rejects(export, tmp_path / "out" / f"rejects{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert back[["table", "row", "reason"]].values.tolist() == [
        ["interactions", 3, "missing_buyer_id"]
    ]


def test_summary_table_lists_reasons(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS + "b1,2024-01-05,,phone,inbound\n")
    console = Console(width=100, record=True)
    console.print(summary_table(load_export(tmp_path)))
    text = console.export_text()
    assert re.search(r"interactions\s+│\s+3\s+│\s+2\s+│\s+missing_activity\s+│\s+1", text)


# --- command line -----------------------------------------------------------------------


def test_cli_exit_0_with_rejects(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS + "b3,2024-01-05,call,phone,sideways\n")
    put(tmp_path, "stage_history", GOOD_STAGES + "b9,alerted,2024-01-01\n")
    result = CliRunner().invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "invalid_direction" in result.stdout
    assert "warning:" in result.stderr and "b9" in result.stderr
    rejects = pd.read_csv(tmp_path / "_rejects.csv")
    assert rejects["reason"].tolist() == ["invalid_direction"]

    out = tmp_path / "elsewhere" / "rejects.parquet"
    result = CliRunner().invoke(app, ["validate", "--data", str(tmp_path), "--rejects", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["row"].tolist() == [3]


def test_cli_exit_2_on_contract_error(tmp_path: Path) -> None:
    put(tmp_path, "interactions", GOOD_INTERACTIONS)
    put(tmp_path, "stage_history", GOOD_STAGES + "b2,won,2024-01-05\n")
    result = CliRunner().invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert re.search(r"error:.*stage_history\.csv, column 'stage', rows 3: .*'won'", result.stderr)
    assert not (tmp_path / "_rejects.csv").exists()


def test_validating_does_not_warn_about_pandas_on_spark(export_dir: Path) -> None:
    # pandera imports pyspark.pandas (on import and on its first validation), which warns
    # under pandas 3; stageml never uses it.
    run = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", "from stageml.cli import main; main()"]
        + ["validate", "--data", str(export_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "CRM export check" in run.stdout


def test_name_text_reads_names_as_people_do() -> None:
    """Case and runs of whitespace do not make a new activity; blanks are missing; order kept."""
    from stageml.data.parse import name_text

    raw = pd.Series(
        ["Email  Open ", None, "email open", "  ", "EMAIL\tOPEN", "Call"], index=[9, 3, 5, 7, 1, 2]
    )
    named = name_text(raw)
    assert named.index.tolist() == [9, 3, 5, 7, 1, 2]
    assert named.dtype == "string"
    assert named.tolist() == ["email open", pd.NA, "email open", pd.NA, "email open", "call"]


@pytest.mark.parametrize("distinct", [5, 20_000])
def test_sort_stably_is_pandas_stable_sort(distinct: int) -> None:
    """Same order as ``sort_values`` (ties in input order, missing last) on either path.

    Five keys of ~13,000 distinct values each do not fit one 63-bit key: the lexsort path.
    """
    from stageml.data.parse import sort_stably

    rng = np.random.default_rng(distinct)
    n = 20_000
    text = [f"v{i}" for i in range(distinct)]
    frame = pd.DataFrame(
        {
            "a": pd.array(rng.choice(text, n), dtype="string"),
            "t": pd.to_datetime(rng.integers(0, distinct, n), unit="s"),
            "b": pd.array(rng.choice([*text, None], n), dtype="string"),
            "c": rng.integers(0, distinct, n),
            "d": pd.array(rng.choice(text, n), dtype="string"),
        },
        index=rng.permutation(n),
    )
    keys = ["a", "t", "b", "c", "d"] if distinct > 5 else ["b", "t", "a"]
    expected = frame.sort_values(keys, kind="stable")
    pd.testing.assert_frame_equal(sort_stably(frame, keys), expected)
