"""Benchmark concurrent license assignment against pools with limited spare, on PostgreSQL.

Starts the Graph emulator in its own process with a generated tenant, syncs it, splits it into pools
by department, gives each pool a few spare seats of one SKU, then lets N worker processes make M
assignment attempts in all through `pools.services.assign_license`. Worker processes, each with its
own database connection, stand in for gunicorn and Celery worker processes. It reports:
- over-allotment, checked against both the emulator and the mirror (must be zero);
- throughput in attempts and assignments per second;
- the portal's own wall-clock time per attempt, excluding the Graph assignLicense call (p50 and p95);
- the CPU time per attempt that the worker process spent, excluding the Graph call, and that its
  PostgreSQL backend process spent;
- the portal's time per attempt excluding Graph and the time the worker process or its PostgreSQL
  backend was ready to run but waited for a CPU, from the kernel's scheduler statistics. As the two
  can wait at once, only the longer of their two waits is taken off. This estimates the time the
  attempt would take with a CPU free for every process, and errs towards more: waits of other
  processes, such as a lock holder's or Redis's, still count;
- the time per attempt spent in SQL statements, and the part of it spent waiting for the SKU row lock;
- how busy the machine's CPUs were while the attempts ran.

By default every worker starts its next attempt as soon as the last one ends (a closed loop), so the
machine runs at full load. With --rate, attempts start on a fixed schedule instead (an open loop), as
requests from users arrive, and the report adds how late attempts started because every worker was busy.

With CELERY_BROKER_URL set, alert evaluations are Celery tasks, so the benchmark starts one Celery
worker process on a queue of its own. That worker shares the machine with the attempts, as in
production. Without a broker, Celery runs tasks eagerly and the evaluations run inside the attempts.

Usage (PostgreSQL must run and the database must exist, because the benchmark empties it):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lp_bench_assign CELERY_BROKER_URL=redis://127.0.0.1:6379/12 \
        DJANGO_SECRET_KEY=bench LOG_LEVEL=WARNING \
        .venv/bin/python bench/concurrent_assign.py --users 5000 --attempts 1000 --workers 50
"""
from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

from full_sync import start_emulator  # noqa: E402

CONTROL_TOKEN = "bench-control"


@dataclass
class CallTiming:
    """Seconds spent in the current attempt in Graph assignLicense calls and in queueing alert evaluations."""

    graph_wall: float = 0.0
    graph_cpu: float = 0.0
    graph_cpu_wait: float = 0.0
    enqueue_wall: float = 0.0


@dataclass
class AttemptResult:
    outcome: str
    portal_wall: float
    portal_cpu: float
    backend_cpu: float
    cpu_wait: float
    graph_wall: float
    graph_cpu: float
    sql_wall: float
    lock_wall: float
    commit_wall: float
    enqueue_wall: float
    start_delay: float


_calls = CallTiming()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000, help="users in the generated tenant")
    parser.add_argument("--attempts", type=int, default=1000, help="assignment attempts in all")
    parser.add_argument("--workers", type=int, default=50, help="worker processes making attempts at once")
    parser.add_argument("--spare", type=int, default=5, help="spare seats given to each pool")
    parser.add_argument(
        "--graph-latency-ms", type=int, default=0,
        help="latency the emulator adds to every Graph request, in milliseconds (default 0)",
    )
    parser.add_argument(
        "--rate", type=float, default=0.0,
        help="start attempts at this many per second in all, on a fixed schedule (default 0: each worker starts "
             "its next attempt as soon as the last one ends)",
    )
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the attempts of the first worker process to this file"
    )
    args = parser.parse_args()

    if os.environ.get("CELERY_BROKER_URL"):
        os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"licensepools-bench-{uuid.uuid4().hex[:8]}")

    import django

    django.setup()

    with tempfile.TemporaryDirectory() as state_dir:
        emulator, endpoint = start_emulator(args.users, 3, Path(state_dir), control_token=CONTROL_TOKEN)
        worker = None
        try:
            setup = prepare(args, endpoint)
            if args.graph_latency_ms:
                emulator_control(endpoint, "POST", "faults", {"latencyMs": args.graph_latency_ms})
            worker, worker_log = start_celery_worker(Path(state_dir))
            setup.helpers = {"emulator": emulator.pid, "Celery worker": worker.pid if worker else None}
            results, wall = run_attempts(args, setup)
            evaluations = wait_for_celery_worker(worker_log) if worker else None
            report(args, setup, endpoint, results, wall, evaluations)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
            emulator.terminate()
            emulator.wait(timeout=30)


