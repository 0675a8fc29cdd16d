from tests.marketdata.conftest import T0, D, scenario  # noqa: F401
