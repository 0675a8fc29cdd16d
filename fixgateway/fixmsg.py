"""QuickFIX plumbing shared by the gateway and the simulator: settings, enumerations, parsing.

Only standard FIX 4.2/4.4 tags are used for the order flow; broker-specific extras come from
Broker.extra_config.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import quickfix as fix

SOH = "\x01"

SIDE_TO_FIX = {"BUY": "1", "SELL": "2", "SELL_SHORT": "5", "BUY_TO_COVER": "1"}
ORD_TYPE_TO_FIX = {"MARKET": "1", "LIMIT": "2", "STOP": "3", "STOP_LIMIT": "4"}
TIF_TO_FIX = {"DAY": "0", "GTC": "1", "OPG": "2", "IOC": "3", "FOK": "4", "GTD": "6", "CLS": "7"}
# TargetStrategy (847): 1 VWAP and 2 Participate are standard; TWAP is in the user range.
DEFAULT_STRATEGY_CODES = {"VWAP": "1", "POV": "2", "TWAP": "1001"}


def data_dictionary_path(begin_string: str) -> str:
    name = begin_string.replace(".", "") + ".xml"  # FIX.4.4 -> FIX44.xml
    for root in (Path(sys.prefix) / "share" / "quickfix", Path(fix.__file__).parent):
        if (root / name).exists():
            return str(root / name)
    raise FileNotFoundError(f"QuickFIX data dictionary {name} not found")


# Fields whose standard enumeration real counterparties extend (the user range, 1000+).
OPEN_ENUM_TAGS = ("847",)


def open_enum_dictionary(begin_string: str, folder: Path) -> str:
    """A copy of the standard data dictionary in which the OPEN_ENUM_TAGS accept any value of
    their type, as brokers that take user-range algo codes do. (QuickFIX 1.16 has no setting
    to skip the enumeration check.) Written once into `folder`; returns its path."""
    import xml.etree.ElementTree as ET

    source = Path(data_dictionary_path(begin_string))
    target = folder / f"{source.stem}-open-enums.xml"
    if target.exists():
        return str(target)
    folder.mkdir(parents=True, exist_ok=True)
    tree = ET.parse(source)
    for field in tree.getroot().iter("field"):
        if field.get("number") in OPEN_ENUM_TAGS:
            for value in list(field):
                field.remove(value)
    temporary = target.with_suffix(".tmp")
    tree.write(temporary, encoding="utf-8", xml_declaration=True)
    temporary.replace(target)
    return str(target)


def session_settings(
    default: dict[str, str], sessions: list[dict[str, str]]
) -> fix.SessionSettings:
    settings = fix.SessionSettings()
    d = fix.Dictionary()
    for key, value in default.items():
        d.setString(key, str(value))
    settings.set(d)
    for values in sessions:
        session_id = fix.SessionID(
            values["BeginString"], values["SenderCompID"], values["TargetCompID"]
        )
        sd = fix.Dictionary()
        for key, value in values.items():
            sd.setString(key, str(value))
        settings.set(session_id, sd)
    return settings


def fix_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def parse_fix_time(text: str) -> datetime | None:
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def new_message(msg_type: str) -> fix.Message:
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(msg_type))
    return message


def get(message: fix.FieldMap, tag: int, default: str = "") -> str:
    return message.getField(tag) if message.isSetField(tag) else default


def get_decimal(message: fix.FieldMap, tag: int) -> Decimal:
    raw = get(message, tag)
    if not raw:
        return Decimal(0)
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"tag {tag} is not a number: {raw!r}") from exc


def get_date(message: fix.FieldMap, tag: int) -> date | None:
    raw = get(message, tag)
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8])) if raw else None


def msg_type(message: fix.Message) -> str:
    return message.getHeader().getField(35)


def raw_text(message: fix.Message) -> str:
    try:
        return message.toString().replace(SOH, "|")
    except Exception:  # a message that will not even print is still quarantined
        return "<unprintable>"
