"""Importers of real public exports: mapping rules on tiny frames, then the real data sets.

The real-data tests read /work/shared/data/real (read only) and skip, saying so, only
where that folder is absent. Training runs on a deterministic sample of BUYERS (never of
rows), so every sampled buyer keeps its whole history.
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stageml.cli import app
from stageml.config import load_params
from stageml.data.importers import IMPORTERS, import_export, mapping_doc
from stageml.data.importers.common import REJECTS_FILE, ImportResult, stage_history
from stageml.data.importers.maven import map_maven
from stageml.data.importers.olist import OLIST_LEAKY_COLUMNS, map_olist
from stageml.data.importers.taobao import map_taobao
from stageml.data.span import coincidence_rate, data_span, snapshot_dates
from stageml.data.validate import Export, load_export
from stageml.errors import ConfigError, ContractError


def _real_root() -> Path:
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    return beside if beside.is_dir() else Path("/work/shared/data/real")


REAL = _real_root()
FOLDERS = {
    "taobao": "taobao_userbehavior_head",
    "olist": "olist_marketing_funnel",
    "maven": "maven_crm_pipeline",
}
# Accounts.csv columns: none may reach the Maven export (the account field leaks closure).
MAVEN_ACCOUNT_COLUMNS = (
    "account",
    "sector",
    "year_established",
    "revenue",
    "employees",
    "office_location",
    "subsidiary_of",
)


def put(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def text_frame(text: str) -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(
        StringIO(textwrap.dedent(text)), dtype="string", keep_default_na=False, na_values=[""]
    )


# --- mapping rules on tiny inline frames ----------------------------------------------


def test_taobao_maps_utc_and_rejects_dirty_and_same_second_rows() -> None:
    raw = text_frame("""\
        user_id,item_id,category_id,behavior_type,timestamp
        1,10,100,pv,1511544070
        1,11,100,pv,1511544070
        1,12,100,cart,1511544080
        1,13,100,pv,1505117799
        2,14,100,like,1511544070
        """)
    mapped = map_taobao({"behaviour": raw})
    assert mapped.interactions["occurred_at"].tolist() == [
        pd.Timestamp("2017-11-24 17:21:10"),
        pd.Timestamp("2017-11-24 17:21:20"),
    ]
    assert mapped.rejects["row"].tolist() == [2, 4, 5]
    first_reason = mapped.rejects["reason"].iloc[0]
    assert first_reason.startswith("same user, second and behaviour")
    assert "outside the documented window" in mapped.rejects["reason"].iloc[1]
    assert "not one of pv, fav, cart, buy" in mapped.rejects["reason"].iloc[2]


def test_stage_history_keeps_only_new_furthest_stages() -> None:
    stamps = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-04"])
    interactions = pd.DataFrame(
        {
            "buyer_id": ["a", "a", "a", "a", "b"],
            "occurred_at": stamps,
            "activity": ["pv", "cart", "fav", "buy", "pv"],
        }
    )
    stage_of = IMPORTERS["taobao"].stage_of
    history = stage_history(interactions, stage_of, IMPORTERS["taobao"].stages)
    assert list(zip(history["buyer_id"], history["stage"], strict=True)) == [
        ("a", "viewed"),
        ("a", "carted"),
        ("a", "purchased"),
        ("b", "viewed"),
    ]


def test_olist_rejects_a_win_before_first_contact_with_its_lead() -> None:
    leads = text_frame("""\
        mql_id,first_contact_date,landing_page_id,origin
        good,2018-02-01,lp1,social
        bad,2018-03-08,lp2,
        open,2017-10-15,lp3,paid_search
        """)
    deals = text_frame(f"""\
        mql_id,won_date,{",".join(OLIST_LEAKY_COLUMNS)}
        good,2018-02-10 15:00:00,{",".join("x" * len(OLIST_LEAKY_COLUMNS))}
        bad,2018-03-06 19:38:55,{",".join("x" * len(OLIST_LEAKY_COLUMNS))}
        ghost,2018-03-06 19:38:55,{",".join("x" * len(OLIST_LEAKY_COLUMNS))}
        """)
    mapped = map_olist({"leads": leads, "deals": deals})
    got = mapped.rejects[["source", "buyer_id"]].apply(tuple, axis=1).tolist()
    assert got == [("leads", "bad"), ("deals", "bad"), ("deals", "ghost")]
    assert "before its first contact" in mapped.rejects["reason"].iloc[0]
    first = mapped.interactions.set_index("buyer_id")
    # São Paulo midnight: UTC-2 in summer time; 2017-10-15 starts at 01:00 local (DST).
    assert first.loc["good", "occurred_at"].iloc[0] == pd.Timestamp("2018-02-01 02:00")
    assert first.loc["open", "occurred_at"] == pd.Timestamp("2017-10-15 03:00")
    assert sorted(mapped.buyers.columns) == ["buyer_id", "landing_page_id"]
    assert not set(OLIST_LEAKY_COLUMNS) & set(mapped.interactions.columns)


def test_maven_rejects_prospecting_and_impossible_dates() -> None:
    pipeline = text_frame("""\
        opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value
        A,Ann,GTXPro,Acme,Won,2017-01-02,2017-02-01,100
        B,Ann,GTX Basic,,Engaging,2017-01-05,,
        C,Ann,GTX Basic,Acme,Lost,2017-03-05,2017-03-01,0
        D,Ann,GTX Basic,,Prospecting,,,
        E,Bob,GTX Basic,Acme,Lost,2017-01-05,2017-01-20,0
        """)
    products = text_frame("product,series,sales_price\nGTX Pro,GTX,4821\nGTX Basic,GTX,550\n")
    teams = text_frame("sales_agent,manager,regional_office\nAnn,Max,West\n")
    mapped = map_maven({"pipeline": pipeline, "products": products, "teams": teams})
    assert mapped.rejects["buyer_id"].tolist() == ["C", "D"]
    assert "close_date earlier than engage_date" in mapped.rejects["reason"].iloc[0]
    assert mapped.interactions["activity"].tolist() == [
        "engaged",
        "engaged",
        "engaged",
        "deal_won",
        "deal_lost",
    ]
    buyers = mapped.buyers.set_index("buyer_id")
    assert buyers.loc["A", "sales_price"] == 4821  # GTXPro joined to "GTX Pro"
    assert pd.isna(buyers.loc["E", "manager"])  # an unknown agent stays missing, not rejected
    assert not set(MAVEN_ACCOUNT_COLUMNS + ("close_value",)) & set(mapped.buyers.columns)


def test_maven_lost_deals_enter_the_lost_exit() -> None:
    maven = IMPORTERS["maven"]
    stamps = pd.to_datetime(["2017-01-02", "2017-02-01", "2017-01-05", "2017-01-20", "2017-01-06"])
    interactions = pd.DataFrame(
        {
            "buyer_id": ["A", "A", "E", "E", "B"],
            "occurred_at": stamps,
            "activity": ["engaged", "deal_won", "engaged", "deal_lost", "engaged"],
        }
    )
    history = stage_history(interactions, maven.stage_of, maven.stages, maven.exits)
    assert list(zip(history["buyer_id"], history["stage"], strict=True)) == [
        ("A", "engaging"),
        ("A", "won"),
        ("B", "engaging"),
        ("E", "engaging"),
        ("E", "lost"),
    ]
    assert maven.exits == ("lost",)


def test_coincidence_rate_counts_stage_changes_at_an_interaction_instant() -> None:
    t = pd.Timestamp("2024-01-01")
    export = Export(
        interactions=pd.DataFrame({"buyer_id": ["a"], "occurred_at": [t], "activity": ["x"]}),
        buyers=None,
        stage_history=pd.DataFrame(
            {
                "buyer_id": ["a", "a", "b"],
                "stage": ["s1", "s2", "s1"],
                "entered_at": [t, t + pd.Timedelta(days=1), t],
            }
        ),
        rejects=pd.DataFrame(),
        reports=(),
        warnings=(),
        sources={},
    )
    assert coincidence_rate(export) == pytest.approx(1 / 3)


def tiny_taobao(folder: Path, header: bool = True, hours: int = 40) -> Path:
    head = "user_id,item_id,category_id,behavior_type,timestamp\n" if header else ""
    cycle = ["pv", "pv", "fav", "cart", "buy", "pv", "pv", "pv"]
    rows = [
        (u, cycle[(h + u) % len(cycle)], 1511600000 + 4 * 3600 * h)
        for u in (1, 2, 3)
        for h in range(hours)
    ]
    put(folder, "UserBehavior.csv", head + "".join(f"{u},1,1,{b},{t}\n" for u, b, t in rows))
    return folder


def test_too_short_a_span_names_the_importer_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"taobao: the data spans .* too short for warmup 1d"):
        import_export("taobao", tiny_taobao(tmp_path / "src", hours=8), tmp_path / "out")


@pytest.mark.parametrize("header", [True, False])
def test_import_writes_tables_params_and_rejects(tmp_path: Path, header: bool) -> None:
    result = import_export("taobao", tiny_taobao(tmp_path / "src", header), tmp_path / "out")
    assert result.rows["interactions"] == sum(s.input_rows for s in result.sources)
    assert (tmp_path / "out" / REJECTS_FILE).read_text().startswith("source,row,buyer_id,reason")
    params = load_params(result.params)
    assert params.stages == IMPORTERS["taobao"].stages
    assert params.labels.horizon == pd.Timedelta(hours=24)
    assert result.coincidence_rate == 1.0
    assert "Asia/Shanghai" in result.mapping_doc and result.mapping_doc == mapping_doc("taobao")


def test_import_writes_parquet_that_validates(tmp_path: Path) -> None:
    result = import_export("taobao", tiny_taobao(tmp_path / "src"), tmp_path / "out", fmt="parquet")
    assert {p.suffix for p in result.tables.values()} == {".parquet"}
    export = load_export(tmp_path / "out", stages=load_params(result.params).recorded_stages)
    assert len(export.interactions) == result.rows["interactions"]


def test_unknown_kind_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown import kind 'hubspot'.*maven.*olist.*taobao"):
        import_export("hubspot", tmp_path, tmp_path / "out")


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown format 'xlsx'"):
        import_export("taobao", tiny_taobao(tmp_path / "src"), tmp_path / "out", fmt="xlsx")


def test_missing_source_file_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"none of \['sales_pipeline.csv'\].*Fix: pass --src"):
        import_export("maven", tmp_path, tmp_path / "out")


def test_missing_source_column_is_named(tmp_path: Path) -> None:
    put(tmp_path, "olist_marketing_qualified_leads_dataset.csv", "mql_id,origin\na,social\n")
    put(tmp_path, "olist_closed_deals_dataset.csv", "mql_id,won_date\n")
    with pytest.raises(ContractError, match=r"column 'first_contact_date, landing_page_id'"):
        import_export("olist", tmp_path, tmp_path / "out")


def test_a_stale_table_from_another_import_is_refused(tmp_path: Path) -> None:
    put(tmp_path / "out", "buyers.csv", "buyer_id,x\n1,2\n")
    with pytest.raises(ContractError, match=r"buyers.csv: the output folder already holds"):
        import_export("taobao", tiny_taobao(tmp_path / "src"), tmp_path / "out")


def test_cli_import_reports_rows_rejects_coincidence_and_params(tmp_path: Path) -> None:
    src = tiny_taobao(tmp_path / "src")
    result = CliRunner().invoke(
        app, ["import", "taobao", "--src", str(src), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "UserBehavior.csv" in text and "interactions rows" in text
    assert "100.0%" in text and "params.yaml" in text
    failed = CliRunner().invoke(app, ["import", "nope", "--src", str(src), "--out", str(tmp_path)])
    assert failed.exit_code == 2


# --- the real data sets --------------------------------------------------------------


def real_folder(kind: str) -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data sets not found at {REAL} (nor beside the repo): skipping")
    return REAL / FOLDERS[kind]


@pytest.fixture(scope="module")
def imported() -> dict[str, ImportResult]:
    """Imports done so far in this module, by kind (each real data set is imported once)."""
    return {}


def run_import(
    kind: str, cache: dict[str, ImportResult], tmp: pytest.TempPathFactory
) -> ImportResult:
    if kind not in cache:
        cache[kind] = import_export(kind, real_folder(kind), tmp.mktemp(kind))
    return cache[kind]


@pytest.fixture(params=sorted(FOLDERS))
def real(
    request: pytest.FixtureRequest,
    imported: dict[str, ImportResult],
    tmp_path_factory: pytest.TempPathFactory,
) -> ImportResult:
    return run_import(request.param, imported, tmp_path_factory)


def load(result: ImportResult) -> Export:
    return load_export(
        result.out, stages=load_params(result.params).recorded_stages, require_stage_history=True
    )


def raw_buyers(kind: str) -> dict[str, pd.Series]:
    """Buyer id of every row of every counted source, read independently of the importer."""
    folder = real_folder(kind)
    read = {"dtype": "string", "keep_default_na": False, "na_values": [""]}
    if kind == "taobao":
        return {
            "UserBehavior_head_users.csv": pd.read_csv(
                folder / "UserBehavior_head_users.csv", **read
            )["user_id"]
        }
    if kind == "olist":
        return {
            name: pd.read_csv(folder / name, **read)["mql_id"]
            for name in (
                "olist_marketing_qualified_leads_dataset.csv",
                "olist_closed_deals_dataset.csv",
            )
        }
    pipeline = pd.read_csv(folder / "sales_pipeline.csv", **read)
    return {"sales_pipeline.csv": pipeline["opportunity_id"]}


def test_real_import_validates_without_rejects_and_params_load(real: ImportResult) -> None:
    export = load(real)
    assert len(export.rejects) == 0
    assert {r.table: r.accepted_rows for r in export.reports} == real.rows
    assert coincidence_rate(export) == pytest.approx(1.0)
    params = load_params(real.params)
    start, end = data_span(export.interactions, export.stage_history)
    instants = snapshot_dates(params, start, end)
    # Every as-of instant's label window ends inside the data: no censored test label.
    assert instants[-1] + params.labels.horizon <= end
    assert len(instants) >= 10


def test_real_import_loses_nothing(real: ImportResult) -> None:
    written = pd.read_csv(real.out / "interactions.csv", dtype="string")
    rejects = pd.read_csv(real.rejects, dtype={"buyer_id": "string", "reason": "string"})
    assert rejects["reason"].notna().all() and (rejects["reason"].str.len() > 10).all()
    kept = set(written["buyer_id"])
    for file, buyers in raw_buyers(real.kind).items():
        mine = rejects[rejects["source"] == file]
        missing = set(buyers.dropna()) - kept - set(mine["buyer_id"])
        assert not missing, f"{file}: buyers neither written nor rejected: {sorted(missing)[:5]}"
        report = next(s for s in real.sources if Path(s.path).name == file)
        assert report.input_rows == len(buyers)
        assert report.accepted_rows + len(mine) == len(buyers)
        assert mine["row"].between(1, len(buyers)).all() and mine["row"].is_unique


def test_real_accepted_rows_match_the_written_interactions(real: ImportResult) -> None:
    written = pd.read_csv(real.out / "interactions.csv", dtype="string")
    counts = written["activity"].value_counts()
    accepted = {s.table: s.accepted_rows for s in real.sources}
    if real.kind == "taobao":
        assert accepted == {"behaviour": len(written)}
    elif real.kind == "olist":
        assert accepted == {"leads": counts["first_contact"], "deals": counts["deal_won"]}
    else:
        assert accepted == {"pipeline": written["buyer_id"].nunique()}


def test_real_known_rejects(real: ImportResult) -> None:
    rejects = pd.read_csv(real.rejects, dtype="string")
    reasons = rejects["reason"].value_counts()
    if real.kind == "taobao":
        assert reasons.filter(like="outside the documented window").sum() == 35
    elif real.kind == "olist":
        bad = rejects[rejects["buyer_id"] == "b91cf8812365f50ff4bda4bcd6206b05"]
        assert sorted(bad["source"]) == [
            "olist_closed_deals_dataset.csv",
            "olist_marketing_qualified_leads_dataset.csv",
        ]
    else:
        assert reasons.filter(like="Prospecting").sum() == 500


def missingness_gap(buyers: pd.DataFrame, closed: set[str]) -> dict[str, float]:
    """Per attribute: |missing share among closed/won buyers - among the rest|."""
    is_closed = buyers["buyer_id"].isin(closed)
    return {
        c: abs(buyers.loc[is_closed, c].isna().mean() - buyers.loc[~is_closed, c].isna().mean())
        for c in buyers.columns
        if c != "buyer_id"
    }


@pytest.mark.parametrize("kind", ["olist", "maven"])
def test_real_buyer_attributes_do_not_reveal_the_outcome(
    kind: str,
    imported: dict[str, ImportResult],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = run_import(kind, imported, tmp_path_factory)
    buyers = pd.read_csv(result.out / "buyers.csv", dtype="string")
    written = pd.read_csv(result.out / "interactions.csv", dtype="string")
    columns = set(buyers.columns) | set(written.columns)
    if kind == "olist":
        assert columns.isdisjoint(OLIST_LEAKY_COLUMNS)
        closed = set(written.loc[written["activity"] == "deal_won", "buyer_id"])
    else:
        assert columns.isdisjoint(MAVEN_ACCOUNT_COLUMNS + ("close_value",))
        closed = set(written.loc[written["activity"].isin(["deal_won", "deal_lost"]), "buyer_id"])
    # The general rule behind both: no attribute may be filled more often once closed.
    gaps = missingness_gap(buyers, closed)
    assert max(gaps.values()) < 0.02, gaps


def test_real_maven_account_field_would_have_leaked() -> None:
    """The rule's evidence: in the source, an empty account means an open deal."""
    deals = pd.read_csv(real_folder("maven") / "sales_pipeline.csv", dtype="string")
    closed = deals["deal_stage"].isin(["Won", "Lost"])
    assert deals.loc[closed, "account"].notna().all()
    assert deals.loc[~closed, "account"].isna().mean() > 0.5


