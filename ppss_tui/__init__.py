"""ppss console: headless subcommands and the Textual operator console."""

from worker import __version__

__all__ = ["__version__"]
