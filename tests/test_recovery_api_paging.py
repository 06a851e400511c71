"""REST API: the reclaim candidates of a pool come in pages like every other list."""
from __future__ import annotations

from rest_framework.test import APIClient

from tests.test_recovery import (  # noqa: F401 (fixtures)
    DISABLED, admin, emulator_snapshot, manager, member, pool, premium, scenario,
)


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_candidates_paged(scenario, pool, manager):
    api = api_for(manager)
    url = f"/api/v1/pools/{pool.pk}/reclaim-candidates/"
    everything = api.get(url).json()

    first = api.get(url, {"page_size": 2})
    last = api.get(url, {"page_size": 2, "page": 3})

    assert everything["count"] == 5
    assert len(everything["candidates"]) == 5
    assert everything["next"] is None
    assert first.status_code == 200
    assert first.json()["count"] == 5
    assert [item["userId"] for item in first.json()["candidates"]] == [
        item["userId"] for item in everything["candidates"][:2]
    ]
    assert "page=2" in first.json()["next"]
    assert "page_size=2" in first.json()["next"]
    assert first.json()["previous"] is None
    assert first.json()["threshold"] == {"days": 90, "source": "tenant"}
    assert [item["userId"] for item in last.json()["candidates"]] == [everything["candidates"][4]["userId"]]
    assert last.json()["next"] is None


def test_candidates_exempted_on_every_page(scenario, pool, manager):
    api = api_for(manager)
    user = member(scenario, DISABLED)
    api.post(f"/api/v1/pools/{pool.pk}/users/{user.user_id}/exemption/", {"reason": "Shared mailbox"}, format="json")
    url = f"/api/v1/pools/{pool.pk}/reclaim-candidates/"

    pages = [api.get(url, {"page_size": 2, "page": number}).json() for number in (1, 2)]

    assert [page["count"] for page in pages] == [4, 4]
    assert [[item["reason"] for item in [entry["exemption"] for entry in page["exempted"]]] for page in pages] == [
        ["Shared mailbox"], ["Shared mailbox"]
    ]


def test_candidates_page_errors(scenario, pool, manager):
    api = api_for(manager)
    url = f"/api/v1/pools/{pool.pk}/reclaim-candidates/"

    invalid = api.get(url, {"page": "abc"})
    beyond = api.get(url, {"page": 4, "page_size": 2})
    too_large = api.get(url, {"page_size": 501})

    assert invalid.status_code == 400
    assert invalid.json() == {
        "page": ['"abc" is not a valid page. Send a whole number from 1, or "last" for the last page.']
    }
    assert beyond.status_code == 404
    assert beyond.json() == {"detail": "Page 4 does not exist: the last page is 3. Send a page from 1 to 3."}
    assert too_large.status_code == 400
    assert too_large.json() == {"page_size": ['"501" is not a valid page_size. Send a whole number from 1 to 500.']}
