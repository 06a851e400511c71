"""Snapshot files: round trip through the emulator and validation messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from graphsync.emulator.snapshot import SnapshotError, load_snapshot, save_snapshot, validate_snapshot
from graphsync.emulator.state import TenantState

from .conftest import build_small_tenant


def test_save_and_load_round_trip(tmp_path: Path, generated_tenant: dict[str, Any]) -> None:
    path = tmp_path / "tenant.json"
    save_snapshot(generated_tenant, path)
    assert load_snapshot(path) == generated_tenant


def test_state_snapshot_round_trip(generated_tenant: dict[str, Any]) -> None:
    exported = TenantState(generated_tenant).to_snapshot()
    validate_snapshot(exported)
    again = TenantState(exported).to_snapshot()
    assert again == exported
    assert len(exported["users"]) == len(generated_tenant["users"])
    consumed = {sku["skuId"]: sku["consumedUnits"] for sku in generated_tenant["subscribedSkus"]}
    assert {sku["skuId"]: sku["consumedUnits"] for sku in exported["subscribedSkus"]} == consumed


def _broken(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(build_small_tenant())
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("users"), "users: missing"),
        (lambda d: d.update(tenantId="tenant-1"), "tenantId: expected a GUID, got 'tenant-1'"),
        (lambda d: d.update(premium="yes"), "premium: expected true or false, got 'yes'"),
        (lambda d: d.update(clients=[]), "clients: at least one client is required"),
        (lambda d: d["users"][2].update(id="x"), "users[2].id: expected a GUID, got 'x'"),
        (lambda d: d["users"][1].update(usageLocation="USA"), "users[1].usageLocation: expected a two-letter ISO country code or null, got 'USA'"),
        (lambda d: d["users"][1].update(userPrincipalName="user1@contoso.test"), "users[1].userPrincipalName: duplicate value 'user1@contoso.test'"),
        (
            lambda d: d["users"][0]["assignedLicenses"][0].update(skuId="00000000-0000-4000-8000-00000000abcd"),
            "users[0].assignedLicenses[0].skuId: '00000000-0000-4000-8000-00000000abcd' is not in subscribedSkus",
        ),
        (
            lambda d: d["groups"][0]["members"].append("00000000-0000-4000-8000-000000000099"),
            "groups[0].members[3]: no user has id '00000000-0000-4000-8000-000000000099'",
        ),
        (
            lambda d: d["subscribedSkus"][0].update(capabilityStatus="Active"),
            "subscribedSkus[0].capabilityStatus: expected one of Deleted, Enabled, LockedOut, Suspended, Warning, got 'Active'",
        ),
        (
            lambda d: d["subscribedSkus"][0]["prepaidUnits"].update(enabled=-1),
            "subscribedSkus[0].prepaidUnits.enabled: expected a non-negative integer, got -1",
        ),
    ],
)
def test_validation_errors(change: Any, message: str) -> None:
    with pytest.raises(SnapshotError) as raised:
        validate_snapshot(_broken(change))
    assert str(raised.value) == message


def test_load_names_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SnapshotError, match="bad.json: invalid JSON"):
        load_snapshot(path)
