"""One settings loader for every process: a TOML file, MAILAGENT_ environment variables over it,
explicit values (command-line flags) over both, validated by the process's own pydantic model.

    load(AgentSettings, Path("/etc/mailagent/agent.toml"), os.environ, prefix="MAILAGENT_")
    MAILAGENT_INTERVAL_SECONDS=30                     a field, by its name after the prefix
    MAILAGENT_CHECKS__RELAY_REACH=false               one key of a table: `__` between the names
    MAILAGENT_COLLECTOR_ALERTS__DISABLED='["x"]'      lists and tables as JSON

Only the model's own field names are settings, so the rest of the MAILAGENT_ family (a
registration token, the lab's folder) is left alone; names match whatever their case; a table
given in several places is merged key by key. This is what pydantic-settings' EnvSettingsSource
and TomlConfigSettingsSource do, and the loader used them until bench/agent_footprint.py showed
their price: importing pydantic_settings imports asyncio, python-dotenv and its command-line and
cloud sources, 3.3 MB more resident memory in every agent (48.6 -> 51.9 MB, over its 50 MB
target) for two dozen lines of mapping.

The models stay plain pydantic models rather than BaseSettings: a file named at run time
(`--settings`, `--config`) and a given environment (a test's) need a way in, and a model built in
code (the deploy on the control machine, tests) must not pick up the environment.

    SettingsError      bad settings; `problems` holds one line per problem, `field.path: message`
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Ubuntu 22.04)
    import tomli as tomllib

Model = TypeVar("Model", bound=BaseModel)


class SettingsError(Exception):
    """Bad settings; `problems` holds one readable line per problem, naming the field."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load(model: type[Model], path: Path | None, environ: Mapping[str, str], *, prefix: str,
         missing_ok: bool = True, **overrides: Any) -> Model:
    """`model` from the TOML file at `path` (absent: defaults, unless not `missing_ok`), the
    `prefix` variables of `environ` over it and `overrides` (None: not given) over both."""
    layers = [_file(path, missing_ok), _environment(model, environ, prefix),
              {key: value for key, value in overrides.items() if value is not None}]
    data: dict[str, Any] = {}
    for layer in layers:
        data = _merged(data, layer)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(problem_lines(exc)) from None


def problem_lines(exc: ValidationError, root: str = "") -> list[str]:
    """One line per problem: the dotted field name (under `root`, e.g. the host data key), then
    what is wrong."""
    lines = []
    for err in exc.errors():
        field = ".".join([root] * bool(root) + [str(part) for part in err["loc"]])
        lines.append(f"{field or 'settings'}: {err['msg']}")
    return lines


def _file(path: Path | None, missing_ok: bool) -> dict[str, Any]:
    if path is None or (missing_ok and not Path(path).exists()):
        return {}
    if not Path(path).is_file():
        raise SettingsError([f"config: {path}: no such file"])
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:  # ValueError: TOMLDecodeError
        raise SettingsError([f"config: {path}: {exc}"]) from None


def _environment(model: type[BaseModel], environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """The variables naming a field of `model` after `prefix`, `__` between nested names."""
    lowered = {name.lower(): value for name, value in environ.items()}
    return _fields(model, lowered, prefix.lower())


def _fields(model: type[BaseModel], environ: dict[str, str], prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key, kinds = prefix + name, _kinds(field.annotation)
        if key in environ:
            data[name] = _decoded(environ[key], kinds)
        nested = _nested(kinds, environ, key + "__")
        if nested:
            given = data.get(name)
            data[name] = _merged(given, nested) if isinstance(given, dict) else nested
    return data


def _nested(kinds: list, environ: dict[str, str], prefix: str) -> dict[str, Any]:
    """A table's keys given one by one: a model's fields, or any key of a dict."""
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return _fields(kind, environ, prefix)
    if dict in (typing.get_origin(kind) or kind for kind in kinds):
        return {name[len(prefix):]: value for name, value in environ.items()
                if name.startswith(prefix) and "__" not in name[len(prefix):]}
    return {}


def _kinds(annotation) -> list:
    """The types a field takes, Optional and unions unwrapped."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [kind for arg in typing.get_args(annotation) for kind in _kinds(arg)]
    if typing.get_origin(annotation) is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    return [annotation]


def _decoded(value: str, kinds: list) -> Any:
    """Lists and tables are given as JSON; text that is not JSON stays text, so the model names
    the field."""
    complex_kinds = (list, dict, set, frozenset, tuple)
    if not any((typing.get_origin(kind) or kind) in complex_kinds
               or (isinstance(kind, type) and issubclass(kind, BaseModel)) for kind in kinds):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out
