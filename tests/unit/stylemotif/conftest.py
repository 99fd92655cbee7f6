import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_torch_thread):
    """The tiny StyleMotif models train many small steps."""
    yield
