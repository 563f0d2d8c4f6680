"""Fast unit tests of the worker's protocol pieces (no sshd, no subprocesses)."""

from __future__ import annotations

import json

import pytest

from worker import layout as L
from worker.address import MasterAddress, parse_address
from worker.control import STATES, Control, ControlError, NodeControl, parse_control
from worker.errors import EXIT_JOB, EXIT_USAGE, JobError, UsageError
from worker.jobops import split_items
from worker.jobspec import JobSpec
from worker.jobstatus import JobStatus, NodeStatus, RunningItem
from worker.runner import mentions_item, shell_argv

# ---------------------------------------------------------------------------------------------
# master addresses


@pytest.mark.parametrize("text, expected", [
    ("ssh://u@h:22/srv/jobs/x", MasterAddress("/srv/jobs/x", "h", "u", 22)),
    ("ssh://h/srv/x", MasterAddress("/srv/x", "h", None, None)),
    ("ssh://h/~/jobs/x", MasterAddress("~/jobs/x", "h", None, None)),
    ("ssh://ppss@master:2222/~/j", MasterAddress("~/j", "master", "ppss", 2222)),
    ("ssh://[::1]:2222/x", MasterAddress("/x", "::1", None, 2222)),
    ("ssh://u@[fe80::1]/x", MasterAddress("/x", "fe80::1", "u", None)),
    ("ssh://h:65535/x", MasterAddress("/x", "h", None, 65535)),
    ("ssh://h:1/x", MasterAddress("/x", "h", None, 1)),
    ("ssh://u@h/a%20b", MasterAddress("/a b", "h", "u", None)),
    ("ssh://h/a/./b//c", MasterAddress("/a/b/c", "h", None, None)),
])
def test_parse_ssh_address(text: str, expected: MasterAddress) -> None:
    addr = parse_address(text)
    assert addr == expected
    assert not addr.is_local
    # display() is parseable again and gives the same address
    assert parse_address(addr.display()) == addr


def test_ipv6_display_keeps_brackets() -> None:
    assert parse_address("ssh://[::1]:2222/x").display() == "ssh://[::1]:2222/x"


