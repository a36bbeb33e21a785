"""Shared fixtures of the generator tests."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(request):
    """Run torch test modules on one thread (tiny models; two threads only add contention on
    a shared 2-core machine). Modules that do not import torch are left alone."""
    torch = getattr(request.module, "torch", None)
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
