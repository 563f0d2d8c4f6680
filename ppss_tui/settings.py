"""The console's own files under ``~/.config/ppss`` (or ``$XDG_CONFIG_HOME/ppss``).

* ``keymap.yaml``: binding id -> keys (``pause_node: ctrl+p``); an unknown id is an error.
* ``console.yaml``: what the console remembers between runs (the theme chosen in the palette).

No Textual here: the app passes the binding ids it knows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import yaml

from worker.errors import UsageError
from worker.yamlio import load_yaml


def config_dir() -> str:
    return os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "ppss")


def _load(path: str) -> object:
    try:
        with open(path, "rb") as fh:
            return load_yaml(fh.read(), path, UsageError)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


def read_keymap(path: str | None = None, known: Iterable[str] | None = None) -> dict[str, str]:
    """Binding id -> keys, from keymap.yaml (or $PPSS_KEYMAP) if it exists.

    With ``known`` (the binding ids the console has), an id not among them is a UsageError
    naming the file and the id, so a typo never passes silently.
    """
    if path is None:
        path = os.environ.get("PPSS_KEYMAP") or os.path.join(config_dir(), "keymap.yaml")
    data = _load(path)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"{path}: expected a mapping of binding id to keys (e.g. pause_node: ctrl+p)")
    keymap = {str(k): v for k, v in data.items()}
    if known is not None:
        known = set(known)
        unknown = sorted(k for k in keymap if k not in known)
        if unknown:
            raise UsageError(f"{path}: unknown binding id {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
    return keymap


def read_settings(directory: str) -> dict:
    data = _load(os.path.join(directory, "console.yaml"))
    return data if isinstance(data, dict) else {}


def write_setting(directory: str, key: str, value: str) -> None:
    """Remember one setting; written whole to a temporary file then renamed (never half a file)."""
    data = read_settings(directory)
    data[key] = value
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "console.yaml")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        yaml.safe_dump(data, fh, default_flow_style=False)
    os.replace(tmp, path)
