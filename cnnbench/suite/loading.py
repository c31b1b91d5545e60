"""Reading a suite file: YAML with file:line errors, `--set` overrides, name checks.

Precedence: registry defaults < suite file < `--set` overrides.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cnnbench.errors import CnnbenchError, SuiteError, did_you_mean
from cnnbench.suite.schema import DatasetConfig, OptimizerEntry, Suite
from cnnbench.suite.size import size_errors

# ─── Loading, with errors that name file, line and key ────────────────────────────────────────


class _Source:
    """The YAML text's node tree, to find the line of any key path."""

    def __init__(self, file: str, node: yaml.Node | None) -> None:
        self.file, self.node = file, node
        self.overrides: list[tuple[list[str | int], str]] = []  # (key path, the --set text)

    def locate(self, loc: tuple) -> tuple[list[str | int], int | None]:
        """The part of pydantic's `loc` that exists in the document, and its 1-based line."""
        path, line, _ = self.walk(loc)
        return path, line

    def walk(self, loc: tuple) -> tuple[list[str | int], int | None, yaml.Node | None]:
        """`locate`, with the deepest node reached."""
        node, path = self.node, []
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == part), None)
                if child is None and isinstance(part, str):
                    key = next((k for k, _ in node.value if k.value == part), None)
                    child = key
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                child = node.value[part] if part < len(node.value) else None
            if child is None:
                if isinstance(part, int) or (isinstance(part, str) and not _is_union_tag(part)):
                    path.append(part)
                continue
            path.append(part)
            node, line = child, child.start_mark.line + 1
        return path, line, node

    def hint(self, loc: tuple) -> str:
        """Why a plain YAML word arrived as another type: `off`, `no`, `1e3`, `null` …"""
        path, _, node = self.walk(loc)
        if (not isinstance(node, yaml.ScalarNode) or node.style is not None
                or len(path) != len([p for p in loc if not _is_union_tag(str(p))])):
            return ""
        kind = {"tag:yaml.org,2002:bool": "the boolean", "tag:yaml.org,2002:int": "the integer",
                "tag:yaml.org,2002:float": "the number", "tag:yaml.org,2002:null": "null"
                }.get(node.tag)
        if kind is None:
            return ""
        value = f"{kind} {_yaml_value(node)}" if kind != "null" else "null (no value)"
        return (f" (YAML reads {node.value} as {value}; quote it, \"{node.value}\", if you mean "
                "the text)")

    def where(self, loc: tuple) -> str:
        path, line = self.locate(loc)
        key = _dotted(path)
        for parts, text in reversed(self.overrides):  # the last --set of a key wins
            if path[:len(parts)] == parts:
                return f"--set {text!r}: {key}"
        return f"{self.file}{f':{line}' if line else ''}" + (f": {key}" if key else "")


