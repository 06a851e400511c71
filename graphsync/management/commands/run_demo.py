"""Serve the portal on the embedded default with a demo tenant in the Graph emulator.

Migrates the database, starts the emulator with the demo tenant over HTTPS, connects and syncs the
tenant, creates the demo accounts, prints how to sign in, and runs Django's server until interrupted.
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from graphsync.models import SyncRun, Tenant
from graphsync.services import connect_tenant
from graphsync.sync import run_full_sync
from pools.choices import PoolAttribute
from pools.exceptions import AllotmentError
from pools.models import Pool
from pools.services import set_allotment, set_scheme
from pools.stock import tenant_stock
from rbac.choices import Role
from rbac.models import Grant
from rbac.services import grant_role

DEMO_EMAIL_DOMAIN = "example.com"
DEMO_ACCOUNTS = [
    ("admin", Role.TENANT_ADMIN, "tenant administrator"),
    ("manager", Role.POOL_MANAGER, "pool manager"),
    ("finance", Role.FINANCE, "finance"),
]


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the portal with a demo tenant served by the Graph emulator (the embedded default)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--emulator-port", type=int, default=8443)
        parser.add_argument("--no-serve", action="store_true", help="Prepare everything, print, and exit.")

    def handle(self, *args, host, port, emulator_port, no_serve, **options):
        if not no_serve and not port_free(host, port):
            raise CommandError(f"Port {port} on {host} is in use. Choose another with PORT=8001 make run (--port).")
        if not port_free("127.0.0.1", emulator_port):
            raise CommandError(
                f"Port {emulator_port} for the Graph emulator is in use, perhaps by an emulator an earlier run left "
                f"behind. Stop it, or choose another port with EMULATOR_PORT=8444 make run (--emulator-port)."
            )
        if not settings.PORTAL_BASE_URL_SET:
            # E-mails link to the address this command serves; `make run` sets the same address.
            settings.PORTAL_BASE_URL = f"http://{host}:{port}"
        call_command("migrate", interactive=False, verbosity=0)
        emulator, endpoint = self.start_emulator(emulator_port)
        # SIGTERM (kill, systemd, docker stop) must also stop the emulator, as Ctrl+C does.
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
        try:
            tenant = self.connect_demo_tenant(endpoint)
            self.stdout.write("Syncing the demo tenant from the emulator…")
            run = run_full_sync(SyncRun.objects.create(tenant=tenant))
            if run.status != "succeeded":
                raise CommandError(f"The demo tenant's sync failed: {run.error_message}")
            password = self.create_accounts(tenant)
            self.print_sign_in(host, port, tenant, run, password)
            if not no_serve:
                call_command("runserver", f"{host}:{port}", use_reloader=False)
        except KeyboardInterrupt:
            self.stdout.write("Stopping.")
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(timeout=10)

    def start_emulator(self, emulator_port: int):
        state_dir = settings.VAR_DIR / "emulator"
        endpoint_file = state_dir / "endpoint.json"
        endpoint_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "graphsync.emulator", "serve", "--demo",
            "--host", "127.0.0.1", "--port", str(emulator_port), "--state-dir", str(state_dir),
        ]
        log_path = state_dir / "emulator.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(command, stdout=log_path.open("w"), stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)
        deadline = time.monotonic() + 60
        while not endpoint_file.exists():
            if process.poll() is not None:
                raise CommandError(
                    f"The Graph emulator exited with code {process.returncode}; see {log_path}. "
                    f"Is port {emulator_port} in use? Choose another with --emulator-port."
                )
            if time.monotonic() > deadline:
                process.terminate()
                raise CommandError(f"The Graph emulator did not start within 60 s; see {log_path}.")
            time.sleep(0.2)
        return process, json.loads(endpoint_file.read_text())

    def connect_demo_tenant(self, endpoint: dict) -> Tenant:
        demo = endpoint["tenants"][0]
        tenant = Tenant.objects.filter(tenant_id=demo["tenantId"]).first()
        if tenant is None:
            tenant = connect_tenant(
                acting_user=None,
                name=demo.get("displayName") or "Contoso (demo)",
                tenant_id=demo["tenantId"],
                client_id=demo["clientId"],
                client_secret=demo["clientSecret"],
                authority_host=endpoint["base_url"],
                graph_base_url=f"{endpoint['base_url']}/v1.0",
                ca_bundle=endpoint["ca_path"],
            )
        else:
            # The emulator may run on another port or with a new CA than last time.
            tenant.authority_host = endpoint["base_url"]
            tenant.graph_base_url = f"{endpoint['base_url']}/v1.0"
            tenant.ca_bundle = endpoint["ca_path"]
            tenant.set_client_secret(demo["clientSecret"])
            tenant.save()
        return tenant

    def create_accounts(self, tenant: Tenant) -> str:
        password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
        users = {}
        for username, _role, _label in DEMO_ACCOUNTS:
            user, _created = get_user_model().objects.get_or_create(username=username)
            user.set_password(password)
            if not user.email:
                # example.com is reserved for documentation (RFC 2606), so demo e-mails reach nobody.
                user.email = f"{username}@{DEMO_EMAIL_DOMAIN}"
            user.save()
            users[username] = user

        admin = users["admin"]
        if not Grant.objects.filter(user=admin, tenant=tenant, role=Role.TENANT_ADMIN).exists():
            grant_role(acting_user=None, role=Role.TENANT_ADMIN, tenant=tenant, user=admin)
        if not Grant.objects.filter(user=users["finance"], tenant=tenant, role=Role.FINANCE).exists():
            grant_role(acting_user=None, role=Role.FINANCE, tenant=tenant, user=users["finance"])

        if not hasattr(tenant, "scheme"):
            set_scheme(
                acting_user=admin, tenant=tenant,
                level1_attribute=PoolAttribute.COUNTRY, level2_attribute=PoolAttribute.DEPARTMENT,
            )
        if not Grant.objects.filter(user=users["manager"], tenant=tenant).exists():
            pool = (
                Pool.objects.active()
                .filter(tenant=tenant, parent=None, is_unassigned=False)
                .annotate(size=Count("children__members"))
                .order_by("-size", "display_name")
                .first()
            )
            if pool is not None:
                grant_role(acting_user=None, role=Role.POOL_MANAGER, tenant=tenant, user=users["manager"], pool=pool)
                self.allot_demo_seats(admin, pool)
        return password

    def allot_demo_seats(self, admin, pool: Pool) -> None:
        """Give the manager's pool room to work: its consumption plus up to ten seats of each SKU it uses.

        The extra seats come out of the central reserve, which already counts the pool's holders.
        """
        from pools.stock import pool_lines

        stock = {line.sku.pk: line for line in tenant_stock(pool.tenant)}
        for line in pool_lines(pool):
            room = max(stock[line.sku.pk].reserve, 0)
            seats = line.consumption + min(10, room)
            if seats > 0 and line.sku.applies_to == "User":
                try:
                    set_allotment(acting_user=admin, pool=pool, sku=line.sku, seats=seats)
                except AllotmentError as exc:
                    self.stderr.write(f"Demo allotment skipped: {exc.message}")

    def print_sign_in(self, host: str, port: int, tenant: Tenant, run: SyncRun, password: str) -> None:
        manager_grant = Grant.objects.filter(user__username="manager", tenant=tenant).select_related("pool").first()
        lines = [
            "",
            f"License Pools is ready at http://{host}:{port}/ (links in e-mails start with {settings.PORTAL_BASE_URL}/)",
            f"Demo tenant {tenant.name}: {run.users_count} users, {run.skus_count} SKUs, served by the Graph emulator "
            f"at {tenant.authority_host}.",
            "Sign in as:",
        ]
        for username, _role, label in DEMO_ACCOUNTS:
            scope = ""
            if username == "manager" and manager_grant and manager_grant.pool:
                scope = f" of pool {manager_grant.pool}"
            lines.append(f"  {username:<8} ({label}{scope})  password: {password}  e-mail: {username}@{DEMO_EMAIL_DOMAIN}")
        if os.environ.get("DEMO_PASSWORD"):
            lines.append("  (password from DEMO_PASSWORD)")
        lines.append("Stop with Ctrl+C; the emulator stops with the portal and starts from the demo data next time.")
        self.stdout.write("\n".join(lines) + "\n")
