"""ppss worker: the node side of ppss, and the job protocol both sides share.

Nothing in this package may import textual, humanize or ppss_tui: a node needs only
asyncssh and PyYAML (tests/test_import_contract.py proves it).
"""

__version__ = "0.1.0"

from .libsearch import import_asyncssh as _import_asyncssh  # noqa: E402

_import_asyncssh()  # before anything imports it the slow way (see libsearch)


def installed_version() -> str:
    """The installed distribution's version (what --version prints); ``__version__`` when run
    from a source tree that is not installed."""
    import importlib.metadata
    try:
        return importlib.metadata.version("ppss")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def add_version_option(parser) -> None:
    """``--version``, its text read only when asked for (importlib.metadata costs ~6 ms a start)."""
    import argparse

    class _Version(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"{parser.prog} {installed_version()}", flush=True)  # stdout, as argparse's own
            parser.exit()

    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
