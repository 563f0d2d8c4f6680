"""job.yaml: what a job runs and how, written once by ``ppss-console init``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    created: str = ""
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
        return cls(**values)

    def mentions_item(self) -> bool:
        from .runner import mentions_item
        return mentions_item(self.command)
