"""A private ``redis-server`` for tests that stop, kill or restart their broker.

broker = PrivateRedis(tmp_path / "log")
broker.start()          # an empty server on a free loopback port
broker.kill()           # SIGKILL: a crash
broker.start()          # back, on the same port, empty
broker.stop()
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from migration_plans.control.processes import ManagedProcess, free_port, wait_until

__all__ = ["PrivateRedis"]


class PrivateRedis:
    """A ``redis-server`` of our own on a free loopback port (stopping it harms nobody)."""

    def __init__(self, log_dir: Path, *, binary: str = "redis-server") -> None:
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} is not installed (needed for the private broker)")
        self.binary = found
        self.port = free_port()
        self.log_dir = log_dir
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start (again, on the same port, empty) and wait until it answers PING."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = ManagedProcess.start(argv, name="redis", log_dir=self.log_dir)
        wait_until(self.ping, timeout=20, what=f"private redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL it (a crash); returns once it no longer answers. :meth:`start` revives it."""
        if self.process is not None:
            self.process.kill()
            self.process = None
        wait_until(lambda: not self.ping(), timeout=10, what=f"private redis {self.port} gone")
