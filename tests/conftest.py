"""Fixtures shared by several test files."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Train on one torch thread: on a shared 2-core box, two intra-op threads competing with other
    jobs ran 16-20x slower than one. Only speed depends on it, never a result."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
