from .roles import ADMIN, COMPLIANCE, EXCEPTION_READERS, OPERATIONS, PM, TRADER, user_roles

# (label, url name, roles that see it). Later capabilities add their pages here.
NAVIGATION = [
    ("Order ticket", "orders:ticket", {PM, ADMIN}),
    ("My orders", "orders:my_orders", {PM, ADMIN}),
    ("Baskets", "orders:basket_upload", {PM, ADMIN}),
    ("Blotter", "orders:blotter", {TRADER, ADMIN}),
    ("Positions", "positions:positions", {PM, TRADER, COMPLIANCE, OPERATIONS, ADMIN}),
    ("Exposure", "positions:exposure", {COMPLIANCE, OPERATIONS, ADMIN, TRADER}),
    ("Compliance", "compliance:dashboard", {COMPLIANCE, ADMIN}),
    ("Operations", "allocation:operations", {OPERATIONS, ADMIN}),
    ("Exceptions", "exceptions", set(EXCEPTION_READERS)),
    ("TCA", "marketdata:tca", {TRADER, COMPLIANCE, ADMIN}),
    ("Reports", "reports:list", {PM, TRADER, COMPLIANCE, OPERATIONS, ADMIN}),
    ("FIX messages", "fixgateway:messages", {TRADER, ADMIN, COMPLIANCE, OPERATIONS}),
    ("Accounts", "accounts", {PM, TRADER, COMPLIANCE, OPERATIONS, ADMIN}),
    ("Audit", "audit:events", {COMPLIANCE, ADMIN}),
]


def navigation(request):
    from django.urls import NoReverseMatch, reverse

    roles = user_roles(getattr(request, "user", None))
    items = []
    for label, name, allowed in NAVIGATION:
        if roles & allowed:
            try:
                items.append({"label": label, "url": reverse(name)})
            except NoReverseMatch:
                continue  # the page arrives with a later capability
    return {"nav_items": items, "user_roles": sorted(roles)}
