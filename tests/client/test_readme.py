"""The README's Python example runs as written against a real service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.ops.service import ServiceProcess

README = Path(__file__).parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_example_runs_as_written(service: ServiceProcess, tmp_path: Path) -> None:
    [block] = BLOCK.findall(README.read_text(encoding="utf-8"))
    script = tmp_path / "readme_example.py"
    script.write_text(block, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "SESSION_SERVICE_URL": service.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "['msg_0000000001', 'msg_0000000002', 'msg_0000000003']"