@dataclass
class Setup:
    tenant: object
    admin: object
    sku: object
    attempts: list
    pools: dict
    holders_before: dict
    machine_busy: float = 0.0
    helpers: dict = field(default_factory=dict)
    helper_cpu: dict = field(default_factory=dict)


def prepare(args, endpoint: dict) -> Setup:
    """Sync the emulated tenant, split it into department pools and give each pool ``args.spare`` seats."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from graphsync.models import Sku, SyncRun, UserLicense
    from graphsync.services import connect_tenant
    from graphsync.sync import run_full_sync
    from pools import services
    from pools.choices import PoolAttribute
    from pools.models import Pool
    from pools.stock import holders
    from rbac.services import grant_role

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    data = endpoint["tenants"][0]
    tenant = connect_tenant(
        acting_user=None, name="bench", tenant_id=data["tenantId"], client_id=data["clientId"],
        client_secret=data["clientSecret"], authority_host=endpoint["base_url"],
        graph_base_url=f"{endpoint['base_url']}/v1.0", ca_bundle=endpoint["ca_path"],
    )
    run_full_sync(SyncRun.objects.create(tenant=tenant))
    admin = get_user_model().objects.create_user("bench-admin")
    grant_role(acting_user=None, role="tenant_admin", tenant=tenant, user=admin)
    services.set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    # Room in the tenant for every pool's spare seats, so that only allotments limit assignments.
    emulator_control(
        endpoint, "POST", f"tenants/{tenant.tenant_id}/skus/{sku.sku_id}", {"prepaidUnits": {"enabled": 1_000_000}}
    )
    sku.enabled_units = 1_000_000
    sku.save(update_fields=["enabled_units"])

    licensed = set(UserLicense.objects.filter(tenant=tenant).values_list("user_id", flat=True))
    candidates = []
    for pool in Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False).select_related("tenant"):
        used = holders(tenant, sku, pool.subtree_ids())
        services.set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + args.spare)
        members = [u for u in pool.members_queryset().exclude(usage_location="") if u.pk not in licensed]
        candidates.extend((pool, user) for user in members)
    random.Random(7).shuffle(candidates)
    attempts = candidates[: args.attempts]
    pools = {pool.pk: pool for pool, _user in attempts}
    before = {pk: holders(tenant, sku, pool.subtree_ids()) for pk, pool in pools.items()}

    # A running installation has planner statistics. The sync queues their refresh as a task, which the
    # Celery worker would otherwise run only once the attempts have started.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    # A token now, so that every forked worker starts with it in MSAL's cache, as a warm server does.
    from graphsync.client import GraphClient

    GraphClient(tenant).acquire_token()
    return Setup(tenant=tenant, admin=admin, sku=sku, attempts=attempts, pools=pools, holders_before=before)


def emulator_control(endpoint: dict, method: str, path: str, body: dict | None = None):
    import requests

    response = requests.request(
        method, f"{endpoint['base_url']}/_emulator/{path}", json=body, verify=endpoint["ca_path"], timeout=60,
        headers={"X-Emulator-Control": CONTROL_TOKEN},
    )
    response.raise_for_status()
    return response


# Celery worker for alert evaluations


def start_celery_worker(state_dir: Path) -> tuple[subprocess.Popen | None, Path | None]:
    """Start a Celery worker on this run's queue when a broker is configured, and return it and its log file."""
    from django.conf import settings

    from licensepools.celery import app

    if app.conf.task_always_eager:
        return None, None
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    log_path = state_dir / "celery.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "licensepools", "worker", "--pool=prefork", "--concurrency=1",
         "-Q", queue, "--without-gossip", "--without-mingle", "-l", "info", "-n", f"{queue}@%h"],
        cwd=ROOT, env={**os.environ, "LOG_LEVEL": "INFO"}, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=1):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"The Celery worker did not start; see {log_path}")
    return process, log_path


