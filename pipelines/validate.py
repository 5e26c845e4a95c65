"""DVC stage: check the contract; clean tables and rejects into data/validated."""

from _args import parse

from stageml import pipeline

params, args = parse("data", "out")
pipeline.validate(params, args.data, args.out)
