"""Models of the pools app, one module per concept."""
from .alerts import Alert, AlertPreference
from .bulk import BulkJob, BulkJobItem
from .core import Allotment, AuditEvent, Pool, PoolScheme
from .purchases import Purchase
from .recovery import LicenseExemption
from .requests import SeatRequest
from .schemes import PoolAlias, PortalValue, TenantPolicy

__all__ = [
    "Alert", "AlertPreference", "Allotment", "AuditEvent", "BulkJob", "BulkJobItem", "LicenseExemption", "Pool",
    "PoolAlias", "PoolScheme", "PortalValue", "Purchase", "SeatRequest", "TenantPolicy",
]
