"""Least privilege, proven by execution (issue 11).

Every component of the synthesized Beta stack (each Lambda, each Glue job's code path, the
state machine's service integrations) runs under its own role in a moto_server that
enforces IAM; every AWS call it makes is then judged by the access matrix against the
role's synthesized statements and the key policy (conditions, KMS use behind S3, Secrets
Manager and SNS). A role that loses a permission the code uses fails here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.cloud.box import StackAssembly
from tests.cloud.iam_policy import Component
from tests.cloud.iam_run import Result, markdown, rehearse, run_component, services

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cloud.md"
BEGIN, END = "<!-- iam-matrix:begin (python -m tests.cloud.iam_run) -->", "<!-- iam-matrix:end -->"


@pytest.fixture(scope="module")
def result(beta_stack: StackAssembly) -> Iterator[Result]:
    res = rehearse(beta_stack)
    yield res
    res.rehearsal.stop()


def _describe(res: Result, name: str) -> List[str]:
    o = res.outcomes[name]
    out = [f"{name}: {o.error}"] if o.error else []
    out += [f"{name}: {c.service}:{c.operation} {c.params.get('Key') or c.params.get('Prefix') or ''} -> "
            f"{c.status} {c.error}" for c in o.denied()]
    return out


def test_every_component_of_the_template_is_rehearsed(result: Result) -> None:
    kinds = {c.kind for c in result.rehearsal.comps.values()}
    assert kinds == {"lambda", "glue", "states"}, kinds
    assert set(result.outcomes) == set(result.rehearsal.comps)
    for name, outcome in result.outcomes.items():
        assert any(c.source == "recorded" for c in outcome.calls), f"{name} made no AWS call: did it run at all?"


def test_each_component_runs_under_its_role_without_access_denied(result: Result) -> None:
    problems = [line for name in result.outcomes for line in _describe(result, name)]
    assert not problems, "components failed under their own roles (moto enforcing IAM):\n" + "\n".join(problems)


def test_access_matrix_allows_every_call_the_components_made(result: Result) -> None:
    denied = [f"{name}: {j.need.action} on {j.need.resource} {j.need.ctx() or ''} ({j.need.why}): "
              f"{j.identity.reason or ('key policy' if not j.key_ok else '')}"
              for name, judged in result.judged.items() for j in judged if not j.allowed]
    assert not denied, "the synthesized policies do not allow:\n" + "\n".join(denied)


def test_state_machine_may_publish_to_its_kms_encrypted_topic(result: Result) -> None:
    states = [n for n, c in result.rehearsal.comps.items() if c.kind == "states"]
    publishes = [j for n in states for j in result.judged[n] if j.need.why == "Publish to an SSE topic"]
    assert {j.need.action for j in publishes} == {"kms:GenerateDataKey", "kms:Decrypt"}, \
        "the alerts topic is expected to be encrypted with the stack's key"
    missing = [j.need.action for j in publishes if not j.allowed]
    assert not missing, f"the state machine's role cannot use the alerts topic's key: {missing}"


def _candles(result: Result) -> Component:
    found = [c for c in result.rehearsal.comps.values()
             if str(c.resource["Properties"].get("Handler", "")).startswith("candles.")]
    assert len(found) == 1, found
    return found[0]


def _without(raw: List[dict], action: str) -> List[dict]:
    out = []
    for s in copy.deepcopy(raw):
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        kept = [a for a in acts if a != action]
        if kept:
            out.append({**s, "Action": kept})
    return out


def test_a_role_that_loses_a_permission_the_code_uses_fails(result: Result, beta_stack: StackAssembly) -> None:
    """The harness really enforces: the candles extractor without s3:PutObject is denied by
    moto, its run fails, and the matrix names the missing action."""
    comp, r = _candles(result), result.rehearsal
    reduced = _without(comp.raw_statements, "s3:PutObject")
    assert reduced != comp.raw_statements, "the candles role no longer grants s3:PutObject"
    r.replace_statements(comp, reduced)
    try:
        with services() as svc:
            outcome = run_component(r, beta_stack, comp, svc, reduced)
    finally:
        r.replace_statements(comp, comp.raw_statements)
    assert outcome.error, "the extractor succeeded without s3:PutObject: IAM is not enforced"
    assert [c.operation for c in outcome.denied()] == ["PutObject"]
    assert any(j.need.action == "s3:PutObject" and not j.allowed for j in r.judge(outcome))


def test_docs_show_the_matrix_of_this_template(result: Result) -> None:
    text = DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match, f"docs/cloud.md has no {BEGIN} ... {END} block"
    assert match.group(1) == markdown(result), \
        "docs/cloud.md's access matrix is stale: regenerate it with `python -m tests.cloud.iam_run`"
