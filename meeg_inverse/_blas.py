"""One BLAS thread for small dense linear algebra, and for all of it on a busy machine.

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


#: Set to "1" to run every load-aware computation with one BLAS thread, whatever
#: the load: results then do not depend on the machine's load in the last bits.
PIN_ENV = "MEEG_INVERSE_BLAS_THREADS"


def blas_threads_for_load(load=None, n_cpus=None):
    """BLAS threads for the large products (whitening, ``GᵀR``) on this machine now.

    All cores (None: BLAS's own default) while some are idle; one when the
    1-minute load average already fills every core. Threaded OpenBLAS waits
    for its slowest thread at every block: on the shared 2-core box at load
    8-10, preparing the 5 mm volume operator took 4.3 s (2.2-10.5 s) with two
    threads and 1.65 s (1.5-2.9 s) with one (A/B in one process, 5 runs each);
    at load 11, MNE's ``prepare_noise_cov`` of the sample covariance took 2.9 s
    with two threads and 0.10 s with one. (Its eigenvalues span 18 orders of
    magnitude: the whitener moves by ~1e-8, relative, between the two.)

    Parameters
    ----------
    load : float | None
        1-minute load average (None: ``os.getloadavg()``; unknown: threads kept).
    n_cpus : int | None
        Number of cores (None: ``os.cpu_count()``).

    Returns
    -------
    threads : int | None
        1, or None to leave BLAS alone. Always 1 when the environment variable
        ``MEEG_INVERSE_BLAS_THREADS`` is ``1`` (:data:`PIN_ENV`).
    """
    import os

    # Pinned (tests comparing two runs bit for bit; reproducible benchmarks).
    if os.environ.get(PIN_ENV) == "1":
        return 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not available on this platform
            return None
    n_cpus = n_cpus or os.cpu_count() or 1
    return 1 if n_cpus > 1 and load >= n_cpus else None


def load_aware(func):
    """Decorator: run ``func`` with :func:`blas_threads_for_load` BLAS threads."""
    from functools import wraps

    @wraps(func)
    def wrapper(*args, **kwargs):
        if blas_threads_for_load() == 1:
            with one_blas_thread():
                return func(*args, **kwargs)
        return func(*args, **kwargs)

    return wrapper
