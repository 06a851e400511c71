class PoolsError(Exception):
    """Base for errors the portal shows to the person who asked for the change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AssignmentRejected(PoolsError):
    """The portal refused the change before calling Graph: a quota, scope or data rule forbids it."""


class GraphRejected(PoolsError):
    """Microsoft Graph refused or failed the change; the message explains it and carries Graph's reason."""

    def __init__(self, message: str, *, graph_message: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.graph_message = graph_message
        self.request_id = request_id


class OutcomeUnknown(GraphRejected):
    """The connection failed after Graph may have applied the change, and reading it back failed too.

    The license row stays in an unconfirmed state, holding its seat, until the next sync settles it.
    Sending the change again is left to the person, after that sync.
    """


class AllotmentError(PoolsError):
    """An allotment would break a stock or level-2 limit."""
