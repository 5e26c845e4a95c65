"""DVC stage: point-in-time features and labels at every snapshot instant."""

from _args import parse

from stageml import pipeline

params, args = parse("data", "out")
pipeline.snapshots(params, args.data, args.out)
