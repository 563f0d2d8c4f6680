"""YAML parsing that turns every problem into one line with where it is."""

from __future__ import annotations

import yaml

from .errors import JobError


def load_yaml(text: bytes | str, where: str, error=JobError):
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{where}:{line}: malformed YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: malformed YAML: {' '.join(str(exc).split())}") from None


def dump_yaml(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
