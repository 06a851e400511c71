"""GET /reports/getOffice365ActiveUserDetail: 302 to a CSV download served by the emulator."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import requests

from graphsync.emulator.server import EmulatorServer

from .conftest import TENANT_ID, GraphClient, control_request, graph_error, small_graph

REQUIRED_COLUMNS = [
    "User Principal Name",
    "Display Name",
    "Is Deleted",
    "Has Exchange License",
    "Has OneDrive License",
    "Has SharePoint License",
    "Has Teams License",
    "Exchange Last Activity Date",
    "OneDrive Last Activity Date",
    "SharePoint Last Activity Date",
    "Teams Last Activity Date",
    "Assigned Products",
]


def _download(graph: GraphClient, server: EmulatorServer, period: str) -> list[dict[str, str]]:
    response = graph.get(f"/reports/getOffice365ActiveUserDetail(period='{period}')", allow_redirects=False)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).netloc == urlsplit(server.base_url).netloc
    download = requests.get(location, verify=server.ca_path, timeout=10)
    assert download.status_code == 200
    assert download.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))


def test_report_columns_and_licenses(emulator: EmulatorServer, graph: GraphClient) -> None:
    rows = _download(graph, emulator, "D30")
    assert len(rows) == 7
    for column in REQUIRED_COLUMNS:
        assert column in rows[0]
    by_name = {row["User Principal Name"]: row for row in rows}
    first = by_name["user1@contoso.test"]
    assert first["Is Deleted"] == "False"
    assert first["Has Exchange License"] == "True"
    assert first["Has Teams License"] == "True"
    assert "MICROSOFT 365 E3" in first["Assigned Products"]
    unlicensed = by_name["user7@contoso.test"]
    assert unlicensed["Has Exchange License"] == "False"
    assert unlicensed["Exchange Last Activity Date"] == ""
    assert unlicensed["Assigned Products"] == ""


def test_report_redirect_followed(emulator: EmulatorServer, graph: GraphClient) -> None:
    response = graph.get("/reports/getOffice365ActiveUserDetail(period='D7')")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_report_invalid_period(graph: GraphClient) -> None:
    response = graph.get("/reports/getOffice365ActiveUserDetail(period='D1')")
    status, code, message = graph_error(response)
    assert (status, code) == (400, "BadRequest")
    assert "D1" in message


def test_report_deleted_user_and_activity(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    activity = control_request(
        controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/user2@contoso.test/activity", json={"Teams": "2024-02-03", "exchange": None}
    )
    assert activity.status_code == 200
    control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/user3@contoso.test")
    rows = {row["User Principal Name"]: row for row in _download(graph, controlled_emulator, "D90")}
    assert rows["user2@contoso.test"]["Teams Last Activity Date"] == "2024-02-03"
    assert rows["user2@contoso.test"]["Exchange Last Activity Date"] == ""
    assert rows["user3@contoso.test"]["Is Deleted"] == "True"


def test_report_activity_validated(controlled_emulator: EmulatorServer) -> None:
    response = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/user2@contoso.test/activity", json={"Fax": "2024-01-01"})
    assert response.status_code == 400
    response = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/user2@contoso.test/activity", json={"Teams": "yesterday"})
    assert response.status_code == 400


def test_report_download_expired(emulator: EmulatorServer) -> None:
    response = requests.get(f"{emulator.base_url}/report-downloads/unknown", verify=emulator.ca_path, timeout=10)
    assert response.status_code == 404
