from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, Q, QuerySet

from .errors import NotFound
from .models import Account, OpsException, Security
from .roles import PM, has_role, sees_all_accounts


def accounts_visible_to(user) -> QuerySet[Account]:
    """Every account for firm-wide roles; a PM only the accounts they manage."""
    qs = Account.objects.select_related("custodian")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if sees_all_accounts(user):
        return qs
    # Being listed as an account's manager is not enough: a user whose PM role was revoked
    # sees nothing (the role is what the firm grants; the manager list is data).
    if not has_role(user, PM):
        return qs.none()
    return qs.filter(managers=user)


def account_not_found(code: str) -> NotFound:
    """The one answer for an account code a user may not trade, whether it exists or not: a PM
    must not tell another PM's account from one that does not exist."""
    return NotFound(f"No account '{code}' that you may trade.", code="account_not_found")


def security_search(*, query: str = "", active_only: bool = True, limit: int = 20):
    qs = Security.objects.select_related("issuer")
    if active_only:
        qs = qs.filter(active=True)
    query = query.strip()
    if query:
        qs = qs.filter(
            Q(symbol__istartswith=query) | Q(name__icontains=query) | Q(isin__iexact=query)
        ).order_by("symbol")
    return qs[:limit]


# --- The exceptions queue -----------------------------------------------------------------------

EXCEPTION_STATUSES = ("all", "open", "resolved")


def exceptions_list(
    *,
    status: str = "all",
    kind: str = "",
    source: str = "",
    search: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[OpsException]:
    """Exceptions, open ones first (most recently seen first), then resolved ones (most
    recently resolved first). status is all, open or resolved; search looks in the summary
    and the ref; since/until bound when it was opened (since inclusive, until exclusive)."""
    if status not in EXCEPTION_STATUSES:
        raise ValueError(f"status must be one of {EXCEPTION_STATUSES}, not {status!r}")
    qs = OpsException.objects.select_related("resolved_by")
    if status == "open":
        qs = qs.filter(resolved_at__isnull=True)
    elif status == "resolved":
        qs = qs.filter(resolved_at__isnull=False)
    if kind:
        qs = qs.filter(kind=kind)
    if source:
        qs = qs.filter(source=source)
    if search:
        qs = qs.filter(Q(summary__icontains=search) | Q(ref__icontains=search))
    if since:
        qs = qs.filter(opened_at__gte=since)
    if until:
        qs = qs.filter(opened_at__lt=until)
    return qs.order_by(F("resolved_at").desc(nulls_first=True), "-last_seen_at", "-id")


def exception_get(*, exception_id: int) -> OpsException:
    exception = OpsException.objects.select_related("resolved_by").filter(pk=exception_id).first()
    if exception is None:
        raise NotFound(f"Exception {exception_id} not found.")
    return exception


def exceptions_open_counts() -> dict[str, int]:
    """Open exceptions per kind, in one query (the one-open-per-(kind, ref) index serves it)."""
    rows = (
        OpsException.objects.filter(resolved_at__isnull=True)
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by("kind")
    )
    return dict(rows)
