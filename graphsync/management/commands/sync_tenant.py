"""Sync one tenant, or all, from the command line, printing progress after each page."""
from django.core.management.base import BaseCommand, CommandError

from graphsync.choices import SyncKind, SyncStatus
from graphsync.models import SyncRun, Tenant
from graphsync.services import choose_sync_kind
from graphsync.sync import run_sync


class Command(BaseCommand):
    help = (
        "Synchronise tenants' users, groups, SKUs and subscriptions from Microsoft Graph into the mirror. "
        "By default a tenant with a users delta link gets an incremental sync, unless its last full sync "
        "is older than GRAPH_FULL_SYNC_INTERVAL_HOURS."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant_ids", nargs="*", help="Tenant IDs (GUIDs) to sync; all tenants when omitted.")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--full", action="store_true", help="Read the whole directory again.")
        mode.add_argument(
            "--incremental", action="store_true",
            help="Apply only the changes since the stored users delta link; a tenant without one gets a full sync.",
        )

    def handle(self, *args, tenant_ids, full, incremental, **options):
        tenants = Tenant.objects.all()
        if tenant_ids:
            tenants = tenants.filter(tenant_id__in=tenant_ids)
            missing = set(tenant_ids) - {str(t.tenant_id) for t in tenants}
            if missing:
                raise CommandError(f"No connected tenant has the ID {', '.join(sorted(missing))}; see `manage.py connect_tenant`.")
        failed = 0
        for tenant in tenants:
            if full:
                kind = SyncKind.FULL
            elif incremental:
                kind = SyncKind.INCREMENTAL
            else:
                kind = choose_sync_kind(tenant)
            run = SyncRun.objects.create(tenant=tenant, kind=kind)
            self.stdout.write(f"{tenant.name}: sync run {run.pk} ({kind}) started")

            def report(run, pages, users, tenant=tenant):
                self.stdout.write(f"{tenant.name}: page {pages}, {users} users so far")
                self.stdout.flush()

            run = run_sync(run, progress_callback=report)
            if run.status == SyncStatus.SUCCEEDED:
                self.stdout.write(
                    f"{tenant.name}: {run.kind} sync succeeded: {run.users_count} users, {run.groups_count} groups, "
                    f"{run.skus_count} SKUs, {run.subscriptions_count} subscriptions, {run.pages_count} pages"
                )
            else:
                failed += 1
                self.stderr.write(f"{tenant.name}: sync {run.status}: {run.error_message}")
        if failed:
            raise CommandError(f"{failed} tenant sync(s) failed or were skipped.")