def test_parse_local_address(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_address("/srv/job") == MasterAddress("/srv/job")
    assert parse_address("/srv/job").is_local
    assert parse_address("rel/job").path == str(tmp_path / "rel" / "job")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_address("~/job").path == str(tmp_path / "home" / "job")


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("ftp://h/x", "unsupported scheme"),
    ("http://h/x", "unsupported scheme"),
    ("ssh://h", "no job path"),
    ("ssh://h/", "no job path"),
    ("ssh:///x", "no host"),
    ("ssh://u@/x", "no host"),
    ("ssh://@h/x", "empty user"),
    ("ssh://h:0/x", "bad port"),
    ("ssh://h:65536/x", "bad port"),
    ("ssh://h:99999/x", "bad port"),
    ("ssh://h:ab/x", "bad port"),
    ("ssh://h:-1/x", "bad port"),
    ("ssh://h:+22/x", "bad port"),
    ("ssh://h:22:33/x", "bad port"),
    ("ssh://h:\uff12\uff12/x", "bad port"),        # fullwidth digits are not a port
    ("ssh://[::1]x/x", "malformed host"),
    ("ssh://[::1:22/x", "malformed host"),        # unterminated bracket
    ("ssh://h/~other/x", "~/path"),
])
def test_bad_addresses(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_address(text)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
    assert info.value.exit_code == EXIT_USAGE


# ---------------------------------------------------------------------------------------------
# control.yaml


def test_control_defaults_and_round_trip() -> None:
    assert parse_control(b"state: running\n") == Control()
    c = Control("paused", {"n1": NodeControl("running", None), "n2": NodeControl(None, 3)})
    again = parse_control(c.to_yaml())
    assert again == c
    assert c.to_yaml().startswith(b"#")  # header comment


def test_control_node_overrides() -> None:
    c = parse_control(b"state: running\nnodes:\n  n1: {state: paused}\n  n2: {slots: 2}\n"
                      b"  n3: {state: stopped, slots: 0}\n")
    assert c.for_node("n1") == ("paused", None)
    assert c.for_node("n2") == ("running", 2)
    assert c.for_node("n3") == ("stopped", 0)
    assert c.for_node("other") == ("running", None)


def test_control_job_wide_stop_wins() -> None:
    c = parse_control(b"state: stopped\nnodes:\n  n1: {state: running}\n  n2: {state: paused, slots: 4}\n")
    assert c.for_node("n1") == ("stopped", None)
    assert c.for_node("n2") == ("stopped", 4)
    assert c.for_node("n3") == ("stopped", None)


def test_control_job_paused_node_stopped() -> None:
    c = parse_control(b"state: paused\nnodes:\n  n1: {state: stopped}\n")
    assert c.for_node("n1")[0] == "stopped"
    assert c.for_node("n2")[0] == "paused"


def test_with_state_job_wide_clears_node_states_keeps_slots() -> None:
    c = Control("running", {"n1": NodeControl("paused", 2), "n2": NodeControl("stopped", None)})
    p = c.with_state("paused")
    assert p.state == "paused"
    assert p.nodes == {"n1": NodeControl(None, 2)}
    assert p.for_node("n1") == ("paused", 2)
    assert p.for_node("n2") == ("paused", None)
    # original untouched (frozen value semantics)
    assert c.nodes["n1"] == NodeControl("paused", 2)


def test_with_state_per_node() -> None:
    c = Control().with_slots("n1", 3).with_state("paused", "n1")
    assert c.state == "running"
    assert c.nodes["n1"] == NodeControl("paused", 3)
    assert c.for_node("n1") == ("paused", 3)
    assert c.for_node("n2") == ("running", None)
    c2 = c.with_state("running", "n1")
    assert c2.for_node("n1") == ("running", 3)


def test_with_slots() -> None:
    c = Control().with_state("stopped", "n1").with_slots("n1", 0)
    assert c.nodes["n1"] == NodeControl("stopped", 0)
    assert c.with_slots("n1", None).nodes["n1"] == NodeControl("stopped", None)
    for bad in (-1, 4097):
        with pytest.raises(ControlError):
            c.with_slots("n1", bad)


def test_with_state_unknown() -> None:
    with pytest.raises(ControlError, match="unknown state"):
        Control().with_state("sleeping")
    with pytest.raises(ControlError, match="unknown state"):
        Control().with_state("sleeping", "n1")


@pytest.mark.parametrize("text, line", [
    (b"state: paused\nnodes:\n  n1: {state: running\n", 4),
    (b"state: running\n  nodes: x\n  - y\n", 2),
    (b"state: [\n", 2),
    (b"\t- x\n", 1),
    (b"state: running\nstate: 'unterminated\n", 3),
])
def test_control_malformed_yaml_gives_line(text: bytes, line: int) -> None:
    with pytest.raises(ControlError) as info:
        parse_control(text, "ctl.yaml")
    msg = str(info.value)
    assert msg.startswith("ctl.yaml:")
    assert f"line {line}" in msg
    assert "malformed YAML" in msg
    assert "\n" not in msg
    assert info.value.exit_code == EXIT_JOB


@pytest.mark.parametrize("text, fragment", [
    (b"state: bogus\n", "'bogus'"),
    (b"state: null\n", "state"),
    (b"state: Running\n", "'Running'"),
    (b"- a\n", "mapping"),
    (b"just text\n", "mapping"),
    (b"foo: 1\n", "unknown key 'foo'"),
    (b"nodes: [1]\n", "nodes"),
    (b"nodes:\n  n1: 3\n", "nodes.n1"),
    (b"nodes:\n  n1: {state: asleep}\n", "nodes.n1.state"),
    (b"nodes:\n  n1: {colour: red}\n", "unknown key 'colour'"),
    (b"nodes:\n  n1: {slots: -1}\n", "nodes.n1.slots"),
    (b"nodes:\n  n1: {slots: 4097}\n", "nodes.n1.slots"),
    (b"nodes:\n  n1: {slots: true}\n", "nodes.n1.slots"),
    (b"nodes:\n  n1: {slots: 1.5}\n", "nodes.n1.slots"),
    (b"nodes:\n  n1: {slots: '2'}\n", "nodes.n1.slots"),
    (b"state: \xff\xfe\n", "control.yaml"),
])
def test_control_invalid(text: bytes, fragment: str) -> None:
    with pytest.raises(ControlError) as info:
        parse_control(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_control_every_state_accepted() -> None:
    for state in STATES:
        assert parse_control(f"state: {state}\n").state == state
        assert parse_control(f"nodes:\n  n: {{state: {state}}}\n").nodes["n"].state == state
    assert set(STATES) >= {"running", "paused", "stopped"}


# ---------------------------------------------------------------------------------------------
# layout

AWKWARD = [
    b"plain",
    b"with space",
    b" leading and trailing ",
    b"quote ' and \" double",
    b"$(touch pwned)",
    b"`touch pwned`",
    b"*",
    b"-n",
    b"--help",
    b"back\\slash\\",
    "unicod\u00e9 \u2603 \U0001F600".encode(),
    b"x" * 300,
    b"\xff\xfe not utf-8 \x80",
    b"new\nline",
    b"cr\r",
    b"tab\there",
    b"\n",
    b"\x01\x1b[31mansi",
]


def test_item_ids_stable_and_distinct() -> None:
    # Pinned values: ids name lock directories on disk, so they must never change.
    assert L.item_id(b"hello") == "8ed7252f4b03f9e8376db5b2"
    assert L.item_id(b"") == "b8e1dda3ac0aa3820ad2990b"
    ids = [L.item_id(i) for i in AWKWARD]
    assert len(set(ids)) == len(AWKWARD)
    assert ids == [L.item_id(bytes(i)) for i in AWKWARD]
    for ident in ids:
        assert len(ident) == 24 and all(c in "0123456789abcdef" for c in ident)
        assert L.shard(ident) == ident[:2]
        assert L.lock_path(ident) == f"locks/{ident[:2]}/{ident}"
        assert L.done_path(ident) == f"done/{ident[:2]}/{ident}"
        assert L.failed_path(ident) == f"failed/{ident[:2]}/{ident}"
        assert L.log_path(ident) == f"logs/{ident[:2]}/{ident}.log"
    assert L.item_id(b"a") != L.item_id(b"a\n") != L.item_id(b"a ")


def test_lock_names() -> None:
    ident = L.item_id(b"x")
    assert L.lock_name(ident, 1) == ident
    assert L.lock_name(ident, 3) == f"{ident}.3"
    assert L.parse_lock_name(ident) == (ident, 1)
    assert L.parse_lock_name(f"{ident}.3") == (ident, 3)
    assert L.lock_path(f"{ident}.2") == f"locks/{ident[:2]}/{ident}.2"
    assert L.token_node(L.owner_token("node-1", "abcd")) == "node-1"
    assert L.token_node("done") is None


def test_chunk_round_trip_awkward_bytes() -> None:
    encoded = L.encode_chunk(AWKWARD)
    assert encoded.count(b"\0") == len(AWKWARD)
    assert L.decode_chunk(encoded) == AWKWARD
    assert L.decode_chunk(L.encode_chunk([])) == []
    assert L.decode_chunk(b"") == []
    assert L.decode_chunk(L.encode_chunk([b"a", b""])) == [b"a", b""]


def test_item_json_lossless() -> None:
    for item in AWKWARD:
        text = L.item_to_json(item)
        assert L.item_from_json(json.loads(json.dumps(text))) == item


def test_display_item_is_one_line() -> None:
    for item in AWKWARD:
        shown = L.display_item(item)
        assert "\n" not in shown and "\r" not in shown
    assert L.display_item(b"x" * 300, 20) == "x" * 19 + "\u2026"


# ---------------------------------------------------------------------------------------------
# split_items (--source-file)


def test_split_items_byte_exact() -> None:
    data = b"a\n b \n\n\nc\r\n  \n$(x)\n\xff\xfe\nlast-no-newline"
    assert split_items(data, False, "f") == [b"a", b" b ", b"c\r", b"  ", b"$(x)", b"\xff\xfe",
                                             b"last-no-newline"]


def test_split_items_empty() -> None:
    assert split_items(b"", False, "f") == []
    assert split_items(b"\n\n\n", False, "f") == []
    assert split_items(b"\0\0", True, "f") == []


def test_split_items_null() -> None:
    data = b"new\nline\0 sp \0\0tail\n\0no-terminator"
    assert split_items(data, True, "f") == [b"new\nline", b" sp ", b"tail\n", b"no-terminator"]


def test_split_items_nul_in_line_refused() -> None:
    with pytest.raises(UsageError) as info:
        split_items(b"ok\nalso ok\nbad\0byte\n", False, "items.txt")
    msg = str(info.value)
    assert "items.txt" in msg and "line 3" in msg and "--null" in msg
    assert "\n" not in msg


# ---------------------------------------------------------------------------------------------
# job.yaml


def _spec(**kw) -> JobSpec:
    base = dict(command="lame \"$ITEM\" 'x' \u2603\n  second line", total=7, chunks=1, chunk_size=1000,
                source_kind="file", source="/tmp/it ems", retries=2, lease=30.0, recurse=False,
                created="2024-01-01T00:00:00+0000")
    base.update(kw)
    return JobSpec(**base)


def test_jobspec_round_trip() -> None:
    spec = _spec()
    data = spec.to_yaml()
    assert data.startswith(b"format: 1\n")
    assert JobSpec.from_yaml(data, "job.yaml") == spec


def test_jobspec_keeps_unknown_keys() -> None:
    data = _spec().to_yaml() + b"future_field: 42\n"
    spec = JobSpec.from_yaml(data, "job.yaml")
    assert spec.extra == {"future_field": 42}
    assert spec.command == _spec().command


def test_jobspec_errors() -> None:
    with pytest.raises(JobError, match="missing"):
        JobSpec.from_yaml(b"command: x\n", "j.yaml")
    with pytest.raises(JobError, match="not a ppss job"):
        JobSpec.from_yaml(b"- 1\n", "j.yaml")
    with pytest.raises(JobError, match="newer"):
        JobSpec.from_yaml(_spec().to_yaml().replace(b"format: 1", b"format: 99"), "j.yaml")
    with pytest.raises(JobError, match="line"):
        JobSpec.from_yaml(b"command: [\n", "j.yaml")


def test_jobspec_mentions_item() -> None:
    assert _spec(command='gzip "$ITEM"').mentions_item()
    assert not _spec(command="gzip").mentions_item()


# ---------------------------------------------------------------------------------------------
# status shapes

NODE_KEYS = ["name", "state", "slots", "done", "failed", "running", "last_seen_s", "error"]
TOP_KEYS = ["total", "done", "failed", "running", "pending", "nodes"]


def test_job_status_to_dict_shape() -> None:
    spec = _spec(total=20, lease=60.0)
    r = lambda n: tuple(RunningItem(f"l{i}", f"item{i}", i + 1, 0.0) for i in range(n))
    nodes = (
        NodeStatus("a", "running", slots=4, done=5, failed=1, running=r(3), last_seen_s=0.44),
        NodeStatus("b", "error", slots=2, done=6, failed=0, last_seen_s=3.06, error="/out/x: Permission denied"),
        # silent for longer than the lease: "lost", its running items are not counted
        NodeStatus("c", "running", slots=1, done=2, failed=0, running=r(1), last_seen_s=120.0),
    )
    status = JobStatus(spec, nodes, Control())
    d = status.to_dict()
    assert list(d) == TOP_KEYS
    assert (d["total"], d["done"], d["failed"], d["running"], d["pending"]) == (20, 13, 1, 3, 3)
    assert [list(n) for n in d["nodes"]] == [NODE_KEYS] * 3
    assert d["nodes"][0] == {"name": "a", "state": "running", "slots": 4, "done": 5, "failed": 1,
                             "running": 3, "last_seen_s": 0.4, "error": ""}
    assert d["nodes"][1] == {"name": "b", "state": "error", "slots": 2, "done": 6, "failed": 0,
                             "running": 0, "last_seen_s": 3.1, "error": "/out/x: Permission denied"}
    assert d["nodes"][2]["state"] == "lost"
    assert d["nodes"][2]["running"] == 1
    json.dumps(d)  # serialisable


def test_where_names_an_absolute_path_on_the_masters_host() -> None:
    """Copy mode's files are absolute paths on the master: named with its host, not under the job."""
    from worker.store import LocalStore

    store = LocalStore("/jobs/j")
    assert store.where("done/ab") == "/jobs/j/done/ab" and store.where("/out/f") == "/out/f"
    store.label = "ssh://u@host:2222/~/jobs/j"
    assert store.where("locks") == "ssh://u@host:2222/~/jobs/j/locks"
    assert store.where("/srv/out/a/f") == "ssh://u@host:2222/srv/out/a/f"


def test_job_status_empty_and_pending_never_negative() -> None:
    spec = _spec(total=2)
    d = JobStatus(spec, (), None).to_dict()
    assert d == {"total": 2, "done": 0, "failed": 0, "running": 0, "pending": 2, "nodes": []}
    over = (NodeStatus("a", "finished", done=5, last_seen_s=None),)
    d = JobStatus(spec, over, None).to_dict()
    assert d["pending"] == 0
    assert d["nodes"][0]["last_seen_s"] is None


def test_node_status_json_round_trip() -> None:
    n = NodeStatus("n1", "paused", host="h", pid=12, run_id="ab12", slots=3, done=4, failed=1,
                   running=(RunningItem("lk", L.item_to_json(b"\xff x"), 2, 1.5),),
                   claims=(("lk2", "it"),), error="control.yaml: line 2: bad", started=1.0, updated=2.0,
                   version="0.1.0")
    again = NodeStatus.from_json(n.to_json(), last_seen_s=1.25)
    assert again == NodeStatus(**{**n.__dict__, "last_seen_s": 1.25})
    assert again.held_locks() == [("lk", L.item_to_json(b"\xff x")), ("lk2", "it")]
    assert L.item_from_json(again.running[0].item) == b"\xff x"


# ---------------------------------------------------------------------------------------------
# the command line of an item


@pytest.mark.parametrize("command, mentions", [
    ('lame "$ITEM" out.mp3', True),
    ("echo ${ITEM}", True),
    ("echo ${ITEM:-none}", True),
    ("echo $ITEM_ID", True),
    ("python3 -c 'import os; print(os.environ[\"ITEM\"])'", True),
    ("gzip", False),
    ("gzip ", False),
    ("/srv/ITEMS/convert.sh", False),
    ("/tmp/test_without_ITEM_x/run.sh", False),
    ("echo $MY_ITEM", False),
    ("echo $ITEMS", False),
])
def test_mentions_item(command: str, mentions: bool) -> None:
    assert mentions_item(command) is mentions
    argv = shell_argv(command)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == (command if mentions else f'{command} "$ITEM"')
    assert _spec(command=command).mentions_item() is mentions


# ---------------------------------------------------------------------------------------------
# the retry queue: an entry being written must never be run as an (empty or partial) item


async def test_retry_entry_being_written_is_not_taken(tmp_path) -> None:
    from worker.store import LocalStore
    from worker.sweep import Sweeper

    store = LocalStore(str(tmp_path))
    await store.mkdir(L.RETRY_DIR)
    item = b"item 0004 with a longer name"
    lock = L.lock_name(L.item_id(item), 3)
    (tmp_path / L.RETRY_DIR / lock).write_bytes(b"")          # created, not yet written
    sweeper = Sweeper(store, _spec(total=1, chunks=0), "n1")
    assert await sweeper.retry_candidates(10, force=True) == []
    (tmp_path / L.RETRY_DIR / lock).write_bytes(item[:7])     # short read
    assert await sweeper.retry_candidates(10, force=True) == []
    (tmp_path / L.RETRY_DIR / lock).write_bytes(item)
    (cand,) = await sweeper.retry_candidates(10, force=True)
    assert (cand.lock, cand.item, cand.from_retry) == (lock, item, True)


def test_importing_worker_runs_no_subprocess_for_asyncssh() -> None:
    """asyncssh's library lookups (find_library: ldconfig, gcc, ld) are replaced while it is imported
    (worker/libsearch.py): importing the worker starts no process, and find_library is restored;
    neither does the first item's subreaper set-up. asyncssh's optional X.509 support is left out."""
    import subprocess
    import sys
    code = ("import subprocess, ctypes.util\n"
            "real = ctypes.util.find_library\n"
            "started = []\n"
            "orig = subprocess.Popen.__init__\n"
            "def spy(self, *a, **k):\n"
            "    started.append(a[0] if a else k.get('args'))\n"
            "    orig(self, *a, **k)\n"
            "subprocess.Popen.__init__ = spy\n"
            "import sys, worker.cli, asyncssh.crypto.pq\n"
            "from worker import proctree\n"
            "proctree.become_subreaper()\n"  # (the first item's: libc found without ldconfig)
            "assert ctypes.util.find_library is real\n"
            "assert 'cryptography.x509' not in sys.modules, 'X.509 support imported'\n"
            "assert sys.modules.get('asyncssh.crypto.x509', 0) is not None\n"  # (not made unimportable)
            "print(started)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_liboqs_probe_finds_it_where_the_linker_would(tmp_path, monkeypatch) -> None:
    from worker.libsearch import find_lib
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/nonexistent:{tmp_path}")
    assert find_lib("oqs-not-there-xyz") is None
    (tmp_path / "liboqs-fake.so.5").write_bytes(b"")
    assert find_lib("oqs-fake") == str(tmp_path / "liboqs-fake.so.5")
    assert find_lib("liboqs-fake") == str(tmp_path / "liboqs-fake.so.5")


def test_end_of_job_looks_are_quick_in_a_small_fleet_and_bounded_in_a_large_one() -> None:
    from worker.jobstatus import LOOK_MIN, look_pace
    assert look_pace(1, 0.1) == look_pace(3, 0.1) == LOOK_MIN
    assert look_pace(1_000, 0.1) == 0.1
    for nodes in (1, 3, 10, 49, 50):  # every node reads one file a look: ~500 a second in all
        assert nodes / look_pace(nodes, 0.1) <= 501, nodes
    assert look_pace(51, 0.1) == look_pace(200, 0.1) == 0.1  # (a large fleet: as fast as before, no slower)


# ---------------------------------------------------------------------------------------------
# helping in a chunk: survey, start inside the longest free run, leave only when all is taken


def test_a_helper_starts_inside_the_longest_free_run_and_goes_backwards() -> None:
    from worker.chunkhelp import SURVEY, ChunkHelp
    from worker.claims import Candidate

    cands = [Candidate(f"l{i}", b"%d" % i) for i in range(200)]
    taken = set(range(0, 40)) | set(range(100, 120)) | set(range(150, 200))  # free: 40-99, 120-149
    help_a, help_b = ChunkHelp(0, cands, "node-a"), ChunkHelp(0, cands, "node-b")
    for h in (help_a, help_b):
        looked, exact = h.targets()
        assert len(looked) == SURVEY and not exact and looked == sorted(looked)
        assert h.surveyed(looked, [i in taken for i in looked], exact)
        assert 40 <= h.pos <= 99
    assert help_a.pos != help_b.pos  # (two helpers finding the same run start apart)
    start = help_a.pos
    got = help_a.offer(1000)  # backwards, up to the first item known taken
    assert [c.lock for c in got] == [f"l{i}" for i in range(start, 39, -1)][:len(got)]
    assert help_a.needs_survey()
    help_a.note(got[:2], set())  # a batch all lost: look again
    assert help_a.pos is None


def test_a_helper_leaves_a_chunk_only_when_an_exact_survey_finds_it_all_taken() -> None:
    from worker.chunkhelp import ChunkHelp
    from worker.claims import Candidate

    cands = [Candidate(f"l{i}", b"%d" % i) for i in range(300)]
    h = ChunkHelp(0, cands, "n", known_taken=100)
    looked, exact = h.targets()
    assert not exact and min(looked) >= 100
    assert not h.surveyed(looked, [True] * len(looked), exact) and not h.done  # sampled: not sure
    looked, exact = h.targets(exact=True)
    assert exact and len(looked) == 200 - 64
    assert h.surveyed(looked, [i != 250 for i in looked], exact)  # item 250 is free
    assert h.pos == 250 and not h.done
    assert [c.lock for c in h.offer(5)] == ["l250"]
    looked, exact = h.targets()
    assert exact and looked == []
    assert not h.surveyed(looked, [], exact) and h.done
