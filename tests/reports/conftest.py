from tests.marketdata.conftest import D, T0, scenario  # noqa: F401
