"""The FIX message monitor's filter, shared by the page and the API: both read (and refuse)
the same query parameters the same way."""

from __future__ import annotations

from django import forms

from oms.forms import WHEN_HELP, TimeRangeForm

from .models import Broker, FixMessage
from .selectors import MONITORED_MSG_TYPES


class FixMessageFilterForm(TimeRangeForm):
    query_schema = {
        **TimeRangeForm.query_schema,
        "msg_type": {"type": "string", "enum": sorted(MONITORED_MSG_TYPES)},
    }

    broker = forms.CharField(max_length=32, required=False, help_text="The broker's code.")
    direction = forms.ChoiceField(
        choices=[("", "Both"), *FixMessage.Direction.choices], required=False
    )
    msg_type = forms.CharField(max_length=4, required=False, label="MsgType")
    cl_ord_id = forms.CharField(max_length=64, required=False, label="ClOrdID")
    order_id = forms.CharField(max_length=64, required=False, label="OrderID")
    exec_id = forms.CharField(max_length=64, required=False, label="ExecID")
    since = forms.CharField(required=False, label="From", help_text=WHEN_HELP)
    until = forms.CharField(required=False, label="to", help_text=WHEN_HELP)

    def clean_broker(self) -> int | None:
        code = self.cleaned_data["broker"].strip()
        if not code:
            return None
        broker_id = Broker.objects.filter(code=code).values_list("pk", flat=True).first()
        if broker_id is None:
            raise forms.ValidationError(f"No broker {code!r}.", code="unknown")
        return broker_id

    def clean_msg_type(self) -> str:
        value = self.cleaned_data["msg_type"].strip()
        if value and value not in MONITORED_MSG_TYPES:
            known = ", ".join(f"{k} ({v})" for k, v in sorted(MONITORED_MSG_TYPES.items()))
            raise forms.ValidationError(
                f"Unknown MsgType {value!r}; one of {known}.", code="unknown"
            )
        return value

    def selector_kwargs(self) -> dict:
        """The cleaned filters as selectors.fix_messages's arguments."""
        data = self.cleaned_data
        return {
            "broker_id": data["broker"],
            "direction": data["direction"],
            "msg_type": data["msg_type"],
            "cl_ord_id": data["cl_ord_id"].strip(),
            "order_id": data["order_id"].strip(),
            "exec_id": data["exec_id"].strip(),
            "since": data["since"],
            "until": data["until"],
        }


class KillSwitchQuery(forms.Form):
    history = forms.ChoiceField(
        choices=[("", "no"), ("0", "no"), ("1", "yes")],
        required=False,
        help_text="1: the latest released switches too.",
    )
