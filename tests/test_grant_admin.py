"""The Django admin's grant form: pool choices that name their tenant and status."""
import html
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from graphsync.models import Tenant
from pools.models import Pool
from rbac.models import Grant

POOL_OPTION = re.compile(r'<option value="(\d+)"[^>]*>([^<]*)</option>')


def make_tenant(name: str) -> Tenant:
    return Tenant.objects.create(name=name, tenant_id=uuid.uuid4(), client_id=uuid.uuid4(), client_secret_encrypted="")


def make_pool(tenant: Tenant, key: str, *, parent: Pool | None = None, active: bool = True, override: str = "") -> Pool:
    return Pool.objects.create(
        tenant=tenant, parent=parent, attribute="department" if parent is None else "country", key=key.lower(),
        display_name=key, name_override=override, is_active=active,
    )


@pytest.fixture
def superuser_client(client, db):
    user = get_user_model().objects.create_superuser(username="root", password="correct-horse-42")
    client.force_login(user)
    return client


def pool_options(response) -> list[tuple[int, str]]:
    select = re.search(r'<select name="pool"[^>]*>(.*?)</select>', response.content.decode(), re.S)
    assert select is not None
    return [(int(pk), html.unescape(label)) for pk, label in POOL_OPTION.findall(select.group(1))]


def test_pool_choices_name_tenant_and_status(superuser_client):
    fabrikam, contoso = make_tenant("Fabrikam"), make_tenant("Contoso")
    fabrikam_sales = make_pool(fabrikam, "Sales")
    contoso_sales = make_pool(contoso, "Sales")
    retired = make_pool(contoso, "sales-old", active=False, override="Old Sales")
    berlin = make_pool(contoso, "Berlin", parent=contoso_sales)
    contoso_hr = make_pool(contoso, "hr")
    amsterdam = make_pool(contoso, "Amsterdam", parent=contoso_sales)

    response = superuser_client.get(reverse("admin:rbac_grant_add"))

    assert response.status_code == 200
    assert pool_options(response) == [
        (contoso_hr.pk, "Contoso / hr"),
        (retired.pk, "Contoso / Old Sales (inactive)"),
        (contoso_sales.pk, "Contoso / Sales"),
        (amsterdam.pk, "Contoso / Sales / Amsterdam"),
        (berlin.pk, "Contoso / Sales / Berlin"),
        (fabrikam_sales.pk, "Fabrikam / Sales"),
    ]


def test_pool_choices_query_count(superuser_client):
    contoso = make_tenant("Contoso")
    parent = make_pool(contoso, "Sales")
    url = reverse("admin:rbac_grant_add")
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(url)

    fabrikam = make_tenant("Fabrikam")
    for number in range(10):
        make_pool(fabrikam, f"Team {number}", active=number % 2 == 0)
        make_pool(contoso, f"City {number}", parent=parent)
    with CaptureQueriesContext(connection) as many:
        response = superuser_client.get(url)

    assert len(pool_options(response)) == 21
    assert len(many.captured_queries) == len(few.captured_queries)


def test_grant_list_query_count(superuser_client, make_portal_user):
    contoso = make_tenant("Contoso")
    parent = make_pool(contoso, "Sales")
    url = reverse("admin:rbac_grant_changelist")
    make_portal_user("first", role="pool_manager", pool=make_pool(contoso, "Berlin", parent=parent))
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(url)

    for number in range(5):
        make_portal_user(f"user{number}", role="pool_manager", pool=make_pool(contoso, f"City {number}", parent=parent))
    with CaptureQueriesContext(connection) as many:
        response = superuser_client.get(url)

    assert response.status_code == 200
    assert Grant.objects.count() == 6
    assert len(many.captured_queries) == len(few.captured_queries)
