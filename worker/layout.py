"""Where things live in a job directory (see docs/protocol.md), and how items are named.

An item is a byte string. Its id is a hash of those bytes, so it is stable across restarts
and re-orderings; the first two hex digits shard every per-item directory into 256.
"""

from __future__ import annotations

import hashlib

JOB_FILE = "job.yaml"
CONTROL_FILE = "control.yaml"
RECOUNT_FILE = "recount.json"  # exact done/failed found by the last full check of the job
ITEMS_DIR = "items"          # items/000000 ...: chunks of NUL-terminated items
LOCKS_DIR = "locks"          # locks/ab/<lock>/         the claim (mkdir)
DONE_DIR = "done"            # done/ab/<id>/            the holder's token, renamed here (fenced commit)
FAILED_DIR = "failed"        # failed/ab/<id>           JSON record
LOGS_DIR = "logs"            # logs/ab/<id>.log         output of the last attempt (if any output)
OUTPUT_DIR = "output"        # output/ab/<id>/          per-item output directory (shared mode)
RETRY_DIR = "retry"          # retry/<lock>             item bytes of a released or retried item
NODES_DIR = "nodes"          # nodes/<node>.json        status file (its mtime is the heartbeat)
JOBLOG_DIR = "joblog"        # joblog/<node>.jsonl      JSON-lines job log, one writer per file
SWEEP_DIR = "sweep"          # sweep/<chunk>            a node sweeps this chunk (mkdir)
SWEPT_DIR = "swept"          # swept/<chunk>            every item of the chunk was tried
GRAVE_DIR = "graveyard"      # graveyard/<lock>.<rand>  locks taken away from orphans
TMP_DIR = "tmp"

FAILED_MARK = "failed"       # locks/ab/<lock>/failed   the attempt failed (fenced commit)

WATCH_PREFIX = "watch-"      # items/watch-<node>: items a node found in a watched directory
CHUNK_SIZE = 1000
SHARDS = [f"{i:02x}" for i in range(256)]
SHARDED_DIRS = (LOCKS_DIR, DONE_DIR, FAILED_DIR, LOGS_DIR)
TOP_DIRS = (ITEMS_DIR, *SHARDED_DIRS, RETRY_DIR, NODES_DIR, JOBLOG_DIR, SWEEP_DIR, SWEPT_DIR,
            GRAVE_DIR, TMP_DIR)


def item_id(item: bytes) -> str:
    return hashlib.blake2b(item, digest_size=12).hexdigest()


def shard(ident: str) -> str:
    return ident[:2]


def lock_name(ident: str, attempt: int) -> str:
    """Attempt 1 locks ``<id>``; a retry after a failure locks ``<id>.<attempt>``."""
    return ident if attempt == 1 else f"{ident}.{attempt}"


def parse_lock_name(name: str) -> tuple[str, int]:
    ident, _, attempt = name.partition(".")
    return ident, int(attempt) if attempt else 1


def lock_path(lock: str) -> str:
    return f"{LOCKS_DIR}/{shard(lock)}/{lock}"


def done_path(ident: str) -> str:
    return f"{DONE_DIR}/{shard(ident)}/{ident}"


def failed_path(ident: str) -> str:
    return f"{FAILED_DIR}/{shard(ident)}/{ident}"


def log_path(ident: str) -> str:
    return f"{LOGS_DIR}/{shard(ident)}/{ident}.log"


def output_path(ident: str) -> str:
    return f"{OUTPUT_DIR}/{shard(ident)}/{ident}"


def chunk_name(index: int) -> str:
    return f"{index:06d}"


def chunk_path(index: int) -> str:
    return f"{ITEMS_DIR}/{chunk_name(index)}"


def encode_chunk(items: list[bytes]) -> bytes:
    return b"".join(item + b"\0" for item in items)


def decode_chunk(data: bytes) -> list[bytes]:
    parts = data.split(b"\0")
    return parts[:-1] if parts and parts[-1] == b"" else parts


def owner_token(node: str, run_id: str) -> str:
    return f"{node}@{run_id}"


def token_node(token: str) -> str | None:
    return token.rsplit("@", 1)[0] if "@" in token else None


def status_path(node: str) -> str:
    return f"{NODES_DIR}/{node}.json"


def joblog_path(node: str) -> str:
    return f"{JOBLOG_DIR}/{node}.jsonl"


def display_item(item: bytes, limit: int = 0) -> str:
    """A printable form of an item for screens and tables (never used to run it)."""
    text = item.decode("utf-8", "backslashreplace")
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if limit and len(text) > limit:
        text = text[: max(1, limit - 1)] + "…"
    return text


def item_to_json(item: bytes) -> str:
    """Lossless str form for JSON (undecodable bytes as surrogate escapes)."""
    return item.decode("utf-8", "surrogateescape")


def item_from_json(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