def test_real_olist_won_dates_are_utc_sao_paulo_midnights() -> None:
    """The timestamp assumption's evidence: exact-hour wins sit at São Paulo midnight."""
    deals = pd.read_csv(real_folder("olist") / "olist_closed_deals_dataset.csv")
    won = pd.to_datetime(deals["won_date"])
    on_the_hour = won[(won.dt.minute == 0) & (won.dt.second == 0) & won.dt.hour.isin([2, 3])]
    local = on_the_hour.dt.tz_localize("UTC").dt.tz_convert("America/Sao_Paulo")
    assert len(on_the_hour) > 50
    assert (local.dt.hour == 0).mean() > 0.95


# --- training on a buyer sample (slow) -----------------------------------------------

FAST = {"n_estimators": 120, "learning_rate": 0.1, "early_stopping_rounds": 15}
SAMPLE_BUYERS = {"taobao": 500, "olist": 3000, "maven": 3000}


def sample_buyers(ids: pd.Series, n: int) -> set[str]:
    """The n buyer ids with the smallest SHA-1: deterministic, independent of row order."""
    unique = sorted(set(ids.dropna()), key=lambda b: hashlib.sha1(b.encode()).hexdigest())
    return set(unique[:n])


def sampled(export: Export, n: int, folder: Path) -> Path:
    keep = sample_buyers(export.interactions["buyer_id"], n)
    for name in ("interactions", "stage_history", "buyers"):
        frame = getattr(export, name)
        if frame is not None:
            frame[frame["buyer_id"].isin(keep)].to_parquet(folder / f"{name}.parquet")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FOLDERS))
