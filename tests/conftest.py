"""Shared pytest setup: server fixtures live in tests/fixtures/ and are registered here."""
pytest_plugins = [
    "tests.fixtures.triton",
    "tests.fixtures.influx",
    "tests.fixtures.influx2",
]