def _yaml_value(node: yaml.ScalarNode) -> str:
    value = yaml.safe_load(node.value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_union_tag(part: str) -> bool:
    # pydantic puts the union member it tried into loc: 'str', 'ModelEntry', 'list[...]', ...
    return part[:1].isupper() or part in {"str", "int", "float", "bool"} or "[" in part or (
        part.startswith("literal")
    ) or part in {"constrained-float", "constrained-int", "constrained-str"}


def _dotted(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _unknown_keys(data: Any, model: type[BaseModel], path: tuple) -> list[tuple[tuple, str]]:
    """Keys the schema does not know, with a 'did you mean' and the valid ones, at any depth."""
    if not isinstance(data, dict):
        return []
    errors = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            if model.model_config.get("extra") == "forbid":
                hint = did_you_mean(key, fields)
                errors.append(
                    ((*path, key), f"unknown key {key!r}{hint} valid: {', '.join(fields)}")
                )
            continue
        for sub in _models_in(fields[key].annotation):
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                if isinstance(item, dict) and _may_be(item, sub, fields[key].annotation):
                    where = (*path, key) if i is None else (*path, key, i)
                    errors += _unknown_keys(item, sub, where)
    return errors


def _may_be(item: dict, model: type[BaseModel], annotation: Any) -> bool:
    """Whether `item` is meant as `model` among a union's models (e.g. an lr grid `{log, num}`
    or a search `{search: ...}`): it shares a key with it, or with none of them."""
    shares = [m for m in _models_in(annotation) if set(item) & set(m.model_fields)]
    return model in shares or not shares


def _raise_for(errors: list[tuple[tuple, str]], source: _Source) -> None:
    located = [(tuple(source.locate(loc)[0]), loc, msg) for loc, msg in errors]
    # a union that failed deeper in one member also fails shallowly in the others: keep the deep one
    deepest = [(loc, msg) for path, loc, msg in located
               if not any(len(other) > len(path) and other[:len(path)] == path
                          for other, _, _ in located)]
    merged: dict[str, list[str]] = {}
    for loc, msg in deepest:
        if "valid string" in msg:
            msg += source.hint(loc)
        merged.setdefault(source.where(loc), []).append(msg)
    lines = [f"{where}: {' or '.join(dict.fromkeys(msgs))}" for where, msgs in merged.items()]
    raise SuiteError("invalid suite:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])


# what a suite file may hold: a few levels and a few thousand values; anything past these is a
# damaged or hostile file (YAML aliases can make a short file expand without bound)
MAX_DEPTH = 64
MAX_VALUES = 100_000
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
         (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 text (or UTF-16/32 with a byte-order mark, as YAML allows); anything else is one
    message naming the first bad byte."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                break
    if b"\x00" in raw:
        raise SuiteError(f"{path}: a binary file, not YAML text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SuiteError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
                         "the file as UTF-8") from None


def _check_tree(path: Path, root: yaml.Node) -> None:
    """Duplicate keys (YAML would silently keep the last), nesting deeper than MAX_DEPTH and more
    than MAX_VALUES values once aliases are expanded: one message each, with the line."""
    stack, values = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        values += 1
        where = f"{path}:{node.start_mark.line + 1}"
        if depth > MAX_DEPTH:
            raise SuiteError(f"{where}: nested deeper than {MAX_DEPTH} levels; a suite is a few "
                             "levels deep")
        if values > MAX_VALUES:
            raise SuiteError(f"{path}: more than {MAX_VALUES:,} values (with YAML aliases "
                             "expanded); a suite holds far fewer")
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise SuiteError(f"{path}:{line}: key {key.value!r} given twice (first "
                                         f"at line {seen[key.value]}); keep one")
                    seen[key.value] = line
                stack += [(key, depth + 1), (value, depth + 1)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, depth + 1) for item in node.value]


def _read_yaml(path: Path) -> tuple[Any, _Source]:
    if not path.exists():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    if path.is_dir():
        raise SuiteError(f"suite file {str(path)!r} is a directory; give a .yaml file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"suite file {str(path)!r} cannot be read: {exc.strerror}") from None
    text = _decode(path, raw)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_tree(path, node)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}: YAML syntax error: {problem}") from None
    except RecursionError:  # the parser itself recurses: nesting far past MAX_DEPTH
        raise SuiteError(f"{path}: nested deeper than {MAX_DEPTH} levels; a suite is a few "
                         "levels deep") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a YAML mapping with keys name, dataset, matrix, ...")
    return data, _Source(str(path), node)


def load_suite(path: str | Path, overrides: list[str] | None = None) -> Suite:
    """Read, override and validate a suite file. Raises `SuiteError` naming file, line and key."""
    data, source = _read_yaml(Path(path))
    for override in overrides or []:
        apply_override(data, override)
        key = override.partition("=")[0]
        source.overrides.append(([int(p) if p.isdigit() else p for p in key.split(".")], override))
    return validate_suite(data, source)


def validate_suite(data: dict, source: _Source | None = None) -> Suite:
    source = source or _Source("<suite>", None)
    unknown = _unknown_keys(data, Suite, ())
    if unknown:
        _raise_for(unknown, source)
    try:
        # strict, as JSON: a YAML value of another type (a boolean for a count, a string for a
        # number, 2.5 for an integer) is an error, never silently converted; JSON mode still
        # reads lists as tuples. Values JSON cannot hold (YAML dates) arrive as text.
        suite = Suite.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        _raise_for([(e["loc"], e["msg"]) for e in exc.errors()], source)
    if too_many := size_errors(suite):  # before anything counts or expands them one by one
        _raise_for(too_many, source)
    _check_names(suite, source)
    return suite


def _check_names(suite: Suite, source: _Source) -> None:
    """Unknown model/optimizer/dataset names and bad hyper-parameters, before anything runs."""
    from cnnbench.data import DATASETS
    from cnnbench.imports import is_import_path, load_object
    from cnnbench.models import MODELS
    from cnnbench.optim import OPTIMIZERS, resolve_hparams
    from cnnbench.optim.schedules import check_schedule
    from cnnbench.suite.distributed import distributed_errors
    from cnnbench.suite.graphs import graph_errors

    errors: list[tuple[tuple, str]] = []

    def check(loc: tuple, fn) -> None:
        try:
            fn()
        except CnnbenchError as exc:
            errors.append((loc, str(exc)))

    check(("dataset", "name") if isinstance(suite.dataset, DatasetConfig) else ("dataset",),
          lambda: DATASETS.get(suite.dataset_config.name))
    schedule = suite.train.schedule
    check(("train", "schedule"),
          lambda: check_schedule(schedule if isinstance(schedule, str) else schedule.model_dump(),
                                 epochs=suite.train.epochs))

    def model_name(loc: tuple, name: str) -> None:
        check(loc, lambda: load_object(name, "model") if is_import_path(name) else MODELS.get(name))

    for i, entry in enumerate(suite.matrix.model):
        model_name(("matrix", "model", i), entry if isinstance(entry, str) else entry.name)
    for i, entry in enumerate(suite.include):
        name = entry.model if isinstance(entry.model, str) else entry.model.name
        model_name(("include", i, "model"), name)
    for i, entry in enumerate(suite.exclude):
        if entry.model is not None:
            model_name(("exclude", i, "model"), entry.model)
    labels: list[str] = []
    for i, entry in enumerate(suite.matrix.optimizer):
        opt = entry if isinstance(entry, OptimizerEntry) else OptimizerEntry(name=entry)
        if opt.display in labels:
            errors.append((("matrix", "optimizer", i),
                           f"label {opt.display!r} is used twice; give each variant its own "
                           "`label:` so the runs can be told apart"))
        labels.append(opt.display)
        check(("matrix", "optimizer", i),
              lambda o=opt: resolve_hparams(o.name, {"lr": 1.0, **o.options}))
        check(("train", "precision"),
              lambda o=opt, i=i: _check_precision(suite, o.name, f"matrix.optimizer[{i}]"))
    errors += graph_errors(suite)
    errors += distributed_errors(suite)
    for section, entries in (("include", suite.include), ("exclude", suite.exclude)):
        for i, entry in enumerate(entries):
            if entry.optimizer is not None and entry.optimizer not in labels:
                check((section, i, "optimizer"), lambda n=entry.optimizer: OPTIMIZERS.get(n))
                if section == "include":
                    check(("train", "precision"), lambda n=entry.optimizer, i=i:
                          _check_precision(suite, n, f"include[{i}]"))
    if errors:
        _raise_for(errors, source)


def _check_precision(suite: Suite, optimizer: str, where: str) -> None:
    from cnnbench.optim.registry import needs_closure

    if suite.train.precision != "fp16":
        return
    try:
        closure = needs_closure(optimizer)
    except CnnbenchError:  # an unknown optimizer: said where it is named
        return
    if closure:
        raise SuiteError(f"fp16 trains through a GradScaler, whose step calls the optimizer "
                         f"without a closure, and {where} {optimizer!r} needs one: use "
                         "precision bf16 or fp32 with it")


# ─── --set overrides ───────────────────────────────────────────────────────────────────────────


def apply_override(data: dict, override: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the raw suite mapping, in place."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise SuiteError(f"--set {override!r}: write it as key.path=value, e.g. train.epochs=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    parts = [int(p) if p.isdigit() else p for p in key.split(".")]
    model: type[BaseModel] | None = Suite
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SuiteError(f"--set {override!r}: {_dotted(parts[:depth])} has no item {part}")
            if last:
                node[part] = value
                return
            if isinstance(node[part], str):
                node[part] = {"name": node[part]}
            node = node[part]
            continue
        if model is not None and model.model_config.get("extra") == "forbid":
            if part not in model.model_fields:
                hint = did_you_mean(part, model.model_fields)
                raise SuiteError(
                    f"--set {override!r}: unknown key {part!r}{hint} "
                    f"valid: {', '.join(model.model_fields)}"
                )
        field_info = model.model_fields.get(part) if model is not None else None
        if not isinstance(node, dict):
            parent = _dotted(parts[:depth]) or "suite"
            raise SuiteError(f"--set {override!r}: {parent} is not a mapping")
        if last:
            node[part] = value
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str):  # `dataset: mnist` → `dataset: {name: mnist}`
            child = node[part] = {"name": child}
        node = child
        subs = _models_in(field_info.annotation) if field_info is not None else []
        # of a union's models (an lr: LogGrid | LRSearch), the one that has the next key
        model = next((m for m in subs if parts[depth + 1] in m.model_fields),
                     subs[0] if subs else None)


