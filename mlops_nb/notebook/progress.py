"""Progress bars for long calls: an ipywidgets bar in a kernel, a line on stderr elsewhere.

``list_all`` counts rows, ``upload_model`` bytes and ``score`` rows with the same bar; the
caller says what the numbers mean in the text it passes.
"""

from __future__ import annotations

import sys

__all__ = ["Progress", "progress", "in_kernel"]


class Progress:
    """A bar from 0 to ``total`` (unknown: ``None``), with a line of text beside it."""

    def update(self, value: int, text: str, total: int | None = None) -> None:
        raise NotImplementedError

    def close(self, value: int, text: str, done: bool) -> None:
        raise NotImplementedError


class _WidgetProgress(Progress):
    def __init__(self, title: str, what: str, total: int | None) -> None:
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=total or 1, description=title,
                                          bar_style="info", tooltip=what)
        self.label = ipywidgets.Label(value=what)
        display(ipywidgets.HBox([self.bar, self.label]))

    def update(self, value: int, text: str, total: int | None = None) -> None:
        self.bar.max = max(total or 0, value, 1)
        self.bar.value = value
        self.label.value = text

    def close(self, value: int, text: str, done: bool) -> None:
        self.bar.max = max(value, 1)
        self.bar.value = value
        self.bar.bar_style = "success" if done else "warning"
        self.label.value = text + ("" if done else " (interrupted)")


class _TextProgress(Progress):
    def __init__(self, title: str, what: str, total: int | None) -> None:
        self.what = what
        self.live = sys.stderr.isatty()

    def update(self, value: int, text: str, total: int | None = None) -> None:
        if self.live:
            sys.stderr.write(f"\r{self.what}: {text}")
            sys.stderr.flush()

    def close(self, value: int, text: str, done: bool) -> None:
        end = "" if done else " (interrupted)"
        sys.stderr.write(f"{chr(13) if self.live else ''}{self.what}: {text}{end}\n")
        sys.stderr.flush()


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where widgets and live displays show)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def progress(title: str, what: str, total: int | None) -> Progress:
    """A new bar: ``title`` beside it in a notebook (``listing``), ``what`` names the work."""
    return _WidgetProgress(title, what, total) if in_kernel() else _TextProgress(title, what, total)
