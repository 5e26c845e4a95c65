"""DVC stage: score the whole export with reasons."""

from _args import parse

from stageml import pipeline

params, args = parse("data", "model", "out")
pipeline.score(params, args.data, args.model, args.out)
