"""The five roles, what each may do in the admin, and who sees which accounts."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

PM = "PM"
TRADER = "Trader"
COMPLIANCE = "Compliance"
OPERATIONS = "Operations"
ADMIN = "Admin"
ALL_ROLES = (PM, TRADER, COMPLIANCE, OPERATIONS, ADMIN)

# Roles that see every account; a PM sees only the accounts they manage.
FIRM_WIDE_ROLES = frozenset({TRADER, COMPLIANCE, OPERATIONS, ADMIN})
# The exceptions queue: who reads it, and who resolves (a PM does not: an exception may name
# another PM's account).
EXCEPTION_READERS = frozenset({TRADER, COMPLIANCE, OPERATIONS, ADMIN})
EXCEPTION_RESOLVERS = frozenset({TRADER, OPERATIONS, ADMIN})
# Roles that use the Django admin (and so need is_staff).
STAFF_ROLES = frozenset({COMPLIANCE, OPERATIONS, ADMIN})

# Model permissions per role, as "app_label.codename"; ones whose model does not exist yet are
# skipped, so later apps only add lines here.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    PM: ["oms.view_account", "oms.view_security"],
    TRADER: ["oms.view_account", "oms.view_security"],
    COMPLIANCE: [
        "oms.view_account",
        "oms.view_security",
        "oms.view_issuer",
        "oms.view_accounttag",
        "audit.view_auditevent",
        "compliance.*",
    ],
    OPERATIONS: [
        "oms.view_account",
        "oms.change_account",
        "oms.view_security",
        "oms.change_security",
        "oms.view_custodian",
        "oms.view_issuer",
        "positions.*",
        "allocation.*",
    ],
    ADMIN: ["*"],
}


def user_roles(user) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_oms_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMIN}
        user._oms_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def sees_all_accounts(user) -> bool:
    return bool(user_roles(user) & FIRM_WIDE_ROLES)


def _permissions_for(patterns: list[str]) -> list[Permission]:
    perms = Permission.objects.select_related("content_type")
    chosen = []
    for perm in perms:
        label = f"{perm.content_type.app_label}.{perm.codename}"
        app_any = f"{perm.content_type.app_label}.*"
        if "*" in patterns or label in patterns or app_any in patterns:
            chosen.append(perm)
    return chosen


def roles_sync() -> None:
    """Create the role groups and give each its permissions (idempotent)."""
    for role in ALL_ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions_for(ROLE_PERMISSIONS[role]))
