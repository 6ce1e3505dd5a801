"""The notebook layer: list calls as DataFrames, cards and tables, lookups, catalogs.

Importing the package registers the cards with the wire layer's message classes
(and, inside IPython, the table and text displays).
"""

from mlops_nb.notebook import display as _display  # noqa: F401  (registers the displays)
