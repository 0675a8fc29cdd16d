from tests.fix.conftest import broker, desk, gateway, gateway_env, sim, world  # noqa: F401
