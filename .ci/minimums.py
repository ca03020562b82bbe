"""Print the declared minimum of every runtime dependency as a pip constraint.

`make test-min` installs exactly these versions into .venv-min and runs the store
tests against them, so a minimum in pyproject.toml is one the code really works with.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = REQUIREMENT.match(requirement)
        if match is None:
            print(f"no minimum declared: {requirement}", file=sys.stderr)
            return 1
        print(f"{match.group(1)}=={match.group(2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
