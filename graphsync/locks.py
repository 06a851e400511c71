"""A lock per tenant held for a whole sync run, so two syncs of one tenant never run at once.

On PostgreSQL the lock is a session-level advisory lock on the run's database connection. PostgreSQL
releases it when that connection closes, so a worker killed mid-run (even by SIGKILL) never leaves
the tenant locked. Other databases (the embedded SQLite default runs tasks in one process) use a lock
in this process's memory.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

# First key of the two-key advisory lock: keeps these locks apart from other advisory locks.
SYNC_LOCK_NAMESPACE = 0x4C50  # "LP"

_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def tenant_sync_lock(tenant_pk: int) -> Iterator[bool]:
    """Try to take the tenant's sync lock without waiting; yield whether it was taken.

    The lock is released on exit when it was taken.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SYNC_LOCK_NAMESPACE, tenant_pk])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SYNC_LOCK_NAMESPACE, tenant_pk])
        return

    with _local_locks_guard:
        lock = _local_locks.setdefault(tenant_pk, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
