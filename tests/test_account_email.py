"""Own e-mail address: any signed-in user sets it with their password, every change is audited, and the demo
accounts get addresses on the reserved example.com domain."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from pools.choices import AuditAction
from pools.models import AuditEvent

PASSWORD = "correct-horse-42"
URL = "/accounts/email/"


@pytest.fixture
def finance(make_portal_user, db):
    return make_portal_user("finance")


def test_user_sets_own_email(client, finance):
    client.force_login(finance)

    response = client.post(URL, {"email": "Finance@Example.COM", "current_password": PASSWORD}, follow=True)

    finance.refresh_from_db()
    assert finance.email == "Finance@example.com"
    assert "Alert e-mails now go to Finance@example.com." in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.EMAIL_CHANGED)
    assert event.actor == finance
    assert event.target == "finance"
    assert event.before == {"email": ""}
    assert event.after == {"email": "Finance@example.com"}


def test_invalid_email_rejected(client, finance):
    client.force_login(finance)

    response = client.post(URL, {"email": "finance@", "current_password": PASSWORD})

    assert response.status_code == 400
    assert response.context["form"].errors["email"] == ["E-mail address: Enter a valid email address."]
    finance.refresh_from_db()
    assert finance.email == ""
    assert not AuditEvent.objects.filter(action=AuditAction.EMAIL_CHANGED).exists()


def test_wrong_password_rejected(client, finance):
    client.force_login(finance)

    response = client.post(URL, {"email": "finance@example.com", "current_password": "guess"})

    assert response.status_code == 400
    assert response.context["form"].errors["current_password"] == [
        "Current password: The password is not correct. Enter the password you sign in with."
    ]
    finance.refresh_from_db()
    assert finance.email == ""


def test_email_removed_and_unchanged(client, finance):
    finance.email = "finance@example.com"
    finance.save(update_fields=["email"])
    client.force_login(finance)

    unchanged = client.post(URL, {"email": "finance@example.com", "current_password": PASSWORD}, follow=True)
    removed = client.post(URL, {"email": "", "current_password": PASSWORD}, follow=True)

    assert "Your e-mail address is unchanged." in unchanged.content.decode()
    assert "Removed your e-mail address. The portal sends you no e-mail." in removed.content.decode()
    finance.refresh_from_db()
    assert finance.email == ""
    assert AuditEvent.objects.filter(action=AuditAction.EMAIL_CHANGED).count() == 1


def test_page_needs_sign_in(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_preferences_link_to_email_page(client, finance):
    client.force_login(finance)

    page = client.get("/alerts/preferences/").content.decode()

    assert "Ask a portal administrator" not in page
    assert f'href="{URL}"' in page


def test_demo_accounts_get_reserved_addresses(synced_tenant, require_postgresql):
    from graphsync.management.commands.run_demo import Command

    get_user_model().objects.create_user("manager", email="me@example.test")

    Command().create_accounts(synced_tenant)

    emails = dict(get_user_model().objects.values_list("username", "email"))
    assert emails == {"admin": "admin@example.com", "manager": "me@example.test", "finance": "finance@example.com"}
