import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny models run fastest single-threaded on the shared 2-core machines; restore afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
