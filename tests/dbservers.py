"""Real database servers for tests, started from the Debian packages in a temporary folder on loopback:
MariaDB (`mariadb-server`) and PostgreSQL (`postgresql`). Each holds a CDR table of the shape Asterisk
writes (FreePBX's `asteriskcdrdb.cdr`; `cdr_pgsql`'s `cdr`) and a read-only user for sipwatch."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MYSQL_CDR = """CREATE TABLE cdr (
  calldate datetime NOT NULL DEFAULT '1970-01-01 00:00:00', clid varchar(80) NOT NULL DEFAULT '',
  src varchar(80) NOT NULL DEFAULT '', dst varchar(80) NOT NULL DEFAULT '',
  dcontext varchar(80) NOT NULL DEFAULT '', channel varchar(80) NOT NULL DEFAULT '',
  dstchannel varchar(80) NOT NULL DEFAULT '', lastapp varchar(80) NOT NULL DEFAULT '',
  lastdata varchar(80) NOT NULL DEFAULT '', duration int(11) NOT NULL DEFAULT 0,
  billsec int(11) NOT NULL DEFAULT 0, disposition varchar(45) NOT NULL DEFAULT '',
  amaflags int(11) NOT NULL DEFAULT 0, accountcode varchar(20) NOT NULL DEFAULT '',
  uniqueid varchar(32) NOT NULL DEFAULT '', userfield varchar(255) NOT NULL DEFAULT '',
  did varchar(50) NOT NULL DEFAULT '', recordingfile varchar(255) NOT NULL DEFAULT '',
  cnum varchar(80) NOT NULL DEFAULT '', cnam varchar(80) NOT NULL DEFAULT '',
  linkedid varchar(32) NOT NULL DEFAULT '', peeraccount varchar(80) NOT NULL DEFAULT '',
  sequence int(11) NOT NULL DEFAULT 0, KEY calldate (calldate))"""

PG_CDR = """CREATE TABLE cdr (
  calldate timestamp NOT NULL, clid varchar(80) NOT NULL DEFAULT '', src varchar(80) NOT NULL DEFAULT '',
  dst varchar(80) NOT NULL DEFAULT '', dcontext varchar(80) NOT NULL DEFAULT '',
  channel varchar(80) NOT NULL DEFAULT '', dstchannel varchar(80) NOT NULL DEFAULT '',
  lastapp varchar(80) NOT NULL DEFAULT '', lastdata varchar(80) NOT NULL DEFAULT '',
  duration bigint NOT NULL DEFAULT 0, billsec bigint NOT NULL DEFAULT 0,
  disposition varchar(45) NOT NULL DEFAULT '', amaflags bigint NOT NULL DEFAULT 0,
  accountcode varchar(20) NOT NULL DEFAULT '', uniqueid varchar(150) NOT NULL DEFAULT '',
  userfield varchar(255) NOT NULL DEFAULT '', peeraccount varchar(20) NOT NULL DEFAULT '',
  linkedid varchar(150) NOT NULL DEFAULT '', sequence int NOT NULL DEFAULT 0)"""

COLUMNS = ("calldate", "clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "duration",
           "billsec", "disposition", "amaflags", "accountcode", "uniqueid", "userfield", "linkedid", "sequence")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Server:
    scheme: str
    port: int
    database: str
    user: str
    password: str
    stop: Any
    start: Any

    def url(self, password: str | None = None, **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return (f"{self.scheme}://{self.user}:{password if password is not None else self.password}"
                f"@127.0.0.1:{self.port}/{self.database}" + (f"?{query}" if query else ""))

    def insert(self, **row: object) -> None:
        """One CDR row as Asterisk inserts it when a call ends (the admin's connection, not sipwatch's)."""
        values = {c: row.get(c, 0 if c in ("duration", "billsec", "amaflags", "sequence") else "") for c in COLUMNS}
        with admin_connection(self) as db, db.cursor() as cur:
            cur.execute(f"INSERT INTO cdr ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
                        list(values.values()))


@contextmanager
def admin_connection(server: Server) -> Iterator[Any]:
    if server.scheme == "mysql":
        import pymysql

        db = pymysql.connect(host="127.0.0.1", port=server.port, user="admin", password="admin-pw",
                             database=server.database, autocommit=True)
    else:
        import psycopg

        db = psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", password="postgres-pw",
                             dbname=server.database, autocommit=True)
    try:
        yield db
    finally:
        db.close()


def _need(binary: str, package: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("starting a database server for the test needs root")
    found = shutil.which(binary) or next(iter(sorted(glob.glob(binary))), None)
    if not found:
        pytest.skip(f"{Path(binary).name} is missing (apt-get install {package})")
    return found


@contextmanager
def mariadb(tmp: Path) -> Iterator[Server]:
    mariadbd = _need("mariadbd", "mariadb-server")
    install = _need("mariadb-install-db", "mariadb-server")
    data, sock, port = tmp / "data", tmp / "mysqld.sock", free_port()
    subprocess.run([install, "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    args = [mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
            "--bind-address=127.0.0.1", "--user=root", "--skip-log-bin", f"--pid-file={tmp / 'pid'}"]
    process: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_port(port)

    def stop() -> None:
        process[-1].terminate()
        process[-1].wait(timeout=30)

    start()
    client = shutil.which("mariadb") or "mysql"
    sql = ("CREATE DATABASE asteriskcdrdb; USE asteriskcdrdb; " + MYSQL_CDR + "; "
           "CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'admin-pw'; GRANT ALL ON *.* TO 'admin'@'127.0.0.1'; "
           "CREATE USER 'sipwatch'@'127.0.0.1' IDENTIFIED BY 'cdr-pw'; "
           "GRANT SELECT ON asteriskcdrdb.cdr TO 'sipwatch'@'127.0.0.1';")
    subprocess.run([client, f"--socket={sock}", "-e", sql], check=True, capture_output=True, timeout=60)
    try:
        yield Server("mysql", port, "asteriskcdrdb", "sipwatch", "cdr-pw", stop, start)
    finally:
        if process and process[-1].poll() is None:
            stop()


@contextmanager
def postgresql(scratch: Path) -> Iterator[Server]:
    """(In a folder of its own under /tmp: PostgreSQL runs as `postgres`, which cannot enter pytest's.)"""
    bindir = Path(_need("/usr/lib/postgresql/*/bin/initdb", "postgresql")).parent
    tmp = Path(tempfile.mkdtemp(prefix="sipwatch-pg-"))
    data, port = tmp / "pg", free_port()
    shutil.chown(tmp, "postgres")
    (tmp / "pw").write_text("postgres-pw\n")
    shutil.chown(tmp / "pw", "postgres")

    def as_postgres(*args: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}")

    as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                "--auth-host=scram-sha-256", f"--pwfile={tmp / 'pw'}")
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"

    def start() -> None:
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(tmp / "log"), "start")
        _wait_port(port)

    def stop() -> None:
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")

    start()
    psql = str(bindir / "psql")
    for sql, db in (("CREATE DATABASE asterisk", "postgres"), (PG_CDR, "asterisk"),
                    ("CREATE USER sipwatch PASSWORD 'cdr-pw'; GRANT SELECT ON cdr TO sipwatch", "asterisk")):
        as_postgres(psql, "-h", str(tmp), "-p", str(port), "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql)
    try:
        yield Server("postgresql", port, "asterisk", "sipwatch", "cdr-pw", stop, start)
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
