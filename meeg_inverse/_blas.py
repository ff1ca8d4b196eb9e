"""One BLAS thread for small dense linear algebra.

Threaded OpenBLAS calls on matrices of a few hundred rows are slower than one
thread, and much slower on a loaded machine (a 351 x 351 inverse: 0.24 s with
2 threads against 0.015 s with 1 on the shared 2-core box). The controller is
built once: ``threadpoolctl.threadpool_limits`` rescans the loaded libraries at
every call (~1 ms each).
"""

from functools import lru_cache


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """Context manager limiting BLAS to one thread."""
    return _controller().limit(limits=1, user_api="blas")
