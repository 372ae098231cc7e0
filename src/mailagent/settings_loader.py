"""One settings loader for every process: a TOML file, MAILAGENT_ environment variables over it,
explicit values (command-line flags) over both, validated by the process's own pydantic model.

    load(AgentSettings, Path("/etc/mailagent/agent.toml"), os.environ, prefix="MAILAGENT_")
    MAILAGENT_INTERVAL_SECONDS=30                     a field, by its name after the prefix
    MAILAGENT_CHECKS__RELAY_REACH=false               one key of a table: `__` between the names
    MAILAGENT_COLLECTOR_ALERTS__DISABLED='["x"]'      lists and tables as JSON

pydantic-settings reads both: its EnvSettingsSource maps variables to fields (only the model's own
field names, so the rest of the MAILAGENT_ family, a registration token or the lab's folder, is
not a setting and is left alone) and its TomlConfigSettingsSource reads the file. A table given in
several places is merged key by key, as BaseSettings merges its sources.

The models stay plain pydantic models rather than BaseSettings: BaseSettings picks its file and
its environment per class (settings_customise_sources is a classmethod), so a file named at run
time (`--settings`, `--config`) and a given environment (a test's) have no public way in; and a
model built in code (the deploy on the control machine, tests) must not pick up the environment.

    SettingsError      bad settings; `problems` holds one line per problem, `field.path: message`
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource

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
    layers = [_file(model, path, missing_ok), _Environment(model, environ, prefix)(),
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


def _file(model: type[BaseModel], path: Path | None, missing_ok: bool) -> dict[str, Any]:
    if path is None or (missing_ok and not Path(path).exists()):
        return {}
    if not Path(path).is_file():
        raise SettingsError([f"config: {path}: no such file"])
    try:
        return TomlConfigSettingsSource(model, toml_file=Path(path))()
    except (OSError, ValueError) as exc:  # ValueError: TOMLDecodeError
        raise SettingsError([f"config: {path}: {exc}"]) from None


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over the given mapping (os.environ, or a test's),
    `__` between nested names, names matched whatever their case."""

    def __init__(self, model: type[BaseModel], environ: Mapping[str, str], prefix: str):
        self._environ = environ
        super().__init__(model, env_prefix=prefix, env_nested_delimiter="__", case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}

    def decode_complex_value(self, field_name, field, value):
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:  # not JSON: left as text, so the model names the field
            return value


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    # What BaseSettings does with its sources' values (pydantic's deep_update, a private helper).
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out
