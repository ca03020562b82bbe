"""docs/client.md runs as written: its Python blocks, in order, as one script, against a
real service (the page's examples read SESSION_SERVICE_URL, defaulting to make run's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.service import ServiceProcess

PAGE = Path(__file__).parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.timeout(600)
def test_page_examples_run_as_written(service: ServiceProcess, tmp_path: Path) -> None:
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    script = tmp_path / "client_examples.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "SESSION_SERVICE_URL": service.url, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:__main__", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    # What the page's comments promise is what the examples print.
    assert "['msg_0000000004', 'msg_0000000005']" in out
    assert "changed since read; now" in out
    assert "422 unknown_tool_call" in out
    assert "message 1 is at fault; nothing was stored" in out
    assert "3 3" in out
    assert "['disk full on /var', 'which host?']" in out  # watch() saw both, then deleted
    assert "/var is 97% full (after 1 questions)" in out
    assert "/var is 97% full (after 2 questions)" in out
    assert out.count("(after 2 questions)") == 2  # both frameworks remembered the first run
