"""The deployment contract (issue 18 item 10): per deployed component, the names the CDK renders
into the synthesized template are exactly the names the component parses at run time, and each
one is required (dropping it fails the parse with its name)."""

from __future__ import annotations

from typing import Dict, Type

import pytest

from binance_lake.aws.settings import (
    BackfillSettings,
    ComponentSettings,
    ExtractSettings,
    OrdersSettings,
    TransformSettings,
    VerifySettings,
)
from binance_lake.errors import BadInputError

from .support import Synth, flatten, logical_id, resources

# Glue's own job parameters (installer, metrics, logging, language: AWS Glue Developer Guide, "Using
# job parameters in AWS Glue jobs") are kebab-case (``--additional-python-modules``,
# ``--custom-logGroup-prefix``) or upper case (``--TempDir``); ours are snake_case, which
# test_our_glue_names_cannot_be_mistaken_for_glues keeps true.


def _glues_own(name: str) -> bool:
    return "-" in name[2:] or name[2:3].isupper()


def _lambda_env(synth: Synth, construct) -> Dict[str, str]:
    fn = resources(synth.beta, "AWS::Lambda::Function")[logical_id(synth.beta_stack, construct)]
    return {k: flatten(v) for k, v in fn["Properties"]["Environment"]["Variables"].items()}


def _glue_args(synth: Synth, job) -> Dict[str, str]:
    props = resources(synth.beta, "AWS::Glue::Job")[logical_id(synth.beta_stack, job)]["Properties"]
    return {k: flatten(v) for k, v in props["DefaultArguments"].items() if not _glues_own(k)}


def _components(synth: Synth) -> Dict[str, tuple]:
    stack = synth.beta_stack
    return {
        "candles": (ExtractSettings, _lambda_env(synth, stack.extractors.candles)),
        "orders": (OrdersSettings, _lambda_env(synth, stack.extractors.orders)),
        "transform": (TransformSettings, _lambda_env(synth, stack.transform.function)),
        "backfill": (BackfillSettings, _glue_args(synth, stack.catalog.backfill_job)),
        "verify": (VerifySettings, _glue_args(synth, stack.catalog.verify_job)),
    }


@pytest.mark.parametrize("component", ["candles", "orders", "transform", "backfill", "verify"])
def test_names_rendered_are_the_names_read(synth: Synth, component: str) -> None:
    cls: Type[ComponentSettings]
    cls, rendered = _components(synth)[component]
    assert set(rendered) == set(cls.names())
    parsed = cls.parse(rendered)
    assert parsed.render() == rendered  # nothing lost or reshaped on the way
    for name in rendered:
        with pytest.raises(BadInputError, match=f"{name} is not set"):
            cls.parse({k: v for k, v in rendered.items() if k != name})


def test_every_configured_interval_reaches_every_component(synth: Synth) -> None:
    """With "1m,5m" configured, 5m was extracted and curated but never backfilled nor verified."""
    intervals = synth.context["binance-lake:intervals"]
    for component, (cls, rendered) in _components(synth).items():
        assert ",".join(cls.parse(rendered).intervals) == intervals, component
    assert cls is VerifySettings and cls.parse(rendered).tables == ["candles", "orders"]


def test_our_glue_names_cannot_be_mistaken_for_glues() -> None:
    for cls in (BackfillSettings, VerifySettings):
        assert cls.names() and not any(_glues_own(n) for n in cls.names()), cls.names()