def test_real_training_on_a_buyer_sample(
    kind: str,
    imported: dict[str, ImportResult],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import matplotlib.pyplot as plt

    from stageml.explain.plots import global_figures
    from stageml.models.train import train
    from stageml.scoring.local import score_local

    result = run_import(kind, imported, tmp_path_factory)
    params = load_params(result.params)
    booster = {k: getattr(params.train, k).model_copy(update=FAST) for k in ("stage", "inflection")}
    params = params.model_copy(update={"train": params.train.model_copy(update=booster)})
    folder = sampled(load(result), SAMPLE_BUYERS[kind], tmp_path)
    export = load_export(folder, stages=params.recorded_stages, require_stage_history=True)
    assert export.interactions["buyer_id"].nunique() <= SAMPLE_BUYERS[kind]
    trained = train(export, params)
    metrics = trained.metrics
    assert metrics["inflection.rows"] > 0 and 0 < metrics["inflection.positive_rate"] < 1
    assert metrics["inflection.roc_auc"] > 0.55
    assert not math.isnan(metrics["inflection.can_advance.roc_auc"])
    assert np.isfinite(metrics["inflection.brier"])
    assert trained.split.train[-1] < trained.split.test[0]
    # ... then score the sample with reason codes: every buyer is scored or rejected once.
    as_of = trained.split.test[-1]
    out = tmp_path / "scores.parquet"
    summary = score_local(folder, trained.model, as_of, out=out, reasons=2)
    scores = pd.read_parquet(out)
    rejects = pd.read_csv(tmp_path / "scores_rejects.csv", dtype={"buyer_id": "string"})
    rejected = set(rejects.loc[rejects["table"] == "buyer", "buyer_id"])
    history = export.interactions.loc[export.interactions["occurred_at"] < as_of, "buyer_id"]
    inputs = set(export.interactions["buyer_id"])
    if export.buyers is not None:
        inputs |= set(export.buyers["buyer_id"])
    assert set(scores["buyer_id"]) == set(history) and scores["buyer_id"].is_unique
    assert set(scores["buyer_id"]) | rejected == inputs
    assert not set(scores["buyer_id"]) & rejected
    assert summary["scored_buyers"] == len(scores) > 0
    assert scores["stage"].isin(params.stages).all()
    assert scores["stage_up_1"].notna().any() and scores["inflection_up_1"].notna().any()
    # The run's plots (MLflow logs them) render for two-stage taxonomies too.
    figures = global_figures(trained.model, trained.test_frame, sample=200, seed=1)
    assert {f"beeswarm_{s}" for s in params.stages} <= set(figures)
    for figure in figures.values():
        plt.close(figure)