def wait_for_celery_worker(log_path: Path, idle_seconds: float = 10.0) -> int:
    """Wait until the worker's log stops growing, then return how many alert evaluation tasks succeeded."""
    size, changed = -1, time.monotonic()
    while time.monotonic() - changed < idle_seconds:
        current = log_path.stat().st_size
        if current != size:
            size, changed = current, time.monotonic()
        time.sleep(0.5)
    lines = log_path.read_text().splitlines()
    return sum(1 for line in lines if "evaluate_pool_sku_alerts_task" in line and " succeeded in " in line)


# Attempts


def run_attempts(args, setup: Setup) -> tuple[list[AttemptResult], float]:
    """Fork the worker processes, start them together and collect every attempt's result."""
    from django.db import connections

    from graphsync import client as graph_client

    real_assign = graph_client.GraphClient.assign_license

    def timed_assign(self, *a, **k):
        wall, cpu, cpu_wait = time.perf_counter(), time.process_time(), scheduler_seconds("thread-self")[1]
        try:
            return real_assign(self, *a, **k)
        finally:
            _calls.graph_wall += time.perf_counter() - wall
            _calls.graph_cpu += time.process_time() - cpu
            _calls.graph_cpu_wait += scheduler_seconds("thread-self")[1] - cpu_wait

    graph_client.GraphClient.assign_license = timed_assign

    from pools import alert_tasks

    real_queue = alert_tasks.queue_pool_sku_evaluation

    def timed_queue(*a, **k):
        started = time.perf_counter()
        try:
            return real_queue(*a, **k)
        finally:
            _calls.enqueue_wall += time.perf_counter() - started

    alert_tasks.queue_pool_sku_evaluation = timed_queue
    # A forked process must not share its parent's database socket, so each opens its own.
    connections.close_all()

    context = multiprocessing.get_context("fork")
    next_index = context.Value("i", 0)
    start_at = context.Value("d", 0.0)
    ready = context.Barrier(args.workers + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=attempt_worker,
            args=(setup, args.rate, next_index, start_at, ready, results, args.profile if number == 0 else None),
        )
        for number in range(args.workers)
    ]
    for process in processes:
        process.start()
    # Every worker has connected to PostgreSQL before the clock starts.
    start_at.value = time.time() + 0.5
    ready.wait()
    busy_before = cpu_jiffies()
    helpers_before = {name: process_tree_seconds(pid) for name, pid in setup.helpers.items() if pid}
    time.sleep(max(start_at.value - time.time(), 0))
    started = time.perf_counter()
    collected: list[AttemptResult] = []
    for _process in processes:
        collected.extend(results.get())
    wall = time.perf_counter() - started
    busy_after = cpu_jiffies()
    setup.helper_cpu = {
        name: process_tree_seconds(setup.helpers[name]) - seconds for name, seconds in helpers_before.items()
    }
    for process in processes:
        process.join()
    setup.machine_busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
    return collected, wall


