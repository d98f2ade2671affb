"""IAM for the least-privilege rehearsal: the roles of the synthesized template, a small
policy evaluator, and the map from a recorded AWS call to the IAM actions it needs.

Generic over the template: a component is any ``AWS::Lambda::Function`` (with the
``LAKE_URI`` environment the CDK gives our functions), ``AWS::Glue::Job`` or
``AWS::StepFunctions::StateMachine``; its role comes from ``Role``/``RoleArn``, its
statements from every ``AWS::IAM::Policy`` attached to that role plus the role's inline
``Policies``. Intrinsics are resolved to the names and ARNs the rehearsal created in moto.

The evaluator follows IAM's evaluation logic for one identity policy set: an explicit
Deny wins, else any matching Allow, else an implicit deny. Actions match case-insensitively
with ``*``/``?`` wildcards, resources case-sensitively; supported condition operators are
listed in ``_OPERATORS`` and an unknown one raises (never silently allowed). KMS use needs
the key policy too: a statement naming the account root delegates to IAM policies
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# -- intrinsics -----------------------------------------------------------------------


@dataclass
class Names:
    """What each template logical id became in the rehearsal (Ref values and GetAtt attributes)."""

    account: str
    region: str
    refs: Dict[str, str] = field(default_factory=dict)
    attrs: Dict[Tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.refs.update({"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account,
                          "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": ""})

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]  # KeyError: the template points at something the rehearsal lacks
        if "Fn::GetAtt" in value:
            logical, attr = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) \
                else value["Fn::GetAtt"].split(".", 1)
            return self.attrs[(logical, attr)]
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self.resolve(p)) for p in parts)
        if "Fn::Sub" in value:
            text, extra = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), extra), text)
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return self.resolve(items)[int(index)]
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, extra: Dict[str, Any]) -> str:
        if name in extra:
            return str(self.resolve(extra[name]))
        if "." in name:
            logical, attr = name.split(".", 1)
            return self.attrs[(logical, attr)]
        return self.refs[name]


# -- statements and evaluation -----------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: Tuple[str, ...]
    resources: Tuple[str, ...]
    conditions: Dict[str, Dict[str, Any]]
    not_actions: Tuple[str, ...] = ()
    not_resources: Tuple[str, ...] = ()
    principals: Optional[Dict[str, Tuple[str, ...]]] = None  # key policies only

    @classmethod
    def parse(cls, raw: Dict[str, Any], index: int) -> Statement:
        def tup(key: str) -> Tuple[str, ...]:
            v = raw.get(key, [])
            return tuple(v) if isinstance(v, list) else (v,)

        principals = None
        if "Principal" in raw:
            p = raw["Principal"]
            principals = {"AWS": ("*",)} if p == "*" else {k: tuple(v) if isinstance(v, list) else (v,)
                                                          for k, v in p.items()}
        first = (raw.get("Action") or raw.get("NotAction") or ["?"])
        first = first[0] if isinstance(first, list) else first
        return cls(raw.get("Sid") or f"#{index} ({first}...)", raw["Effect"], tup("Action"), tup("Resource"),
                   raw.get("Condition", {}), tup("NotAction"), tup("NotResource"), principals)

    def label(self) -> str:
        return self.sid

    def matches(self, action: str, resource: str, context: Dict[str, str]) -> bool:
        if self.actions and not any(_glob(p, action, case=False) for p in self.actions):
            return False
        if self.not_actions and any(_glob(p, action, case=False) for p in self.not_actions):
            return False
        if self.resources and not any(_glob(p, resource) for p in self.resources):
            return False
        if self.not_resources and any(_glob(p, resource) for p in self.not_resources):
            return False
        return all(_condition(op, key, values, context) for op, block in self.conditions.items()
                   for key, values in block.items())


def _glob(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _str_like(values: Sequence[str], actual: str) -> bool:
    return any(_glob(v, actual) for v in values)


_OPERATORS: Dict[str, Callable[[Sequence[str], str], bool]] = {
    "StringEquals": lambda vs, a: a in vs,
    "StringEqualsIgnoreCase": lambda vs, a: a.lower() in {v.lower() for v in vs},
    "StringLike": _str_like,
    "ArnEquals": lambda vs, a: a in vs,
    "ArnLike": _str_like,
    "Bool": lambda vs, a: a.lower() in {str(v).lower() for v in vs},
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals",
            "ArnNotLike": "ArnLike", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase"}


def _condition(op: str, key: str, values: Any, context: Dict[str, str]) -> bool:
    """One condition key. A missing key fails a positive operator and passes a negated one;
    ``...IfExists`` passes when the key is missing (IAM's condition operator rules)."""
    values = [str(v) for v in (values if isinstance(values, list) else [values])]
    if_exists = op.endswith("IfExists")
    base = op[: -len("IfExists")] if if_exists else op
    if ":" in base:
        raise NotImplementedError(f"condition set operator {op} is not evaluated by this harness; add it")
    actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
    if base in _NEGATED:
        return True if actual is None else not _OPERATORS[_NEGATED[base]](values, actual)
    if base not in _OPERATORS:
        raise NotImplementedError(f"condition operator {op} is not evaluated by this harness; add it")
    if actual is None:
        return if_exists
    return _OPERATORS[base](values, actual)


@dataclass
class Decision:
    allowed: bool
    by: List[str]  # Sids of the allowing statements (or the denying one)
    reason: str = ""


def evaluate(statements: Sequence[Statement], action: str, resource: str, context: Dict[str, str]) -> Decision:
    matching = [s for s in statements if s.matches(action, resource, context)]
    denies = [s.label() for s in matching if s.effect == "Deny"]
    if denies:
        return Decision(False, denies, "explicit deny")
    allows = [s.label() for s in matching if s.effect == "Allow"]
    return Decision(bool(allows), allows, "" if allows else "no statement allows it")


def key_policy_decision(key_policy: Sequence[Statement], principal_arn: str, account: str, action: str,
                        key_arn: str, context: Dict[str, str]) -> Tuple[bool, bool, List[str]]:
    """(allowed by the key policy, needs an IAM allow too, Sids). The account root as principal
    delegates to IAM; the principal's own ARN allows without an IAM statement."""
    root = f"arn:aws:iam::{account}:root"
    direct, delegated, deny = [], [], []
    for s in key_policy:
        aws = (s.principals or {}).get("AWS", ())
        if not s.matches(action, key_arn if s.resources != ("*",) else "*", context):
            continue
        if principal_arn in aws or "*" in aws:
            (deny if s.effect == "Deny" else direct).append(s.label())
        elif root in aws or account in aws:
            (deny if s.effect == "Deny" else delegated).append(s.label())
    if deny:
        return False, False, deny
    if direct:
        return True, False, direct
    return bool(delegated), True, delegated


# -- components of the template --------------------------------------------------------


@dataclass
class Component:
    name: str  # the function's/job's/state machine's logical id
    kind: str  # "lambda", "glue", "states"
    role: str  # the role's logical id
    resource: Dict[str, Any]
    raw_statements: List[Dict[str, Any]]  # as synthesized, before intrinsics are resolved
    managed_policies: List[Any] = field(default_factory=list)


def _role_logical(value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    raise AssertionError(f"role {value!r} is not a role of this stack; the rehearsal cannot recreate it")


def is_project_function(res: Dict[str, Any]) -> bool:
    """Our functions carry LAKE_URI; CDK's helpers (auto-delete, bucket deployment) do not."""
    props = res["Properties"]
    return "LAKE_URI" in props.get("Environment", {}).get("Variables", {})


def components(template: Dict[str, Any]) -> List[Component]:
    resources = template["Resources"]
    out = []
    for logical, res in resources.items():
        kind = {"AWS::Lambda::Function": "lambda", "AWS::Glue::Job": "glue",
                "AWS::StepFunctions::StateMachine": "states"}.get(res["Type"])
        if kind is None or (kind == "lambda" and not is_project_function(res)):
            continue
        props = res["Properties"]
        role = _role_logical(props.get("Role") or props.get("RoleArn"))
        raw: List[Dict[str, Any]] = []
        for policy in resources.values():
            if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role} in policy["Properties"].get("Roles", []):
                raw.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        role_props = resources[role]["Properties"]
        for inline in role_props.get("Policies", []):
            raw.extend(inline["PolicyDocument"]["Statement"])
        out.append(Component(logical, kind, role, res, raw, list(role_props.get("ManagedPolicyArns", []))))
    return sorted(out, key=lambda c: (c.kind, c.name))


def statements(raw: Sequence[Dict[str, Any]], names: Names) -> List[Statement]:
    return [Statement.parse(names.resolve(s), i) for i, s in enumerate(raw)]


def policy_document(stmts: Sequence[Dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(stmts)})
