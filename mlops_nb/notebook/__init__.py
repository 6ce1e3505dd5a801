"""The notebook layer: list calls as DataFrames, cards and tables, lookups, catalogs.

Cards and tables are the display module's; messages and list frames know nothing of it (it
registers their renderers). Outside IPython it loads on the first card or table shown (a
``_repr_html_``), so that importing the package stays quick; inside
IPython it loads with the package and installs the table and text displays in the shell.
"""

import sys as _sys

from mlops_nb.notebook import frames as _frames
from mlops_nb.wire import messages as _messages


def _card_html(message: _messages.Message) -> str | None:
    # Registered for every message until the display module replaces the carded ones with
    # its own renderer; for the others card_html gives None, as no renderer would.
    from mlops_nb.notebook.display import card_html

    return card_html(message)


def _frame_html(frame: _frames.ListFrame) -> str:
    # Registered until the display module, loaded here on the first table shown, registers its own.
    from mlops_nb.notebook.display import frame_html

    return frame_html(frame)


for _name in _messages.all_message_classes():
    _messages.register_html_renderer(_name, _card_html)
# The workspaces generation's classes are built on first use: one renderer for all of them.
_messages.register_html_renderer("*", _card_html, generation="workspaces")
_frames.register_frame_renderer(_frame_html)

_ipython = _sys.modules.get("IPython")
if _ipython is not None and _ipython.get_ipython() is not None:
    from mlops_nb.notebook import display as _display  # noqa: F401  (installs the displays in the shell)