def process_tree_seconds(pid: int) -> float:
    """Return the CPU seconds used so far by a process and its live child processes, from /proc."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def scheduler_seconds(process: str) -> tuple[float, float]:
    """Return the seconds a task ran on a CPU and waited, ready to run, for one, from /proc/<process>/schedstat."""
    ran, waited, _slices = Path(f"/proc/{process}/schedstat").read_text().split()
    return int(ran) / 1e9, int(waited) / 1e9


def cpu_jiffies() -> tuple[int, int]:
    """Return the busy and total CPU time of the whole machine from /proc/stat, in clock ticks."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def attempt_worker(setup: Setup, rate: float, next_index, start_at, ready, results, profile_path: Path | None) -> None:
    """Make attempts until none are left. Runs in a forked process with a database connection of its own."""
    from django.db import connection

    from pools import services
    from pools.exceptions import AssignmentRejected, GraphRejected

    warm_up()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = str(cursor.fetchone()[0])
    sql = SqlTiming()
    real_commit = connection._commit

    def timed_commit(*a, **k):
        started = time.perf_counter()
        try:
            return real_commit(*a, **k)
        finally:
            sql.commit_wall += time.perf_counter() - started

    connection._commit = timed_commit
    profiler = cProfile.Profile() if profile_path else None
    records: list[AttemptResult] = []
    ready.wait()
    time.sleep(max(start_at.value - time.time(), 0))
    while True:
        with next_index.get_lock():
            index = next_index.value
            next_index.value += 1
        if index >= len(setup.attempts):
            break
        start_delay = 0.0
        if rate:
            scheduled = start_at.value + index / rate
            time.sleep(max(scheduled - time.time(), 0))
            start_delay = time.time() - scheduled
        pool, user = setup.attempts[index]
        _calls.graph_wall = _calls.graph_cpu = _calls.graph_cpu_wait = _calls.enqueue_wall = 0.0
        sql.wall = sql.lock_wall = sql.commit_wall = 0.0
        backend_before = scheduler_seconds(backend)
        worker_wait = scheduler_seconds("thread-self")[1]
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        with connection.execute_wrapper(sql):
            try:
                services.assign_license(acting_user=setup.admin, pool=pool, user=user, sku=setup.sku)
                outcome = "assigned"
            except AssignmentRejected:
                outcome = "rejected"
            except GraphRejected:
                outcome = "graph_rejected"
        portal_wall = time.perf_counter() - wall - _calls.graph_wall
        portal_cpu = time.process_time() - cpu - _calls.graph_cpu
        worker_wait = scheduler_seconds("thread-self")[1] - worker_wait - _calls.graph_cpu_wait
        backend_after = scheduler_seconds(backend)
        if profiler:
            profiler.disable()
        records.append(
            AttemptResult(
                outcome=outcome,
                portal_wall=portal_wall,
                portal_cpu=portal_cpu,
                backend_cpu=backend_after[0] - backend_before[0],
                # The two processes can wait at the same time. Only the longer wait is certainly time
                # spent waiting, so the figure errs towards a longer portal time.
                cpu_wait=max(worker_wait, backend_after[1] - backend_before[1]),
                graph_wall=_calls.graph_wall,
                graph_cpu=_calls.graph_cpu,
                sql_wall=sql.wall,
                lock_wall=sql.lock_wall,
                commit_wall=sql.commit_wall,
                enqueue_wall=_calls.enqueue_wall,
                start_delay=start_delay,
            )
        )
    if profiler:
        profiler.dump_stats(profile_path)
    connection.close()
    results.put(records)


def warm_up() -> None:
    """Open the connections a portal process keeps between requests: PostgreSQL, the broker and Redis."""
    from django.db import connection

    from licensepools.celery import app
    from pools import alert_tasks

    connection.ensure_connection()
    if app.conf.task_always_eager:
        return
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
    store = alert_tasks._pending_store()
    if store is not None:
        store.ping()


class SqlTiming:
    """A Django execute wrapper that adds up the wall-clock time of SQL statements.

    Statements with FOR UPDATE or FOR NO KEY UPDATE also count as ``lock_wall``, because they wait for
    the SKU row lock.
    ``commit_wall`` is filled in by the caller, because Django commits without an execute wrapper.
    """

    def __init__(self) -> None:
        self.wall = 0.0
        self.lock_wall = 0.0
        self.commit_wall = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.wall += elapsed
            if "FOR UPDATE" in sql or "FOR NO KEY UPDATE" in sql:
                self.lock_wall += elapsed


# Report


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def milliseconds(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {percentile(values, 0.95) * 1000:.1f} ms, "
            f"mean {statistics.fmean(values) * 1000:.1f} ms")


