from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Account, Security
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
