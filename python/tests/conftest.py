import pytest


@pytest.fixture
def tmp_store(tmp_path):
    return tmp_path / "array.zarr"
