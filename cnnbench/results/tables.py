"""Python rows ⇄ typed arrow tables, by the column types of `results.schema`: the one place
where a `runs` record, a history row or a gradient-norm row gets its parquet type."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from cnnbench.results.schema import (
    GRAD_NORM_TYPES,
    HISTORY_EXTRA_TYPES,
    HISTORY_TYPES,
    RUN_COLUMNS,
)

_FLOAT_WORDS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}  # how version 1 wrote them


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, str):
        return _FLOAT_WORDS.get(value.lower())
    return float(value)


def _int(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and not value.is_integer()):
        return None  # NaN (a pandas gap) or a fraction that no integer column holds
    return int(value)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return json.dumps(value, default=str)


def _convert(value_type: pa.DataType, values: list[Any]) -> pa.Array:
    if pa.types.is_floating(value_type):
        # NaN (no value) becomes null, which SQL aggregates skip; ±inf stays a float
        return pa.array([_float(v) for v in values], value_type, from_pandas=True)
    if pa.types.is_integer(value_type):
        return pa.array([_int(v) for v in values], value_type)
    if pa.types.is_boolean(value_type):
        return pa.array([None if v is None else bool(v) for v in values], value_type)
    if pa.types.is_timestamp(value_type):
        return pa.array(values, pa.int64()).cast(value_type)  # µs since the epoch
    return pa.array([_text(v) for v in values], value_type)


def _inferred(values: list[Any], *, hparam: bool) -> pa.DataType:
    """The type of a column the schema does not list: hyper-parameters and tool-made extras."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return pa.float64() if hparam or values else pa.null()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if not hparam and all(isinstance(v, int) for v in present):
            return pa.int64()
        return pa.float64()
    return pa.string()


def _column(name: str, values: list[Any]) -> pa.Array:
    if name in RUN_COLUMNS:
        return _convert(RUN_COLUMNS[name][0], values)
    value_type = _inferred(values, hparam=name.startswith("hp_"))
    return pa.nulls(len(values)) if value_type == pa.null() else _convert(value_type, values)


def runs_table(records: list[dict[str, Any]]) -> pa.Table:
    """`runs` rows as a table: every schema column (null where absent), typed, then the
    `hp_*` and other columns the records carry, in first-seen order."""
    names = dict.fromkeys(RUN_COLUMNS)
    for record in records:
        names.update(dict.fromkeys(record))
    return pa.table({name: _column(name, [r.get(name) for r in records]) for name in names})


def history_table(rows: list[dict[str, Any]], identity: dict[str, Any]) -> pa.Table:
    """One run's history rows, typed, with the run's identity columns on every row."""
    columns = {name: _convert(t, [r.get(name) for r in rows]) for name, t in HISTORY_TYPES.items()}
    for name, value_type in HISTORY_EXTRA_TYPES.items():
        columns[name] = _convert(value_type, [identity.get(name)] * len(rows))
    return pa.table(columns)


def grad_norms_table(rows: list[dict[str, Any]], written_at: int) -> pa.Table:
    return pa.table({name: _convert(t, [written_at if name == "written_at" else r.get(name)
                                        for r in rows]) for name, t in GRAD_NORM_TYPES.items()})


def written_at_us(table: pa.Table) -> list[int]:
    return table.column("written_at").cast(pa.int64()).to_pylist()


def empty(types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: pa.array([], t) for name, t in types.items()})
