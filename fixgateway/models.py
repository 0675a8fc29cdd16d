from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from oms.fields import MoneyField, PriceField, QuantityField


class Broker(models.Model):
    """An executing broker and the FIX session the OMS keeps with it."""

    class FixVersion(models.TextChoices):
        FIX42 = "FIX.4.2", "FIX 4.2"
        FIX44 = "FIX.4.4", "FIX 4.4"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    fix_version = models.CharField(
        max_length=8, choices=FixVersion.choices, default=FixVersion.FIX44
    )
    sender_comp_id = models.CharField(max_length=64)
    target_comp_id = models.CharField(max_length=64)
    heartbeat_seconds = models.PositiveIntegerField(default=30)
    active = models.BooleanField(default=True)
    commission_bps = MoneyField(default=0, help_text="Commission in basis points of gross")
    commission_per_share = MoneyField(default=0)
    # Per-broker extras: the algo tag map ({"strategy_tag": 6000, "strategy_tags":
    # {"participation": 6403}, ...}: see fixgateway.algo) and QuickFIX session settings
    # ({"session": {"ResetOnLogon": "Y"}}).
    extra_config = models.JSONField(default=dict, blank=True)
    max_queued_seconds = models.PositiveIntegerField(
        default=30,
        help_text="A NewOrderSingle still unsent this long after it was routed (the session was "
        "down) is held until a trader releases or cancels it.",
    )
    ack_timeout_seconds = models.PositiveIntegerField(
        default=10,
        help_text="A NewOrderSingle sent this long ago without an ExecutionReport from the "
        "broker opens an 'unacknowledged order' exception.",
    )

    class StatusRequests(models.TextChoices):
        UNKNOWN = "unknown", "Not known yet"
        ANSWERED = "answered", "Answers OrderStatusRequest"
        REFUSED = "refused", "Refuses OrderStatusRequest"

    # Learned from the wire: a 35=j refusing a 35=H makes it "refused", a status report (150=I)
    # "answered". A broker that refuses is not asked at every logon.
    status_requests = models.CharField(
        max_length=8, choices=StatusRequests.choices, default=StatusRequests.UNKNOWN
    )
    status_requests_learned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender_comp_id", "target_comp_id"], name="broker_session_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(port__gte=1, port__lte=65535), name="broker_port_range"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class FixOrder(models.Model):
    """A block as the broker knows it: its ClOrdID chain and what is waiting for an answer."""

    block = models.OneToOneField("orders.Block", on_delete=models.PROTECT, related_name="fix_order")
    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="fix_orders")
    # The ClOrdID the broker currently knows the order by (changes on every accepted replace).
    cl_ord_id = models.CharField(max_length=64)
    broker_order_id = models.CharField(max_length=64, blank=True)
    next_suffix = models.PositiveIntegerField(default=1)
    # Where the NewOrderSingle is, for the blotter: "queued" (in the outbox, not sent yet),
    # "held" (queued too long: waits for a trader), "withdrawn" (cancelled before it was sent),
    # "" once it is on the wire.
    outbox_state = models.CharField(max_length=10, blank=True)
    # The broker's last refusal of a message about this order (session or business reject,
    # order or cancel reject), as the trader reads it: {"message", "text", "tag", ...}.
    last_reject = models.JSONField(default=dict, blank=True)
    # A cancel or replace sent and not yet answered: its ClOrdID, kind, and what to restore.
    pending_cl_ord_id = models.CharField(max_length=64, blank=True)
    pending_kind = models.CharField(max_length=8, blank=True)
    pending_values = models.JSONField(default=dict, blank=True)
    prior_status = models.CharField(max_length=20, blank=True)
    # Set when the broker may have lost the order (it reset its session, or a status request
    # failed) and nothing has confirmed it since: a trader cancels locally or resends.
    unconfirmed_since = models.DateTimeField(null=True, blank=True)
    unconfirmed_reason = models.CharField(max_length=200, blank=True)
    # Filled under ClOrdIDs before the current one (a resend as a new order): the broker's
    # CumQty for the current ClOrdID plus this is the block's.
    carried_cum_qty = QuantityField(default=0)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.broker_id}:{self.cl_ord_id}"


