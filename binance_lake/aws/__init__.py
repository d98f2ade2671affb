"""AWS entry support, outside the pure core: Lambda (settings, secret, extract loops, the
transform tick), Glue (job arguments, JSON logging), Spark (backfill and verify on executors)
and CloudWatch metrics. ``lambdas/`` and ``glue_scripts/`` import these; the core never does.
"""
