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
MSG_TYPE_NAMES = {
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
    "H": "OrderStatusRequest",
    "Q": "DontKnowTrade",
}
# SessionRejectReason (373) and BusinessRejectReason (380), as the trader reads them.
SESSION_REJECT_REASONS = {
    "0": "Invalid tag number",
    "1": "Required tag missing",
    "2": "Tag not defined for this message type",
    "3": "Undefined tag",
    "4": "Tag specified without a value",
    "5": "Value is incorrect (out of range) for this tag",
    "6": "Incorrect data format for value",
    "7": "Decryption problem",
    "8": "Signature problem",
    "9": "CompID problem",
    "10": "SendingTime accuracy problem",
    "11": "Invalid MsgType",
    "12": "XML validation error",
    "13": "Tag appears more than once",
    "14": "Tag specified out of required order",
    "15": "Repeating group fields out of order",
    "16": "Incorrect NumInGroup count for repeating group",
    "17": "Non data value includes field delimiter",
    "99": "Other",
}
BUSINESS_REJECT_REASONS = {
    "0": "Other",
    "1": "Unknown ID",
    "2": "Unknown security",
    "3": "Unsupported message type",
    "4": "Application not available",
    "5": "Conditionally required field missing",
    "6": "Not authorized",
    "7": "DeliverTo firm not available at this time",
    "18": "Invalid price increment",
}


def data_dictionary_path(begin_string: str) -> str:
    name = begin_string.replace(".", "") + ".xml"  # FIX.4.4 -> FIX44.xml
    for root in (Path(sys.prefix) / "share" / "quickfix", Path(fix.__file__).parent):
        if (root / name).exists():
            return str(root / name)
    raise FileNotFoundError(f"QuickFIX data dictionary {name} not found")


_DICTIONARIES: dict[str, fix.DataDictionary] = {}


def _dictionary(begin_string: str) -> fix.DataDictionary | None:
    if begin_string not in _DICTIONARIES:
        try:
            _DICTIONARIES[begin_string] = fix.DataDictionary(data_dictionary_path(begin_string))
        except Exception:  # a missing or unreadable dictionary names no field
            return None
    return _DICTIONARIES[begin_string]


def data_dictionary(begin_string: str) -> fix.DataDictionary:
    """The standard data dictionary of this FIX version, read once per process (composing a
    message from its text needs it to place the repeating groups)."""
    dictionary = _dictionary(begin_string)
    if dictionary is None:
        raise FileNotFoundError(f"QuickFIX data dictionary for {begin_string} not readable")
    return dictionary


def _dictionary_lookup(tag: int, begin_string: str, look) -> str:
    """The first non-empty answer of `look(dictionary)` in the data dictionary of the
    session's version, else in a later one (a FIX 4.2 broker refusing 847 names a 4.4
    field); "" when none knows the tag."""
    for version in dict.fromkeys((begin_string, "FIX.4.4", "FIX.5.0SP2")):
        dictionary = _dictionary(version)
        if dictionary is None or not dictionary.isField(tag):
            continue
        found = look(dictionary)
        # The SWIG binding hands the output argument back as {0: name} (or the name).
        name = found.get(0, "") if isinstance(found, dict) else found
        if isinstance(name, str) and name:
            return name
    return ""


def field_name(tag: int, begin_string: str = "FIX.4.4") -> str:
    """The field's name in the QuickFIX data dictionary: "TargetStrategy"; "" when no
    dictionary knows the tag (a broker's own tag)."""
    return _dictionary_lookup(tag, begin_string, lambda d: d.getFieldName(tag, ""))


def value_name(tag: int, value: str, begin_string: str = "FIX.4.4") -> str:
    """What an enumerated value means in the data dictionary: 35=D is "ORDER_SINGLE", 54=1
    "BUY"; "" for a free value or one the dictionary does not list."""

    def look(dictionary) -> str:
        if not dictionary.hasFieldValue(tag) or not dictionary.isFieldValue(tag, value):
            return ""
        return dictionary.getValueName(tag, value, "")

    try:
        return _dictionary_lookup(tag, begin_string, look)
    except Exception:  # a binding without value names names none
        return ""


def tag_label(tag: int, begin_string: str = "FIX.4.4") -> str:
    """How a trader reads a tag: "847 (TargetStrategy)", or "6403" for a broker's own."""
    name = field_name(tag, begin_string)
    return f"{tag} ({name})" if name else str(tag)


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