class OutboxMessage(models.Model):
    """An order message to send, written in the transaction that decided to send it.

    Its status moves by compare-and-swap only (services): QUEUED -> SENDING (the session owner
    claims it) -> SENT (recorded in QuickFIX's toApp, before the bytes leave); QUEUED or HELD ->
    WITHDRAWN (the trader cancelled it before it was sent); QUEUED -> HELD (a NewOrderSingle
    older than the broker's max_queued_seconds) -> QUEUED (released by a trader)."""

    class Kind(models.TextChoices):
        NEW = "NEW", "NewOrderSingle"
        CANCEL = "CANCEL", "OrderCancelRequest"
        REPLACE = "REPLACE", "OrderCancelReplaceRequest"

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        HELD = "HELD", "Held for the trader"
        SENDING = "SENDING", "Sending"
        SENT = "SENT", "Sent"
        WITHDRAWN = "WITHDRAWN", "Withdrawn"

    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="outbox")
    fix_order = models.ForeignKey(FixOrder, on_delete=models.PROTECT, related_name="messages")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    cl_ord_id = models.CharField(max_length=64, unique=True)
    orig_cl_ord_id = models.CharField(max_length=64, blank=True)
    # Field values for the message builder (strings: Decimals and dates kept exact).
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    held_at = models.DateTimeField(null=True, blank=True)
    # A trader confirmed a held message: it is sent whatever its age.
    released_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_seq_num = models.PositiveIntegerField(null=True, blank=True)
    # The QuickFIX store (its creation time) the MsgSeqNum belongs to: a reset renumbers the
    # session, so a reject's RefSeqNum is matched within its epoch.
    sent_seq_epoch = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["broker", "id"],
                name="outbox_unsent",
                condition=models.Q(sent_at__isnull=True),
            ),
            models.Index(
                fields=["broker", "sent_seq_num"],
                name="outbox_sent_seq",
                condition=models.Q(sent_seq_num__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.cl_ord_id}"


class Execution(models.Model):
    """Every execution report received, once: the ledger behind a block's fills."""

    class State(models.TextChoices):
        APPLIED = "APPLIED", "Applied"
        QUARANTINED = "QUARANTINED", "Quarantined"
        BUSTED = "BUSTED", "Busted"
        CORRECTED = "CORRECTED", "Corrected"

    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="executions")
    fix_order = models.ForeignKey(FixOrder, on_delete=models.PROTECT, related_name="executions")
    exec_id = models.CharField(max_length=64)
    exec_type = models.CharField(max_length=2)
    ord_status = models.CharField(max_length=2, blank=True)
    cl_ord_id = models.CharField(max_length=64)
    exec_ref_id = models.CharField(max_length=64, blank=True)
    last_qty = QuantityField(default=0)
    last_px = PriceField(default=0)
    cum_qty = QuantityField(default=0)
    avg_px = PriceField(default=0)
    leaves_qty = QuantityField(default=0)
    trade_date = models.DateField(null=True, blank=True)
    # SHA-256 of the fields that define the report: a replay must match it exactly.
    content_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.APPLIED)
    raw = models.TextField(blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["broker", "fix_order", "exec_id"], name="execution_unique_per_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exec_id} {self.exec_type} {self.last_qty}@{self.last_px}"


class Quarantine(models.Model):
    """A message the gateway would not apply: kept raw for Operations, with the reason."""

    broker = models.ForeignKey(
        Broker, null=True, blank=True, on_delete=models.PROTECT, related_name="quarantine"
    )
    reason = models.CharField(max_length=32, db_index=True)
    detail = models.TextField(blank=True)
    msg_type = models.CharField(max_length=4, blank=True)
    cl_ord_id = models.CharField(max_length=64, blank=True)
    exec_id = models.CharField(max_length=64, blank=True)
    raw = models.TextField(blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason} {self.cl_ord_id} {self.exec_id}"


class SessionState(models.Model):
    """What the FIX worker that owns a broker's session last reported, for web processes."""

    broker = models.OneToOneField(Broker, on_delete=models.CASCADE, related_name="session_state")
    logged_on = models.BooleanField(default=False)
    next_sender_seq_num = models.PositiveIntegerField(default=1)
    next_target_seq_num = models.PositiveIntegerField(default=1)
    last_message_at = models.DateTimeField(null=True, blank=True)
    owner = models.CharField(max_length=128, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    # The inbound sequence number of the last message whose effects are committed, and the
    # QuickFIX store (its creation time) that numbering belongs to: at start-up the session is
    # wound back to it, so the broker resends whatever was received but never committed.
    inbound_store_created = models.CharField(max_length=32, blank=True)
    inbound_applied_seq_num = models.PositiveIntegerField(default=0)
    # Written by the owning process about every second: a reader that sees it older than
    # OMS_FIX_OWNER_STALE_SECONDS takes the owner for dead (kill -9 writes nothing).
    owner_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The counterparty's numbering does not fit ours ("MsgSeqNum too low"): logons stopped
    # until an operator resets the sequence numbers.
    sequence_problem = models.CharField(max_length=300, blank=True)
    sequence_problem_at = models.DateTimeField(null=True, blank=True)
    # An operator's reset waiting for the owner; the numbers to continue at (None: 1).
    sequence_reset_requested_at = models.DateTimeField(null=True, blank=True)
    sequence_reset_next_sender = models.PositiveIntegerField(null=True, blank=True)
    sequence_reset_next_target = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.broker_id} {'up' if self.logged_on else 'down'}"


class KillSwitch(models.Model):
    """While engaged, orders in scope are cancelled and new routing in scope is refused."""

    class Scope(models.TextChoices):
        ALL = "all", "Everything"
        BROKER = "broker", "Broker"
        ACCOUNT = "account", "Account"
        TRADER = "trader", "Trader"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    value = models.CharField(max_length=150, blank=True)
    engaged_at = models.DateTimeField()
    engaged_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-engaged_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "value"],
                condition=models.Q(released_at__isnull=True),
                name="kill_switch_one_engaged_per_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.value}"


