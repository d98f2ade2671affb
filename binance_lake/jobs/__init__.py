"""Jobs: sources and the fold composed the same way for the CLI, the Lambdas and Glue.

* :mod:`binance_lake.jobs.extract`: REST pages into raw, summarised and recorded (no pyarrow:
  the extractor Lambdas).
* :mod:`binance_lake.jobs.sync`: extract, then the transform tick; the tick alone; rebuild; gap repair.
* :mod:`binance_lake.jobs.backfill`: archive files through the fold, then REST for the rest.

Each job returns a JSON-able summary (rows, raw files, gaps, weight used) that the CLI
prints as its last line and the state machine passes on.
"""
