"""DVC stage: simulate an export (or copy a real one) into data/raw."""

from _args import parse

from stageml import pipeline

params, args = parse("out")
pipeline.ingest(params, args.out)