class FixMessage(models.Model):
    """An application message as it crossed the wire, for the FIX message monitor: QuickFIX's
    FileLog keeps the same text, but a file cannot be searched by ClOrdID or time. Written
    set-wise with what the gateway records anyway (the inbound batch, toApp's sent mark)."""

    class Direction(models.TextChoices):
        IN = "IN", "Inbound"
        OUT = "OUT", "Outbound"

    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="fix_messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    msg_type = models.CharField(max_length=4)
    seq_num = models.PositiveIntegerField(null=True, blank=True)
    seq_epoch = models.CharField(max_length=32, blank=True)
    # For a reject without ClOrdID (35=3), the ClOrdID of the message it refers to.
    cl_ord_id = models.CharField(max_length=64, blank=True)
    orig_cl_ord_id = models.CharField(max_length=64, blank=True)
    order_id = models.CharField(max_length=64, blank=True)
    exec_id = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()
    raw = models.TextField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["broker", "at"], name="fixmessage_broker_at"),
            models.Index(fields=["at"], name="fixmessage_at"),
            models.Index(fields=["cl_ord_id"], name="fixmessage_cl_ord_id"),
            models.Index(fields=["orig_cl_ord_id"], name="fixmessage_orig_cl_ord_id"),
            models.Index(fields=["order_id"], name="fixmessage_order_id"),
            models.Index(fields=["exec_id"], name="fixmessage_exec_id"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.msg_type} {self.cl_ord_id}"


class AllocationInstruction(models.Model):
    """An AllocationInstruction (35=J) for one block's finalised day: the per-account quantities
    at the day's average price, to a broker whose row asks for them
    (extra_config {"allocation_instructions": true}). A rebooking of the day writes the next
    version, sent as a replace (71=1) naming the previous AllocID."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        SENT = "SENT", "Sent"
        RECEIVED = "RECEIVED", "Received by the broker"
        ACCEPTED = "ACCEPTED", "Accepted"
        REJECTED = "REJECTED", "Rejected"

    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="+")
    block = models.ForeignKey("orders.Block", on_delete=models.PROTECT, related_name="+")
    trade_date = models.DateField()
    version = models.PositiveIntegerField()
    alloc_id = models.CharField(max_length=64, unique=True)
    ref_alloc_id = models.CharField(max_length=64, blank=True)
    trans_type = models.CharField(max_length=1, default="0")  # 0 new, 1 replace
    side = models.CharField(max_length=16)
    symbol = models.CharField(max_length=32)
    quantity = QuantityField()
    avg_price = PriceField()
    allocations = models.JSONField(default=list)  # [{"account": code, "quantity": "..."}]
    cl_ord_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    ack_text = models.CharField(max_length=500, blank=True)
    reject_code = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["block", "trade_date", "version"], name="alloc_instruction_version"
            ),
        ]

    def __str__(self) -> str:
        return self.alloc_id
