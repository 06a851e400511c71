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


class AllotmentError(PoolsError):
    """An allotment would break a stock or level-2 limit."""
