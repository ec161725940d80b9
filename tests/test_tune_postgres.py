"""`igt tune` on a real PostgreSQL server: two worker processes fill one study, each trial run
once by one of them; an unreachable server is one line.

Needs the driver ``psycopg`` (the ``postgres`` extra, part of ``test``) and PostgreSQL's server
programs (Debian's ``postgresql``: ``apt-get install -y postgresql``; ``make test`` installs it
when it runs as root with apt-get); skipped without them. A throwaway server runs for the
session in a temporary folder, as an unprivileged user when the tests run as root (the server
refuses to run as root).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import optuna
import pytest

from igt.errors import IgtError
from igt.tune import WORKER_ATTR, open_storage, tune

psycopg = pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["data.limit=150", "data.split=random", "data.rwse_steps=0", "data.lap_k=0", "backbone.hidden=8",
        "backbone.layers=1"]
PASSWORD = "s3cret"  # trust authentication ignores it; it is there to be masked
DATABASE = "igt_test"
# Waiting for a server or a worker: generous, since the two long-running jobs of a busy CI
# machine may hold both cores; a wait that runs out fails with what the process said.
WAIT_SECONDS = 300


def _server_programs() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: on PATH, or Debian's (kept off PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


def _as_server_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the server's programs as a user they accept: none when we
    are not root, else ``runuser -u postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("the tests run as root and PostgreSQL refuses root: needs runuser to start it as another user")
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return [runuser, "-u", name, "--"], user
    pytest.skip("the tests run as root and PostgreSQL refuses root: no user 'postgres' or 'nobody' to start it as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://igt:...@127.0.0.1:PORT/igt_test`` of a server that lives for the session."""
    programs = _server_programs()
    if programs is None:
        pytest.skip("needs PostgreSQL's server programs (initdb, pg_ctl): apt-get install -y postgresql")
    prefix, user = _as_server_user()
    # Not pytest's tmp folder: the server's user must reach it (pytest's is private to us), and
    # the socket path must stay under the system's 107 characters.
    root = Path(tempfile.mkdtemp(prefix="igt-pg-"))
    data, port = root / "data", _free_port()
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)

        def run(*command: str) -> None:
            done = subprocess.run([*prefix, *command], cwd=root, capture_output=True, text=True, timeout=WAIT_SECONDS)
            if done.returncode != 0:
                log = (root / "server.log").read_text()[-2000:] if (root / "server.log").exists() else ""
                pytest.fail(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}\n{log}")

        run(str(programs / "initdb"), "-D", str(data), "-U", "igt", "--auth=trust", "--no-locale", "-E", "UTF8",
            "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c full_page_writes=off")  # throwaway: durability is not tested
        run(str(programs / "pg_ctl"), "start", "-w", "-t", str(WAIT_SECONDS), "-D", str(data),
            "-l", str(root / "server.log"), "-o", options)
        try:
            # CREATE DATABASE runs outside a transaction
            with psycopg.connect(host="127.0.0.1", port=port, user="igt", dbname="postgres", connect_timeout=10,
                                 autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {DATABASE}")
            yield f"postgresql://igt:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
        finally:
            subprocess.run([*prefix, str(programs / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(data)],
                           cwd=root, capture_output=True, timeout=WAIT_SECONDS)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    """A connection for the test's own SQL."""
    return psycopg.connect(url, autocommit=autocommit)


def _wait_for_blocked_workers(url: str, workers: list[subprocess.Popen], count: int) -> None:
    """Until ``count`` sessions wait on a lock (a worker that exits first fails the test)."""
    with _connect(url, autocommit=True) as watcher:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()").fetchone()[0]
            if waiting >= count:
                return
            for worker in workers:
                if worker.poll() is not None:
                    pytest.fail(f"a worker exited before reaching the study: {worker.communicate()}")
            time.sleep(0.2)
        pytest.fail(f"the workers did not reach the study within {WAIT_SECONDS} s")


def test_two_workers_fill_one_study_each_trial_run_once(postgres_url, tmp_path):
    """Both workers reach the study before either may start a trial, so both run trials; the
    study then holds the requested trials (plus at most one, see docs/tuning.md), each run by
    one worker with its own values; the shared --out holds the whole study."""
    optuna.storages.RDBStorage(postgres_url)  # the tables, so that the test can lock one
    gate = _connect(postgres_url)
    gate.execute("LOCK TABLE trials IN EXCLUSIVE MODE")  # reads pass, new trials wait: both queue at one gate
    out = tmp_path / "tune"  # shared by both workers
    command = [sys.executable, "-m", "igt.cli", "tune", "bace", "--model", "gin", "--trials", "4", "--epochs", "1",
               "--storage", postgres_url, "--study", "s", "--out", str(out), "-q",
               *[arg for item in TINY for arg in ("--set", item)]]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        _wait_for_blocked_workers(postgres_url, workers, count=2)
    finally:
        gate.commit()  # opens the gate (also when the wait failed, so the workers can end)
        gate.close()
    outputs = [worker.communicate(timeout=WAIT_SECONDS) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
        assert "best valid rocauc" in stdout and PASSWORD not in stdout + stderr

    trials = optuna.load_study(study_name="s", storage=postgres_url).get_trials(deepcopy=False)
    states = {t.state for t in trials}
    # Each worker stops after a trial of its own once the study holds 4: the other worker's
    # trial then running still counts, so 2 workers end with 4 or 5 (never a trial left running).
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert 4 <= len(trials) <= 5
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(trials), params  # no values run twice (defaults queued once, distinct draws)
    by_worker: dict[str, set[int]] = {}
    for trial in trials:
        by_worker.setdefault(trial.user_attrs[WORKER_ATTR], set()).add(trial.number)
    pids = {str(worker.pid) for worker in workers}
    assert {name.rpartition(":")[2] for name in by_worker} == pids  # both ran trials, nobody else did
    assert sum(len(numbers) for numbers in by_worker.values()) == len(trials)  # each trial once

    # The worker that wrote last had seen every trial.
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["trials"].values()) == len(trials) and "running" not in summary["trials"]
    assert summary["storage"] == postgres_url.replace(PASSWORD, "***")
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(int(r["number"]), r[WORKER_ATTR]) for r in rows} == {
        (t.number, t.user_attrs[WORKER_ATTR]) for t in trials}
    assert (out / "best.yaml").is_file()


def test_the_connect_timeout_reaches_the_driver(postgres_url):
    storage = open_storage(postgres_url)
    connection = storage.engine.raw_connection()
    try:
        assert "connect_timeout=10" in connection.dbapi_connection.info.dsn  # a silent server fails in seconds
    finally:
        connection.close()
        storage.engine.dispose()


def test_a_refused_connection_is_one_line_naming_the_masked_url(tmp_path):
    port = _free_port()  # nothing listens there
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/x"
    with pytest.raises(IgtError) as info:
        tune("bace", "gin", 1, 1, storage=url, out=tmp_path / "out", overrides=TINY, progress=False)
    message = str(info.value)
    assert message.startswith(f"storage postgresql://u:***@127.0.0.1:{port}/x: cannot open it (")
    assert "Connection refused" in message and PASSWORD not in message and "\n" not in message
    assert not (tmp_path / "out").exists()
