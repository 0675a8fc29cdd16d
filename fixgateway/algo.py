"""Which tags carry an algo instruction to a broker: by its FIX version and its tag map.

TargetStrategy (847) and StrategyParameters (848, as "name=value;...") exist from FIX 4.4 on;
a FIX 4.2 dictionary has neither, and a strict engine rejects the whole order for them
(35=3, 371=847). A broker that takes algos over 4.2 (or in tags of its own) says where in
`Broker.extra_config`:

    {
        "strategy_tag": 6000,                  # the strategy's code (default 847 on 4.4+)
        "strategy_tags": {"participation": 6403, "start_time": 6001, "end_time": 6002},
        "strategy_params_tag": 848,            # the parameters the map leaves out (4.4+)
        "strategy_codes": {"TWAP": "T"},       # its codes for our strategies
        "strategies": ["VWAP", "TWAP"],        # the only ones it takes (default: all)
    }

`algo_fields` turns a strategy and its parameters into (tag, value) pairs, or refuses with a
DomainError before anything is written or sent. No QuickFIX here: routing calls it inside its
transaction, and the outbound builder sends what it returned.
"""

from __future__ import annotations

from typing import Any

from oms.errors import DomainError

# TargetStrategy (847): 1 VWAP and 2 Participate are standard; TWAP is in the user range.
DEFAULT_STRATEGY_CODES = {"VWAP": "1", "POV": "2", "TWAP": "1001"}
TARGET_STRATEGY = 847
STRATEGY_PARAMETERS = 848
# The FIX versions whose dictionary has 847 and 848.
NATIVE_ALGO_VERSIONS = frozenset({"FIX.4.4"})
# Tags the order builder sets itself: a tag map may not name one (it would overwrite it).
ORDER_TAGS = frozenset({1, 11, 15, 21, 37, 38, 40, 41, 44, 54, 55, 59, 60, 99, 432})


class AlgoNotSupported(DomainError):
    code = "strategy_not_supported"


def _tag(value: Any, *, broker_code: str, name: str) -> int:
    try:
        tag = int(value)
    except (TypeError, ValueError):
        tag = 0
    if tag <= 0 or tag in ORDER_TAGS:
        raise AlgoNotSupported(
            f"Broker {broker_code}'s tag map gives {name} the tag {value!r}: not a tag it may "
            "use. Fix extra_config in the admin.",
            code="strategy_tag_map_invalid",
            details={"broker": broker_code, "name": name, "tag": value},
        )
    return tag


ALGO_STRATEGIES = ("VWAP", "TWAP", "POV")


def broker_strategies(*, fix_version: str, extra_config: dict[str, Any] | None) -> list[str]:
    """The strategies algo_fields would accept for this broker: DMA always, then its tag map's
    `strategies` (or every algo) when its version or tag map has somewhere to put them."""
    config = extra_config or {}
    if (
        config.get("strategy_tag", TARGET_STRATEGY if fix_version in NATIVE_ALGO_VERSIONS else None)
        is None
    ):
        return ["DMA"]
    allowed = config.get("strategies")
    if allowed is None:
        return ["DMA", *ALGO_STRATEGIES]
    return ["DMA", *[str(s).upper() for s in allowed if str(s).upper() != "DMA"]]


def algo_fields(
    *,
    broker_code: str,
    fix_version: str,
    extra_config: dict[str, Any] | None,
    strategy: str,
    params: dict[str, Any] | None,
) -> list[tuple[int, str]]:
    """The (tag, value) pairs that carry `strategy` and `params` to this broker; [] for DMA.
    Raises AlgoNotSupported (400) when the broker's version and tag map cannot carry them."""
    strategy = (strategy or "").upper()
    if not strategy or strategy == "DMA":
        return []
    config = extra_config or {}
    native = fix_version in NATIVE_ALGO_VERSIONS
    allowed = config.get("strategies")
    if allowed is not None and strategy not in {str(s).upper() for s in allowed}:
        raise AlgoNotSupported(
            f"Broker {broker_code} does not take {strategy} (it takes "
            f"{', '.join(allowed) or 'no algos'}).",
            details={"broker": broker_code, "strategy": strategy},
        )
    strategy_tag = config.get("strategy_tag", TARGET_STRATEGY if native else None)
    if strategy_tag is None:
        raise AlgoNotSupported(
            f"Broker {broker_code} speaks {fix_version}, which has no TargetStrategy (847) or "
            f"StrategyParameters (848): {strategy} cannot be sent to it. Route it DMA, or give "
            "the broker its algo tag map (extra_config: strategy_tag, strategy_tags).",
            details={"broker": broker_code, "fix_version": fix_version, "strategy": strategy},
        )
    codes = {**DEFAULT_STRATEGY_CODES, **(config.get("strategy_codes") or {})}
    fields = [
        (
            _tag(strategy_tag, broker_code=broker_code, name="strategy"),
            str(codes.get(strategy, strategy)),
        )
    ]
    mapped = config.get("strategy_tags") or {}
    params_tag = config.get("strategy_params_tag", STRATEGY_PARAMETERS if native else None)
    plain: list[str] = []
    unmapped: list[str] = []
    for name, value in sorted((params or {}).items()):
        if value in (None, ""):
            continue
        if name in mapped:
            fields.append((_tag(mapped[name], broker_code=broker_code, name=name), str(value)))
        else:
            plain.append(f"{name}={value}")
            unmapped.append(name)
    if plain:
        if params_tag is None:
            raise AlgoNotSupported(
                f"Broker {broker_code} ({fix_version}) has no tag for {', '.join(unmapped)}: "
                "add it to its strategy_tags, or route without it.",
                code="strategy_params_not_supported",
                details={"broker": broker_code, "params": unmapped},
            )
        fields.append(
            (_tag(params_tag, broker_code=broker_code, name="parameters"), ";".join(plain))
        )
    tags = [tag for tag, _ in fields]
    if len(set(tags)) != len(tags):
        raise AlgoNotSupported(
            f"Broker {broker_code}'s tag map gives two instructions the same tag.",
            code="strategy_tag_map_invalid",
            details={"broker": broker_code, "tags": tags},
        )
    return fields
