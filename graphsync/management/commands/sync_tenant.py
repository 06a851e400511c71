"""Run a full sync of one tenant, or of all, from the command line."""
from django.core.management.base import BaseCommand, CommandError

from graphsync.choices import SyncStatus
from graphsync.models import SyncRun, Tenant
from graphsync.sync import run_full_sync


class Command(BaseCommand):
    help = "Synchronise a tenant's users, groups, SKUs and subscriptions from Microsoft Graph into the mirror."

    def add_arguments(self, parser):
        parser.add_argument("tenant_ids", nargs="*", help="Tenant IDs (GUIDs) to sync; all tenants when omitted.")

    def handle(self, *args, tenant_ids, **options):
        tenants = Tenant.objects.all()
        if tenant_ids:
            tenants = tenants.filter(tenant_id__in=tenant_ids)
            missing = set(tenant_ids) - {str(t.tenant_id) for t in tenants}
            if missing:
                raise CommandError(f"No connected tenant has the ID {', '.join(sorted(missing))}; see `manage.py connect_tenant`.")
        failed = 0
        for tenant in tenants:
            run = run_full_sync(SyncRun.objects.create(tenant=tenant))
            if run.status == SyncStatus.SUCCEEDED:
                self.stdout.write(
                    f"{tenant.name}: {run.users_count} users, {run.groups_count} groups, {run.skus_count} SKUs, "
                    f"{run.subscriptions_count} subscriptions"
                )
            else:
                failed += 1
                self.stderr.write(f"{tenant.name}: sync failed: {run.error_message}")
        if failed:
            raise CommandError(f"{failed} tenant sync(s) failed.")
