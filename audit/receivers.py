"""Authentication has no service of ours to call, so its signals are the hook for auditing it."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .services import audit_record


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(actor=user, action="auth.login", obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action="auth.logout", obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action="auth.login_failed",
        actor_username=username,
        object_type="auth.user",
        object_id=username,
        after={"username": username},
    )


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    audit_record(
        action="auth.locked_out",
        actor_username=str(username or "")[:150],
        object_type="auth.user",
        object_id=str(username or ""),
        after={"username": username, "ip": ip_address},
    )


user_locked_out.connect(_locked_out, dispatch_uid="oms_audit_locked_out")
