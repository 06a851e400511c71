"""Store a tenant connection (Entra app registration with a client secret)."""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from graphsync.models import MICROSOFT_AUTHORITY_HOST, MICROSOFT_GRAPH_BASE_URL
from graphsync.services import connect_tenant


class Command(BaseCommand):
    help = (
        "Connect a Microsoft 365 tenant. The client secret is read from the environment variable "
        "GRAPH_CLIENT_SECRET so that it never appears in the shell history."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Name shown in the portal.")
        parser.add_argument("--tenant-id", required=True, help="Directory (tenant) ID, a GUID.")
        parser.add_argument("--client-id", required=True, help="Application (client) ID of the app registration.")
        parser.add_argument("--authority-host", default=MICROSOFT_AUTHORITY_HOST)
        parser.add_argument("--graph-base-url", default=MICROSOFT_GRAPH_BASE_URL)
        parser.add_argument("--ca-bundle", default="", help="CA certificate file, for a Graph emulator only.")
        parser.add_argument("--currency", default="EUR", help="ISO 4217 currency of the tenant's prices.")

    def handle(self, *args, **options):
        secret = os.environ.get("GRAPH_CLIENT_SECRET", "")
        if not secret:
            raise CommandError("GRAPH_CLIENT_SECRET is not set: export the app registration's client secret first.")
        try:
            tenant = connect_tenant(
                acting_user=None,
                name=options["name"],
                tenant_id=options["tenant_id"],
                client_id=options["client_id"],
                client_secret=secret,
                authority_host=options["authority_host"],
                graph_base_url=options["graph_base_url"],
                ca_bundle=options["ca_bundle"],
                currency=options["currency"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()))
        self.stdout.write(f"Connected {tenant.name} ({tenant.tenant_id}). Run `manage.py sync_tenant {tenant.tenant_id}`.")
