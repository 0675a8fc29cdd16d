"""The custodians' settlement files written: a new version of a custodian's file for a trade
date when its content changed (listing what differs from the previous one), every custodian's
for a date, the versions a rebooking changed, and a download on the audit trail."""

from __future__ import annotations

from datetime import date, datetime

from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.errors import NotFound
from oms.models import Custodian

from .models import Allocation, SettlementFile
from .settlement_content import file_content, file_differences, file_rows, settlement_rows


def files_reissue(*, trade_date: date, as_of: datetime, actor) -> None:
    """A new version of every custodian file already written for the date whose content the
    rebooking changed (a custodian never sent a file waits for the after-close job)."""
    for custodian_id in sorted(
        set(
            SettlementFile.objects.filter(trade_date=trade_date).values_list(
                "custodian_id", flat=True
            )
        )
    ):
        settlement_file_generate(
            custodian_id=custodian_id, trade_date=trade_date, as_of=as_of, actor=actor
        )


@retry_on_conflict
def settlement_file_generate(
    *, custodian_id: int, trade_date: date, as_of: datetime, actor=None
) -> tuple[SettlementFile, bool]:
    """Write the custodian's file for the date. If the content is what the latest version
    already says, that version is returned (created=False); otherwise a new version, listing
    what differs from the previous one."""
    custodian = Custodian.objects.select_for_update().filter(pk=custodian_id).first()
    if custodian is None:
        raise NotFound(f"Custodian {custodian_id} does not exist.")
    rows = settlement_rows(custodian_id=custodian_id, trade_date=trade_date)
    content, checksum = file_content(rows)
    latest = (
        SettlementFile.objects.filter(custodian=custodian, trade_date=trade_date)
        .order_by("-version")
        .first()
    )
    if latest is not None and latest.checksum == checksum:
        return latest, False
    version = latest.version + 1 if latest else 1
    previous_rows = file_rows(latest.content) if latest else []
    created = SettlementFile.objects.create(
        custodian=custodian,
        trade_date=trade_date,
        version=version,
        filename=f"settlement_{custodian.code}_{trade_date:%Y%m%d}_v{version}.csv",
        content=content,
        checksum=checksum,
        row_count=len(rows),
        differences=(
            {**file_differences(previous_rows, rows), "replaces": latest.filename} if latest else {}
        ),
        previous=latest,
        created_at=as_of,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        actor=actor,
        action="settlement_file.generate",
        obj=created,
        occurred_at=as_of,
        after={"checksum": checksum, "rows": len(rows), "version": version},
    )
    return created, True


def settlement_files_generate(
    *, trade_date: date, as_of: datetime, actor=None
) -> list[tuple[SettlementFile, bool]]:
    """Files for every custodian with finalised trades on the date (or an earlier version)."""
    custodian_ids = set(
        Allocation.objects.filter(trade_date=trade_date, replaced_at__isnull=True).values_list(
            "account__custodian_id", flat=True
        )
    ) | set(
        SettlementFile.objects.filter(trade_date=trade_date).values_list("custodian_id", flat=True)
    )
    return [
        settlement_file_generate(custodian_id=cid, trade_date=trade_date, as_of=as_of, actor=actor)
        for cid in sorted(custodian_ids)
    ]


@retry_on_conflict
def settlement_file_download(*, file_id: int, actor, as_of: datetime) -> SettlementFile:
    """The file to hand out, with the download on the audit trail."""
    sf = SettlementFile.objects.select_related("custodian").filter(pk=file_id).first()
    if sf is None:
        raise NotFound(f"Settlement file {file_id} does not exist.")
    audit_record(
        actor=actor,
        action="settlement_file.download",
        obj=sf,
        occurred_at=as_of,
        after={"checksum": sf.checksum, "version": sf.version},
    )
    return sf
