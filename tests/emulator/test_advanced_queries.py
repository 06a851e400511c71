"""Advanced queries: ConsistencyLevel: eventual with $count and $search."""

from __future__ import annotations

from .conftest import GraphClient, graph_error, user_id

EVENTUAL = {"ConsistencyLevel": "eventual"}
SEARCH_HEADER_MESSAGE = "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"


def test_count_in_listing(graph: GraphClient) -> None:
    body = graph.get("/users?$count=true&$select=id", headers=EVENTUAL).json()
    assert body["@odata.count"] == 7
    assert len(body["value"]) == 7


def test_count_in_listing_needs_header(graph: GraphClient) -> None:
    response = graph.get("/users?$count=true")
    assert graph_error(response) == (400, "Request_BadRequest", "$count is not currently supported.")


def test_count_segment_is_plain_text(graph: GraphClient) -> None:
    response = graph.get("/users/$count", headers=EVENTUAL)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "7"


def test_count_segment_with_filter(graph: GraphClient) -> None:
    # User 1 holds E3 and users 2 and 3 hold Visio; user 4 has a CountViolation and no license.
    response = graph.get("/users/$count?$filter=assignedLicenses/$count ne 0", headers=EVENTUAL)
    assert response.text == "3"


def test_advanced_filter_needs_count(graph: GraphClient) -> None:
    response = graph.get("/users?$filter=assignedLicenses/$count ne 0", headers=EVENTUAL)
    assert graph_error(response)[:2] == (400, "Request_UnsupportedQuery")
    body = graph.get("/users?$filter=assignedLicenses/$count ne 0&$count=true&$select=id", headers=EVENTUAL).json()
    assert body["@odata.count"] == 3


def test_search_needs_header(graph: GraphClient) -> None:
    response = graph.get('/users?$search="displayName:User"')
    assert graph_error(response) == (400, "Request_UnsupportedQuery", SEARCH_HEADER_MESSAGE)


def test_search_display_name(graph: GraphClient) -> None:
    body = graph.get('/users?$search="displayName:3"&$select=id,displayName', headers=EVENTUAL).json()
    assert body["value"] == [{"id": user_id(3), "displayName": "User 3"}]
    everyone = graph.get('/users?$search="displayName:us"&$select=id', headers=EVENTUAL).json()
    assert len(everyone["value"]) == 7


def test_search_or_and_count(graph: GraphClient) -> None:
    body = graph.get(
        '/users?$search="userPrincipalName:user5" OR "displayName:6"&$count=true&$select=id', headers=EVENTUAL
    ).json()
    assert body["@odata.count"] == 2
    assert [user["id"] for user in body["value"]] == [user_id(5), user_id(6)]


def test_search_and(graph: GraphClient) -> None:
    body = graph.get('/users?$search="displayName:user" AND "mail:user2"&$select=id', headers=EVENTUAL).json()
    assert [user["id"] for user in body["value"]] == [user_id(2)]


def test_search_with_paging(graph: GraphClient) -> None:
    first = graph.get('/users?$search="displayName:user"&$top=4&$select=id', headers=EVENTUAL).json()
    assert len(first["value"]) == 4
    assert "$search=" in first["@odata.nextLink"]
    second = graph.get(first["@odata.nextLink"], headers=EVENTUAL).json()
    assert len(second["value"]) == 3
    assert graph_error(graph.get(first["@odata.nextLink"]))[:2] == (400, "Request_UnsupportedQuery")


def test_search_count_segment(graph: GraphClient) -> None:
    assert graph.get('/users/$count?$search="displayName:4"', headers=EVENTUAL).text == "1"


def test_search_invalid_clause(graph: GraphClient) -> None:
    response = graph.get("/users?$search=displayName:User", headers=EVENTUAL)
    assert graph_error(response)[:2] == (400, "Request_UnsupportedQuery")
