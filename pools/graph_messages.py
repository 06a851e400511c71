"""Turn Graph's assignLicense errors into messages that say what to do next."""
from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

from graphsync.errors import GraphConnectionError, GraphError, GraphNotFoundError, GraphPermissionError, GraphThrottledError

# Each entry: a pattern of Graph's message, and the advice shown before Graph's own words.
ASSIGN_LICENSE_ADVICE: list[tuple[re.Pattern, str]] = [
    (
        re.compile(r"invalid usage location", re.I),
        _("{user} has no usage location in Microsoft 365. Set the user's usage location in the Microsoft 365 admin "
          "center or Entra ID, run a sync, and try again."),
    ),
    (
        re.compile(r"does not have any available licenses", re.I),
        _("The tenant has no free {sku} seat in Microsoft 365, although the portal counted one. Buy seats or free "
          "one in another pool, run a sync, and try again."),
    ),
    (
        re.compile(r"inherited from a group", re.I),
        _("{user} gets {sku} from a group. Remove the user from that group, or remove the license from the group."),
    ),
    (
        re.compile(r"does not correspond to a valid company License", re.I),
        _("The tenant has no subscription for {sku} any more. Run a sync to refresh the tenant's SKUs."),
    ),
    (
        re.compile(r"User does not have a corresponding license", re.I),
        _("{user} no longer holds {sku} in Microsoft 365; someone removed it outside the portal. Run a sync to "
          "refresh the pool."),
    ),
    (
        re.compile(r"Edm\.Guid", re.I),
        _("The SKU ID sent for {sku} is not a GUID. Run a sync to refresh the tenant's SKUs; if this repeats, "
          "report it as a bug in License Pools."),
    ),
    (
        re.compile(r"parameters of the operation 'assignLicense' are missing", re.I),
        _("License Pools sent Graph an incomplete assignLicense request. Report this as a bug in License Pools."),
    ),
    (
        re.compile(r"depends on the service plan", re.I),
        _("A service plan of {sku} needs another plan that is disabled or missing. Enable the required plan or "
          "assign the SKU that contains it first."),
    ),
    (
        re.compile(r"mutually exclusive", re.I),
        _("{sku} contains a service plan that cannot be combined with one the user already has. Remove the "
          "conflicting license first."),
    ),
]


def describe_connection_error(error: GraphConnectionError, *, user: str) -> str:
    """Return what failed, whether the change may have been made, and what to do, without the transport's text.

    The transport's own error text is logged by the Graph client, not shown.
    """
    if not error.request_sent:
        text = _("Microsoft Graph could not be reached at {host}: {reason}. Nothing was changed for {user}. "
                 "Check that this server can connect to {host}, then try again.")
    else:
        text = _("The connection to Microsoft Graph at {host} failed after the request was sent: {reason}. "
                 "The change for {user} may or may not have been made in Microsoft 365. Run a sync to see the "
                 "user's current state, then try again if the change is missing.")
    return str(text).format(host=error.host, reason=error.reason, user=user)


def describe_graph_error(error: GraphError, *, user: str, sku: str) -> str:
    """Return advice for the person, followed by Graph's own message and request id.

    A connection failure gets advice only, because Graph sent no message.
    """
    if isinstance(error, GraphConnectionError):
        return describe_connection_error(error, user=user)
    if isinstance(error, GraphNotFoundError):
        advice = _("{user} no longer exists in Entra ID. Run a sync to refresh the pool.")
    elif isinstance(error, GraphPermissionError):
        advice = _("The app registration lacks a Graph permission. Grant LicenseAssignment.ReadWrite.All with admin "
                   "consent, then try again.")
    elif isinstance(error, GraphThrottledError):
        advice = _("Microsoft Graph is throttling this tenant. Wait a minute and try again.")
    else:
        advice = next(
            (text for pattern, text in ASSIGN_LICENSE_ADVICE if pattern.search(error.message)),
            _("Microsoft Graph rejected the change."),
        )
    graph_part = str(_("Graph said: {message}")).format(message=error.message)
    if error.request_id:
        graph_part += " " + str(_("(request ID {request_id})")).format(request_id=error.request_id)
    return f"{str(advice).format(user=user, sku=sku)} {graph_part}"


# Outcomes of reading a user's licenses back after the connection failed once the request was sent.

def _lost_response(error: GraphConnectionError) -> str:
    return str(_("The connection to Microsoft Graph at {host} failed after the request was sent: {reason}.")).format(
        host=error.host, reason=error.reason
    )


def describe_assignment_confirmed() -> str:
    """Return the audit note of an assignment that reading the user's licenses back confirmed."""
    return str(_("The connection to Microsoft Graph failed after the request was sent; reading the user's "
                 "licenses back confirmed the assignment."))


def describe_assignment_not_made(error: GraphConnectionError, *, user: str, sku: str) -> str:
    return f"{_lost_response(error)} " + str(
        _("Reading {user}'s licenses back showed that {sku} was not assigned, so nothing was changed and the "
          "seat was released. Try again.")
    ).format(user=user, sku=sku)


def describe_assignment_unknown(error: GraphConnectionError, *, user: str, sku: str, read_failed: bool = True) -> str:
    """Return the message of an assignment that may have been made; ``read_failed`` False means other plans were found."""
    if read_failed:
        found = _("Reading {user}'s licenses back failed too, so whether {user} now holds {sku} is unknown.")
    else:
        found = _("Reading {user}'s licenses back found {sku} with other disabled service plans than requested, "
                  "so whether this request was applied is unknown.")
    settle = _("The seat stays reserved as an unconfirmed assignment, and the next sync settles it from what "
               "Microsoft 365 holds. Check the user after that sync instead of assigning again.")
    return f"{_lost_response(error)} {str(found).format(user=user, sku=sku)} {settle}"


def describe_removal_confirmed() -> str:
    """Return the audit note of a removal that reading the user's licenses back confirmed."""
    return str(_("The connection to Microsoft Graph failed after the request was sent; reading the user's "
                 "licenses back confirmed the removal."))


def describe_removal_not_made(error: GraphConnectionError, *, user: str, sku: str) -> str:
    return f"{_lost_response(error)} " + str(
        _("Reading {user}'s licenses back showed that {user} still holds {sku}, so nothing was changed. "
          "Try again.")
    ).format(user=user, sku=sku)


def describe_removal_unknown(error: GraphConnectionError, *, user: str, sku: str) -> str:
    return f"{_lost_response(error)} " + str(
        _("Reading {user}'s licenses back failed too, so whether {sku} was removed is unknown. The portal "
          "keeps counting the seat as an unconfirmed removal, and the next sync settles it from what "
          "Microsoft 365 holds. Check the user after that sync instead of revoking again.")
    ).format(user=user, sku=sku)


def describe_sync_settlement(*, removal: bool, held: bool) -> str:
    """Return the audit note of an unconfirmed assignment or removal that a sync settled."""
    if removal and held:
        return str(_("A sync found that the user still holds the license in Microsoft 365: the removal whose "
                     "outcome was unknown was not made."))
    if removal:
        return str(_("A sync found the license gone from Microsoft 365: the removal whose outcome was unknown "
                     "was made."))
    if held:
        return str(_("A sync found the license in Microsoft 365: the assignment whose outcome was unknown was "
                     "made through the portal."))
    return str(_("A sync found no such license in Microsoft 365: the assignment whose outcome was unknown was "
                 "not made, and its seat was released."))
