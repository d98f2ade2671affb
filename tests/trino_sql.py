"""Run Trino SQL (what Athena engine v3 executes) offline: parse it as Trino with sqlglot, render
it for DuckDB, and execute it there.

sqlglot maps Trino's functions and types to DuckDB's (``reduce`` -> ``list_reduce``, ``ROW`` ->
``STRUCT``, ``mod`` -> ``%``). One operator needs help: Trino divides DECIMAL(38, 0) by
DECIMAL(38, 0) into DECIMAL(38, 0) (trino.io docs, "Decimal functions and operators"), rounding
an inexact quotient half up, while DuckDB divides decimals in DOUBLE. Every ``/`` is replaced by
that exact half-up division (on non-negative operands, the only ones our SQL divides), so SQL
that leans on division truncating would give different numbers here, as it would on Athena.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

_BIG, _DEC0 = exp.DataType.build("HUGEINT"), exp.DataType.build("DECIMAL(38, 0)", dialect="duckdb")


def _half_up_division(node: exp.Expression) -> exp.Expression:
    if not isinstance(node, exp.Div):
        return node
    a, b = exp.cast(node.this, _BIG), exp.cast(node.expression, _BIG)
    two = exp.Literal.number(2)
    # round(a / b) half up, for a >= 0 and b > 0: (2a + b) // 2b
    numerator = exp.Paren(this=exp.Add(this=exp.Mul(this=two, expression=a), expression=b))
    quotient = exp.IntDiv(this=numerator, expression=exp.Paren(this=exp.Mul(this=two.copy(), expression=b)))
    return exp.cast(exp.Paren(this=quotient), _DEC0)


def parse_trino(sql: str) -> exp.Expression:
    """Parse as Trino; a syntax error raises (sqlglot's default error level)."""
    return sqlglot.parse_one(sql, read="trino")


def _drop_identity_finish(node: exp.Expression) -> exp.Expression:
    # Trino's reduce takes an output function, DuckDB's list_reduce none: an identity one
    # (``s -> s``) changes nothing, anything else cannot be run here.
    if isinstance(node, exp.Reduce) and node.args.get("finish") is not None:
        finish = node.args["finish"]
        assert isinstance(finish, exp.Lambda) and finish.this.sql() == finish.expressions[0].sql(), finish.sql()
        node.set("finish", None)
    return node


def trino_to_duckdb(sql: str) -> str:
    tree = parse_trino(sql).transform(_drop_identity_finish).transform(_half_up_division)
    return tree.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)
