def main(argv: list[str]) -> dict:
    from tests.foundation.benchfakes import report

    return report()
