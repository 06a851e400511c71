"""CSRF tokens stay out of URLs: no form or button that submits with GET carries one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from graphsync.models import Sku
from pools.models import AuditEvent, Pool
from pools.services import set_scheme
from rbac.choices import Role

FORM = re.compile(r"<form\b(?P<attributes>[^>]*)>(?P<body>.*?)</form>", re.DOTALL | re.IGNORECASE)
METHOD = re.compile(r"""\bmethod\s*=\s*["']?(\w+)""", re.IGNORECASE)
GET_BUTTON = re.compile(r"""<(?:button|input)\b[^>]*\bformmethod\s*=\s*["']?get""", re.IGNORECASE)
TOKEN = re.compile(r"{%\s*csrf_token\s*%}|csrfmiddlewaretoken")


def template_files() -> list[Path]:
    return sorted(path for directory in settings.TEMPLATES[0]["DIRS"] for path in Path(directory).rglob("*.html"))


def get_forms_with_token() -> list[str]:
    """List "template:line" for each form that sends its CSRF token with a GET submission."""
    found = []
    for path in template_files():
        text = path.read_text(encoding="utf-8")
        for form in FORM.finditer(text):
            if not TOKEN.search(form["body"]):
                continue
            method = METHOD.search(form["attributes"])
            submits_get = method is None or method[1].lower() == "get" or GET_BUTTON.search(form["body"])
            if submits_get:
                found.append(f"{path.name}:{text.count(chr(10), 0, form.start()) + 1}")
    return found


def test_templates_found():
    names = {path.name for path in template_files()}

    assert "_members.html" in names
    assert "pool_detail.html" in names


def test_no_csrf_token_in_get_forms():
    assert get_forms_with_token() == []


@pytest.fixture
def pool_page(client, synced_tenant, make_portal_user, require_postgresql):
    admin = make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department")
    pool = max(
        Pool.objects.filter(tenant=synced_tenant, parent=None, is_active=True, is_unassigned=False),
        key=lambda candidate: candidate.members_queryset().count(),
    )
    client.force_login(admin)
    return client, pool


def test_options_button_posts(pool_page):
    client, pool = pool_page
    member = pool.members_queryset().order_by("user_principal_name").first()

    page = client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).content.decode()

    details_url = reverse("pools:assign_details", kwargs={"pool_pk": pool.pk, "user_pk": member.pk})
    assert f'name="show_plans" value="1" formnovalidate formaction="{details_url}"' in page
    assert 'formmethod="get"' not in page


def test_options_post_redirects_without_token(pool_page):
    client, pool = pool_page
    member = pool.members_queryset().order_by("user_principal_name").first()
    sku = Sku.objects.filter(tenant=pool.tenant, applies_to="User").order_by("part_number").first()
    details_url = reverse("pools:assign_details", kwargs={"pool_pk": pool.pk, "user_pk": member.pk})
    events_before = AuditEvent.objects.count()

    response = client.post(
        details_url, {"user": member.pk, "sku": sku.pk, "show_plans": "1"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"{details_url}?sku={sku.pk}"
    assert AuditEvent.objects.count() == events_before


def test_options_post_without_sku(pool_page):
    client, pool = pool_page
    member = pool.members_queryset().order_by("user_principal_name").first()
    details_url = reverse("pools:assign_details", kwargs={"pool_pk": pool.pk, "user_pk": member.pk})

    response = client.post(details_url, {"user": member.pk, "sku": "", "show_plans": "1"})

    assert response.status_code == 302
    assert response["Location"] == details_url
