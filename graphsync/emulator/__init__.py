"""A Microsoft Graph emulator: HTTPS token and Graph v1.0 endpoints over tenant snapshots.

It depends on werkzeug and cryptography only, so it runs without Django.
"""

from .generator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, demo_tenant, generate_tenant
from .server import EmulatorServer
from .snapshot import SnapshotError, load_snapshot, save_snapshot, validate_snapshot

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_TENANT_ID",
    "EmulatorServer",
    "SnapshotError",
    "demo_tenant",
    "generate_tenant",
    "load_snapshot",
    "save_snapshot",
    "validate_snapshot",
]
