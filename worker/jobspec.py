"""job.yaml: what a job runs and how, written once by ``ppss-console init``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from .errors import JobError
from .yamlio import dump_yaml, load_yaml

FORMAT = 1
TRANSFERS = ("shared", "copy")


@dataclass(frozen=True)
class JobSpec:
    command: str
    total: int
    chunks: int
    chunk_size: int
    source_kind: str  # "file" or "dir"
    source: str  # where the items came from (a path, or "-" for stdin)
    retries: int = 0
    lease: float = 60.0
    timeout: float | None = None  # seconds an item may run before it is ended (None: no limit)
    transfer: str = "shared"
    output_dir: str | None = None
    file_server: str | None = None
    watch: bool = False
    recurse: bool = True
    created: str | float = ""  # master epoch seconds (older jobs: local "%Y-%m-%dT%H:%M:%S%z" text)
    priority: int = 0  # higher first among the jobs of a root (control.yaml's priority wins)
    halt: str | None = None  # "N" or "N%": the job halts itself when failures pass it
    format: int = FORMAT
    extra: dict = field(default_factory=dict)

    def to_yaml(self) -> bytes:
        data = asdict(self)
        data.pop("extra")
        data = {"format": data.pop("format"), **data}
        return dump_yaml(data).encode()

    @classmethod
    def from_yaml(cls, text: bytes, where: str) -> "JobSpec":
        data = load_yaml(text, where)
        if not isinstance(data, dict):
            raise JobError(f"{where}: not a ppss job file")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        missing = {"command", "total", "chunks", "chunk_size", "source_kind", "source"} - data.keys()
        if missing:
            raise JobError(f"{where}: not a ppss job file (missing {', '.join(sorted(missing))})")
        if data.get("format", FORMAT) > FORMAT:
            raise JobError(f"{where}: job format {data['format']} is newer than this ppss understands")
        values = {k: v for k, v in data.items() if k in known}
        values["extra"] = {k: v for k, v in data.items() if k not in known}
        timeout = values.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise JobError(f"{where}: timeout: {timeout!r} is not a positive number of seconds")
        priority = values.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise JobError(f"{where}: priority: {priority!r} is not a whole number")
        if values.get("halt") is not None:
            from .errors import UsageError
            from .halt import parse_halt
            values["halt"] = str(values["halt"])
            try:
                parse_halt(values["halt"], f"{where}: halt")
            except UsageError as exc:
                raise JobError(str(exc)) from None
        return cls(**values)

    @property
    def created_epoch(self) -> float:
        """When the job was created, in epoch seconds (0 if unknown), old text form included."""
        if isinstance(self.created, (int, float)) and not isinstance(self.created, bool):
            return float(self.created)
        try:
            return datetime.strptime(str(self.created), "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            return 0.0

    def mentions_item(self) -> bool:
        from .runner import mentions_item
        return mentions_item(self.command)
