"""The BLAS a benchmark runs on: named in its output, and never chosen by OPENBLAS_CORETYPE.

Every benchmark calls ``unset_coretype()`` before it imports NumPy and prints
``describe()`` above its table. OpenBLAS picks its kernel for the CPU at load time;
OPENBLAS_CORETYPE, when set on a machine, forces another one. A benchmark runs
itself again without that variable (for its own command only: the shell, the tests
and CI keep it) and says so, so that its figures are those of the kernel the CPU gets.
"""

import os
import sys

NOTE = "_MINITS_BENCH_CORETYPE"  # the value the re-run process was started without


def unset_coretype():
    """Re-run this script without OPENBLAS_CORETYPE when it is set (before numpy loads)."""
    value = os.environ.get("OPENBLAS_CORETYPE")
    if value is None:
        return
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env[NOTE] = value
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def describe():
    """One line: the BLAS library, its version, the kernel it runs (threadpoolctl's
    architecture) and whether OPENBLAS_CORETYPE was unset for this command."""
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    parts = [f"{i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}"
             for i in blas] or ["no BLAS found by threadpoolctl"]
    line = "BLAS: " + "; ".join(parts)
    if os.environ.get(NOTE):
        line += (f" (OPENBLAS_CORETYPE={os.environ[NOTE]} was set: unset for this command "
                 "only, so the kernel is the one OpenBLAS picks for this CPU)")
    return line
