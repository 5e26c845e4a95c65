"""DVC stage: fit, backtest, calibrate, log to MLflow, register, write the report."""

from _args import parse

from stageml import pipeline
from stageml.tracking.runs import resolve_tracking_uri

params, args = parse("data", "snapshots", "out")
pipeline.train(params, args.data, args.snapshots, args.out, tracking_uri=resolve_tracking_uri())
