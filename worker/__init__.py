"""ppss worker: the node side of ppss, and the job protocol both sides share.

Nothing in this package may import textual, humanize or ppss_tui: a node needs only
asyncssh and PyYAML (tests/test_import_contract.py proves it).
"""

__version__ = "0.1.0"
