"""Fault injection: what real CRM exports carry, and what stageml makes of each fault.

Each fault has one expected outcome, asserted here: the row is rejected with a reason, a
warning is given, the value is read correctly, or a ContractError names file, column,
rows and fix (exit code 2). Every case that reads also checks the row accounting:
accepted + rejected == input rows, per table. README, "Messy exports", lists the faults
with the test that covers each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from stageml.data.messy import FAULTS, MessyExport, write_messy
from stageml.data.simulate import simulate
from stageml.data.validate import Export, load_export
from stageml.errors import ContractError
from stageml.models.train import TrainingResult

HEADER = "buyer_id,occurred_at,activity,channel,direction\n"
ROWS = "b1,2024-01-01T10:00:00Z,email_open,email,inbound\nb2,2024-01-02T11:00:00Z,web_visit,web,\n"


def put(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content))
    return path


def balanced(export: Export) -> None:
    """Every input row accounted for, per table and in the rejects file."""
    for report in export.reports:
        assert report.accepted_rows + report.rejected_rows == report.input_rows, report
        assert (export.rejects["table"] == report.table).sum() == report.rejected_rows


def rejected(export: Export, table: str) -> list[tuple[int, str]]:
    rows = export.rejects[export.rejects["table"] == table]
    return list(zip(rows["row"].tolist(), rows["reason"].tolist(), strict=True))


# --- the whole messy export: everything survivable at once ------------------------------


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> MessyExport:
    return write_messy(simulate(150, seed=5), tmp_path_factory.mktemp("messy"), seed=3)


def test_messy_export_reads_back_as_the_clean_export(messy: MessyExport) -> None:
    export = load_export(messy.paths["interactions"].parent, require_stage_history=True)
    balanced(export)
    assert {r.table: r.rejected for r in export.reports} == {
        table: {reason: n for reason, n in reasons.items() if n}
        for table, reasons in messy.rejected.items()
    }
    keys = ["buyer_id", "occurred_at", "activity", "channel", "direction"]
    want = messy.clean["interactions"].sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(
        export.interactions, want.astype(export.interactions.dtypes.to_dict()), check_dtype=True
    )
    history = messy.clean["stage_history"].sort_values(["buyer_id", "entered_at"])
    assert export.stage_history is not None
    pd.testing.assert_frame_equal(
        export.stage_history,
        history.reset_index(drop=True).astype(export.stage_history.dtypes.to_dict()),
    )
    assert export.buyers is not None
    # Leading zeros survive: ids are never read as numbers.
    assert export.buyers["buyer_id"].tolist() == sorted(messy.clean["buyers"]["buyer_id"])
    assert export.buyers["buyer_id"].str.startswith("00").all()
    assert len(export.warnings) == 2
    assert "exact repeat(s) of a stage row" in export.warnings[0]
    assert "2 buyer(s) in stage_history have no accepted interactions" in export.warnings[1]


def test_every_fault_kind_is_injected(messy: MessyExport) -> None:
    assert list(messy.injected) == list(FAULTS)
    assert all(count > 0 for count in messy.injected.values()), messy.injected
    raw = messy.paths["interactions"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b";" in raw.splitlines()[0]
    assert not raw.endswith(b"\n")  # truncated mid-row


@pytest.mark.slow
def test_scoring_the_messy_export_gives_the_clean_scores(
    export_dir: Path, trained: TrainingResult, tmp_path: Path
) -> None:
    """Batch scoring streams the CSV through DuckDB in partitions: same faults, same result."""
    from stageml.scoring.local import score_local

    messy = write_messy(simulate(1500, seed=11), tmp_path / "messy", seed=4)
    ids = dict(
        zip(
            simulate(1500, seed=11).buyers["buyer_id"],
            messy.clean["buyers"]["buyer_id"],
            strict=True,
        )
    )
    as_of = "2026-05-01"
    kw = {"partition_rows": 20_000, "workers": 1}
    clean = score_local(export_dir, trained.model, as_of, out=tmp_path / "clean.parquet", **kw)
    dirty = score_local(
        messy.paths["interactions"].parent,
        trained.model,
        as_of,
        out=tmp_path / "messy.parquet",
        **kw,
    )
    assert dirty["scored_buyers"] == clean["scored_buyers"]
    a = pd.read_parquet(tmp_path / "clean.parquet").assign(
        buyer_id=lambda f: f["buyer_id"].map(ids)
    )
    b = pd.read_parquet(tmp_path / "messy.parquet")
    cols = ["buyer_id", "stage", "inflection_probability"]
    pd.testing.assert_frame_equal(
        a[cols].astype({"buyer_id": "string"}).sort_values("buyer_id", ignore_index=True),
        b[cols].astype({"buyer_id": "string"}).sort_values("buyer_id", ignore_index=True),
    )
    rejects = pd.read_csv(tmp_path / "messy_rejects.csv", dtype={"buyer_id": "string"})
    rows = rejects[rejects["table"] == "interactions"]
    expected = messy.rejected["interactions"]
    assert rows["reason"].value_counts().to_dict() == expected
    # Row numbers point into the file: the bad rows really say "not a date" there.
    lines = messy.paths["interactions"].read_text(encoding="utf-8-sig").splitlines()
    bad = rows.loc[rows["reason"] == "unparseable_occurred_at", "row"]
    assert all(lines[int(r)].split(";")[1] == "not a date" for r in bad)


# --- one fault at a time ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        (b"\xef\xbb\xbf" + (HEADER + ROWS).encode(), "bom"),
        ((HEADER + ROWS).replace(",", ";").encode(), "semicolon"),
        ((HEADER + ROWS).replace(",", "\t").encode(), "tab"),
        (b"\xef\xbb\xbf" + (HEADER + ROWS).replace(",", ";").encode(), "bom + semicolon"),
    ],
)
def test_encoding_and_separator_are_recognised(tmp_path: Path, content: bytes, fault: str) -> None:
    put(tmp_path, "interactions", content)
    export = load_export(tmp_path)
    balanced(export)
    assert export.interactions["buyer_id"].tolist() == ["b1", "b2"], fault
    assert export.interactions["channel"].tolist() == ["email", "web"]


def test_mixed_offsets_day_first_and_excel_dates_are_the_same_instant(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        HEADER
        + "b1,2024-03-01T12:00:00Z,a,web,\n"
        + "b2,2024-03-01T14:00:00+02:00,a,web,\n"
        + "b3,2024-03-01 07:00:00-05:00,a,web,\n"
        + "b4,01/03/2024 12:00,a,web,\n"
        + "b5,45352.5,a,web,\n"
        + "b6,2024-03-01 12:00:00,a,web,\n",
    )
    export = load_export(tmp_path)
    balanced(export)
    assert set(export.interactions["occurred_at"]) == {pd.Timestamp("2024-03-01 12:00")}


def test_month_first_dates_are_an_error_not_a_guess(tmp_path: Path) -> None:
    put(tmp_path, "interactions", HEADER + "b1,03/01/2024,a,,\nb2,03/25/2024,a,,\n")
    with pytest.raises(
        ContractError,
        match=r"interactions.csv, column 'occurred_at', rows 2: dates such as \['03/25/2024'\] "
        r"are month-first.*Fix: export the dates as ISO-8601",
    ):
        load_export(tmp_path)


def test_numeric_ids_keep_their_leading_zeros(tmp_path: Path) -> None:
    put(tmp_path, "interactions", HEADER + "00042,2024-01-01,a,,\n42,2024-01-02,a,,\n")
    put(tmp_path, "buyers", "buyer_id,segment\n00042,smb\n042,ent\n")
    export = load_export(tmp_path)
    balanced(export)
    assert export.interactions["buyer_id"].tolist() == ["00042", "42"]
    assert export.buyers is not None and export.buyers["buyer_id"].tolist() == ["00042", "042"]


def test_case_and_whitespace_variants_of_names_are_one_name(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        HEADER + "b1,2024-01-01,Email Open ,Email,inbound\nb1,2024-01-02,  email  open,EMAIL ,\n",
    )
    put(
        tmp_path,
        "stage_history",
        "buyer_id,stage,entered_at\nb1, Alerted ,2024-01-01\nb1,ENGAGED,2024-01-02\n",
    )
    export = load_export(tmp_path)
    balanced(export)
    assert set(export.interactions["activity"]) == {"email open"}
    assert set(export.interactions["channel"]) == {"email"}
    assert export.stage_history is not None
    assert export.stage_history["stage"].tolist() == ["alerted", "engaged"]


def test_stage_names_outside_the_taxonomy_are_an_error(tmp_path: Path) -> None:
    put(tmp_path, "interactions", HEADER + ROWS)
    put(
        tmp_path,
        "stage_history",
        "buyer_id,stage,entered_at\nb1,alerted,2024-01-01\nb1,Nurture,2024-01-02\n",
    )
    with pytest.raises(
        ContractError,
        match=r"stage_history.csv, column 'stage', rows 2: 1 rows use stage names outside the "
        r"taxonomy: 'Nurture'.*Fix: map these names onto the taxonomy.*or add them",
    ):
        load_export(tmp_path)


def test_buyers_only_in_stage_history_are_a_warning(tmp_path: Path) -> None:
    put(tmp_path, "interactions", HEADER + ROWS)
    put(
        tmp_path,
        "stage_history",
        "buyer_id,stage,entered_at\nb1,alerted,2024-01-01\nb9,engaged,2024-01-02\n",
    )
    export = load_export(tmp_path)
    balanced(export)
    assert len(export.warnings) == 1 and "1 buyer(s) in stage_history" in export.warnings[0]
    assert "b9" in export.warnings[0]


def test_rows_dated_after_the_export_was_written_are_rejected(tmp_path: Path) -> None:
    path = put(tmp_path, "interactions", HEADER + ROWS + "b3,2024-06-01,a,,\n")
    # The export was written on 2024-03-01: a June row is a clock or typing error.
    written = pd.Timestamp("2024-03-01").timestamp()
    os.utime(path, (written, written))
    export = load_export(tmp_path)
    balanced(export)
    assert rejected(export, "interactions") == [(3, "occurred_after_export")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", r"interactions.csv: the file is empty \(no header, no rows\).*Fix: export"),
        (HEADER, r"interactions.csv: the table has no data rows.*Fix: export the interactions"),
        (HEADER + 'b1,2024-01-01,"call notes', r"interactions.csv: the file cannot be read"),
    ],
    ids=["empty file", "header only", "truncated inside a quoted field"],
)
def test_files_without_usable_rows_are_an_error(tmp_path: Path, content: str, problem: str) -> None:
    put(tmp_path, "interactions", content)
    with pytest.raises(ContractError, match=problem):
        load_export(tmp_path)


def test_a_row_cut_off_mid_way_is_rejected(tmp_path: Path) -> None:
    # Cut inside the timestamp, then (another file) just after it.
    put(tmp_path, "interactions", HEADER + ROWS + "b3,2024-01-03T1")
    export = load_export(tmp_path)
    balanced(export)
    assert rejected(export, "interactions") == [(3, "unparseable_occurred_at")]
    put(tmp_path, "interactions", HEADER + ROWS + "b3,2024-01-03T10:00")
    assert rejected(load_export(tmp_path), "interactions") == [(3, "missing_activity")]


def test_ragged_rows_keep_their_first_fields(tmp_path: Path) -> None:
    put(
        tmp_path,
        "interactions",
        HEADER + ROWS + "b3,2024-01-03,call,phone,inbound,x,y\nb4,2024-01-04\n",
    )
    export = load_export(tmp_path)
    balanced(export)
    assert export.interactions["buyer_id"].tolist() == ["b1", "b2", "b3"]
    assert export.interactions["direction"].tolist()[-1] == "inbound"
    assert rejected(export, "interactions") == [(4, "missing_activity")]


def test_a_run_killed_half_way_leaves_the_previous_output_intact(tmp_path: Path) -> None:
    out = tmp_path / "export"
    cli = [sys.executable, "-c", "from stageml.cli import main; main()"]
    first = subprocess.run(
        [*cli, "simulate", "--buyers", "50", "--out", str(out), "--format", "csv"],
        capture_output=True,
        check=True,
    )
    assert first.returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    run = subprocess.Popen(
        [*cli, "simulate", "--buyers", "40000", "--out", str(out), "--format", "csv"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".") and p.stat().st_size for p in out.iterdir()):
        assert run.poll() is None and time.monotonic() < deadline, "no temp output seen"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert after == before
    assert (
        load_export(out).reports[0].input_rows == len(before["interactions.csv"].splitlines()) - 1
    )
