"""CSV export of chargeback reports.

The file is UTF-8 with a byte order mark, so that Excel detects the encoding, and numbers use a dot
as the decimal separator whatever the reader's language. Text cells that a spreadsheet would read as
a formula are prefixed with an apostrophe. The file has one line per report row and no total line, so
that it can be summed and imported as it is. The pool ID is the portal's stable key of the pool, because
names can repeat, such as when an active pool and an inactive one of a replaced scheme share a name.
"""
from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .reports import Report

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
BYTE_ORDER_MARK = "\ufeff"
# A spreadsheet treats a cell starting with one of these as a formula or as a control sequence.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Return ``value`` prefixed with an apostrophe when a spreadsheet would run it as a formula."""
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_filename(report: Report) -> str:
    tenant_slug = slugify(report.tenant.name) or f"tenant-{report.tenant.pk}"
    return f"chargeback-{tenant_slug}-{report.label}.csv"


def report_to_csv(report: Report) -> str:
    """Render the report as CSV text, beginning with the byte order mark."""
    buffer = io.StringIO()
    buffer.write(BYTE_ORDER_MARK)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            _("Month"), _("Pool ID"), _("Pool"), _("Pool status"), _("SKU"), _("Product"), _("License-days"), _("Cost"),
            _("Currency"),
        ]
    )
    for row in report.rows:
        cost = row.cost
        writer.writerow(
            [
                report.label,
                row.pool_id,
                safe_text(row.pool_name),
                safe_text(row.pool_status),
                safe_text(row.part_number),
                safe_text(row.product_name),
                row.license_days,
                "" if cost is None else f"{cost:.2f}",
                safe_text(row.currency),
            ]
        )
    return buffer.getvalue()


def csv_response(report: Report) -> HttpResponse:
    response = HttpResponse(report_to_csv(report).encode("utf-8"), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, csv_filename(report))
    return response
