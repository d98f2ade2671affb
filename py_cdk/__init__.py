"""The AWS deployment of binance-lake as a CDK app (stacks, constructs, pipeline).

Depends on the core (``binance_lake.schema``) one way: the core never imports this.
"""
