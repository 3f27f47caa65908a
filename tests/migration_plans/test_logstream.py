"""One prefixed log stream out of several processes' log files."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from migration_plans.control.logstream import LogStream
from migration_plans.control.processes import ManagedProcess, wait_until


def test_lines_of_real_processes_arrive_prefixed_and_whole(tmp_path: Path) -> None:
    out = io.StringIO()
    script = "import sys\nfor i in range(3): print(f'{sys.argv[1]} line {i}', flush=True)\n"
    with LogStream(out) as stream:
        for name in ("alpha", "beta"):
            process = ManagedProcess.start(
                [sys.executable, "-c", script, name], name=name, log_dir=tmp_path
            )
            stream.follow(name, process.log_path)
            process.popen.wait(timeout=30)
        wait_until(lambda: out.getvalue().count("\n") == 6, timeout=10, what="six log lines")
    lines = out.getvalue().splitlines()
    assert sorted(lines) == sorted(
        f"{name:<8} | {name} line {i}" for name in ("alpha", "beta") for i in range(3)
    )


def test_a_partial_last_line_is_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("complete\npartial")
    out = io.StringIO()
    stream = LogStream(out)
    stream.follow("x", path)
    wait_until(lambda: "complete" in out.getvalue(), timeout=10, what="first line")
    stream.close()
    assert out.getvalue().splitlines() == ["x        | complete", "x        | partial"]
