"""DVC stage: global SHAP views and reason codes for the latest snapshot."""

from _args import parse

from stageml import pipeline

params, args = parse("model", "snapshots", "out")
pipeline.explain(params, args.model, args.snapshots, args.out)
