from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Account, Security
from .roles import sees_all_accounts


def accounts_visible_to(user) -> QuerySet[Account]:
    """Every account for firm-wide roles; a PM only the accounts they manage."""
    qs = Account.objects.select_related("custodian")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if sees_all_accounts(user):
        return qs
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
