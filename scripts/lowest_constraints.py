"""Print pip requirements that pin the libraries the client layers import to their declared floors.

``.ci/run`` installs the package, then these (``pip install -r``), in a Python 3.10 environment and
runs the suite's fast part: a floor in ``pyproject.toml`` that the code does not work with fails
there. The other dependencies (the sandbox's, the test tools) resolve as usual.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

# What mlops_nb's wire and notebook layers import (the sandbox's own libraries are not pinned).
CLIENT_LIBRARIES = ("requests", "urllib3", "numpy", "pandas", "traitlets", "ipywidgets", "itables", "ipython",
                    "pyyaml")
FLOOR = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*(?P<version>[^,;\s]+)")


def floors(pyproject: Path) -> dict[str, str]:
    """Each dependency's name (lower case) -> its ``>=`` floor."""
    found = {}
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        match = FLOOR.match(requirement)
        if match:
            found[match["name"].lower()] = match["version"]
    return found


def main() -> None:
    declared = floors(Path(__file__).resolve().parent.parent / "pyproject.toml")
    missing = [name for name in CLIENT_LIBRARIES if name not in declared]
    if missing:
        sys.exit(f"pyproject.toml declares no floor (name>=version) for {', '.join(missing)}")
    for name in CLIENT_LIBRARIES:
        print(f"{name}=={declared[name]}")


if __name__ == "__main__":
    main()
