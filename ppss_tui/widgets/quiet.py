"""Updating a Static only when its text changed, and without a screen layout when its size cannot
have changed: at 1,000 nodes a layout pass costs tens of milliseconds, paid on every refresh by
every label that calls ``Static.update`` (which lays the whole screen out by default)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def _shape(text: Text, width: int) -> tuple[int, ...]:
    """What decides a text's height: its lines, and which of them wrap at this width."""
    return tuple(len(line) // max(1, width) for line in text.plain.split("\n"))


def set_text(widget: Static, text: Text, fixed: bool = False) -> bool:
    """Show ``text`` in ``widget``; ``fixed``: the widget's size does not follow its content.
    Returns whether anything changed."""
    old = getattr(widget, "_ppss_text", None)
    if old is not None and old == text:
        return False
    width = widget.size.width or 80
    layout = old is None or (not fixed and _shape(old, width) != _shape(text, width))
    widget._ppss_text = text
    widget.update(text, layout=layout)
    return True
