"""A PostgreSQL cluster of the caller's own, to stop, restart and freeze (SIGSTOP).

Outage tests and ``bench/faults.py`` need a server they may break; never the shared one
on 5432. ``Cluster`` runs ``initdb`` and ``pg_ctl`` from the PostgreSQL 15 binaries (as
the ``postgres`` system user when we are root, since PostgreSQL refuses to run as root),
listening on a free loopback port, with durability left on: a test that counts what
survives a restart must not be helped by ``fsync=off``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.support.processes import free_port

BIN = Path(os.environ.get("NIRVANA_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    return (BIN / "initdb").is_file() and (BIN / "pg_ctl").is_file()


class Cluster:
    """One PostgreSQL cluster in a temporary directory, trust auth on 127.0.0.1:``port``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        self.frozen: list[psutil.Process] = []

    @property
    def url(self) -> str:
        """The maintenance database's URL (``postgres``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (fast: sessions are cut), stay down ``down_seconds``, start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def postmaster(self) -> psutil.Process:
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: the server answers nothing, while
        the kernel still accepts connections and acknowledges what is sent."""
        main = self.postmaster()
        self.frozen = [main, *main.children(recursive=True)]
        for process in self.frozen:
            try:
                process.send_signal(signal.SIGSTOP)
            except psutil.NoSuchProcess:
                pass  # a backend that ended between the listing and the signal needs no freezing

    def thaw(self) -> None:
        for process in self.frozen:
            try:
                process.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
        self.frozen = []

    def close(self) -> None:
        self.thaw()
        try:
            self.stop("immediate")
        except subprocess.SubprocessError:
            pass


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started cluster, stopped and removed afterwards. The directory is outside
    pytest's ``tmp_path``, which the ``postgres`` user cannot reach."""
    root = Path(tempfile.mkdtemp(prefix="nirvana-cluster-"))
    cluster = Cluster(root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