def report(
    args, setup: Setup, endpoint: dict, results: list[AttemptResult], wall: float, evaluations: int | None
) -> None:
    from pools.stock import holders

    tenant, sku, pools = setup.tenant, setup.sku, setup.pools
    outcomes = Counter(result.outcome for result in results)
    over_mirror = 0
    for pk, pool in pools.items():
        allotment = pool.allotments.get(sku=sku).seats
        over_mirror += max(holders(tenant, sku, pool.subtree_ids()) - allotment, 0)
    attempted = {str(user.user_id) for _pool, user in setup.attempts}
    snapshot = emulator_control(endpoint, "GET", f"tenants/{tenant.tenant_id}/snapshot").json()
    in_graph = sum(
        1 for user in snapshot["users"]
        if user["id"] in attempted
        and any(item["skuId"] == str(sku.sku_id) for item in user.get("assignedLicenses") or [])
    )
    expected = sum(min(args.spare, sum(1 for p, _u in setup.attempts if p.pk == pk)) for pk in pools)
    spare_before = sum(pools[pk].allotments.get(sku=sku).seats - setup.holders_before[pk] for pk in pools)
    assigned = [result for result in results if result.outcome == "assigned"]

    schedule = f", started at {args.rate:g} per second" if args.rate else ", each worker starting its next at once"
    print(f"{len(results)} attempts by {args.workers} processes{schedule}, in {wall:.1f} s: {dict(outcomes)}")
    print(f"throughput: {len(results) / wall:.1f} attempts/s, {outcomes['assigned'] / wall:.1f} assignments/s")
    print(f"portal wall-clock time per attempt, excluding Graph: {milliseconds([r.portal_wall for r in results])}")
    print(f"  successful assignments only: {milliseconds([r.portal_wall for r in assigned])}")
    print("portal time per attempt, excluding Graph and waiting for a CPU: "
          f"{milliseconds([r.portal_wall - r.cpu_wait for r in results])}")
    print(f"  successful assignments only: {milliseconds([r.portal_wall - r.cpu_wait for r in assigned])}")
    print(f"  waiting for a CPU, the longer of the worker process's and the backend's wait: "
          f"{milliseconds([r.cpu_wait for r in results])}")
    print(f"portal CPU time per attempt, excluding Graph: {milliseconds([r.portal_cpu for r in results])}")
    print(f"  successful assignments only: {milliseconds([r.portal_cpu for r in assigned])}")
    print(f"  PostgreSQL backend: {milliseconds([r.backend_cpu for r in results])}")
    print(f"SQL statements per attempt (wall-clock): {milliseconds([r.sql_wall for r in results])}")
    print(f"  waiting for the SKU row lock: {milliseconds([r.lock_wall for r in results])}")
    print(f"commits per attempt (wall-clock): {milliseconds([r.commit_wall for r in results])}")
    print(f"queueing the alert evaluation, successful assignments: {milliseconds([r.enqueue_wall for r in assigned])}")
    if args.rate:
        print(f"start delay after the schedule, every worker busy: {milliseconds([r.start_delay for r in results])}")
    print(f"Graph assignLicense call: wall-clock {milliseconds([r.graph_wall for r in assigned])}; "
          f"client CPU {milliseconds([r.graph_cpu for r in assigned])}")
    print(f"over-allotment in the mirror: {over_mirror}; "
          f"assignments in Graph beyond those reported: {in_graph - outcomes['assigned']}")
    print(f"assignments expected from spare: {expected}; made: {outcomes['assigned']}; pools: {len(pools)}; "
          f"spare before: {spare_before}")
    capacity = wall * (os.cpu_count() or 1)
    shares = {
        "attempt processes outside Graph calls": sum(r.portal_cpu for r in results) / capacity,
        "attempt processes in Graph calls": sum(r.graph_cpu for r in results) / capacity,
        **{name: seconds / capacity for name, seconds in setup.helper_cpu.items()},
    }
    shares["the rest (PostgreSQL, Redis, other processes)"] = setup.machine_busy - sum(shares.values())
    print(f"CPU time during the attempts, as a share of {os.cpu_count()} CPUs: {setup.machine_busy:.0%} busy")
    for name, share in shares.items():
        print(f"  {name}: {share:.0%}")
    if evaluations is not None:
        print(f"alert evaluation tasks run by the Celery worker: {evaluations}")
    if args.graph_latency_ms:
        print(f"emulator latency per Graph request: {args.graph_latency_ms} ms")


if __name__ == "__main__":
    main()
