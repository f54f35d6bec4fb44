import pytest

# The checks records.py shares report the values they compared, as the tests' own asserts do.
pytest.register_assert_rewrite("tests.infra.records")
