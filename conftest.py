"""Shared test fixtures: the Graph emulator over HTTPS, connected tenants, portal users and a Celery worker.

In CI (``CI=true``) a missing PostgreSQL, Redis or Chromium fails the test; elsewhere it is skipped with
the command that starts it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parent


def require(condition: bool, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a component a test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def require_postgresql(settings):
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "This test needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/licensepools "
        "(make test does) and start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect 15 main start`.",
    )


@pytest.fixture(autouse=True)
def api_token_failures_cleared():
    """Forget the invalid API tokens counted for the test client's address, which the cache keeps between tests."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from licensepools.token_throttle import clear_failures

    try:
        clear_failures("127.0.0.1")
    except RedisConnectionError:
        # Tests that send API tokens fail on their own then; the others need no Redis.
        pass


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Create the test database, and at the end close the connections that live-server threads left open.

    Without that, PostgreSQL refuses to drop the test database while another session uses it.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def emulator_state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("emulator")


@pytest.fixture
def emulator_snapshot() -> dict:
    """A small generated tenant; override in a test module to use another."""
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=60, seed=7)


@pytest.fixture
def emulator(emulator_snapshot, emulator_state_dir):
    """A fresh Graph emulator over HTTPS for each test, serving ``emulator_snapshot``."""
    from graphsync.emulator.server import EmulatorServer

    server = EmulatorServer([emulator_snapshot], state_dir=emulator_state_dir, control_token="test-control-token")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def emulated_tenant_state(emulator, emulator_snapshot):
    return emulator.state(emulator_snapshot["tenantId"])


@pytest.fixture
def tenant(db, emulator, emulator_snapshot):
    """A tenant connection pointed at the emulator, not yet synced."""
    from graphsync.services import connect_tenant

    client = emulator_snapshot["clients"][0]
    return connect_tenant(
        acting_user=None,
        name=emulator_snapshot.get("displayName") or "Contoso",
        tenant_id=emulator_snapshot["tenantId"],
        client_id=client["clientId"],
        client_secret=client["clientSecret"],
        authority_host=emulator.base_url,
        graph_base_url=f"{emulator.base_url}/v1.0",
        ca_bundle=str(emulator.ca_path),
        currency="EUR",
    )


def sync_now(tenant):
    """Run a full sync in this process and fail the test if it did not succeed."""
    from graphsync.models import SyncRun
    from graphsync.sync import run_full_sync

    run = run_full_sync(SyncRun.objects.create(tenant=tenant))
    assert run.status == "succeeded", run.error_message
    tenant.refresh_from_db()
    return run


@pytest.fixture
def synced_tenant(tenant):
    sync_now(tenant)
    return tenant


@pytest.fixture
def make_portal_user(db):
    """Create a portal user, optionally with a role over a tenant or a pool."""
    from django.contrib.auth import get_user_model

    from rbac.services import grant_role

    def make(username: str, *, role: str | None = None, tenant=None, pool=None, password: str = "correct-horse-42"):
        user = get_user_model().objects.create_user(username=username, password=password)
        if role is not None:
            grant_role(acting_user=None, role=role, tenant=tenant or pool.tenant, user=user, pool=pool)
        return user

    return make


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """Start a real Celery worker bound to the test database and a queue of this test session."""
    from django.conf import settings
    from django.db import connection

    from licensepools.celery import app

    broker = settings.CELERY_BROKER_URL
    require(
        bool(broker) and port_open(urlsplit(broker).hostname or "127.0.0.1", urlsplit(broker).port or 6379),
        "This test needs Redis and a broker URL: set CELERY_BROKER_URL=redis://127.0.0.1:6379/15 (make test does) "
        'and start Redis with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`.',
    )
    db = connection.settings_dict
    require(db["ENGINE"] == "django.db.backends.postgresql", "The Celery worker tests need PostgreSQL (DATABASE_URL).")

    queue = f"licensepools-test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    # Celery reads this app's settings under the CELERY_ prefix, so assigning task_default_queue or
    # task_always_eager would change nothing.
    app.conf.CELERY_TASK_DEFAULT_QUEUE = queue
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    log_path = ROOT / "test-artifacts" / f"celery-{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "licensepools", "worker", "--pool=threads", "--concurrency=4",
         "-Q", queue, "--without-gossip", "--without-mingle", "-l", "info", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The Celery worker exited with {process.returncode}; see {log_path}", pytrace=False)
        replies = app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=1)
        if replies:
            break
    else:
        process.terminate()
        pytest.fail(f"The Celery worker did not answer a ping within 60 s; see {log_path}", pytrace=False)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = "/usr/bin/chromium"
    require(Path(path).exists(), "Browser tests need Debian's Chromium: `apt-get install -y chromium`.")
    return path


@pytest.fixture
def browser_page(chromium_path):
    """A Playwright page in headless Chromium, with the flags this machine's closed network needs."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, so Django rejects ORM calls unless this
    # setting declares the test code synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync", "--disable-quic"],
        )
        context = browser.new_context(accept_downloads=True, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()
