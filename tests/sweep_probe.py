"""A sweep runner for tests: fails with the thread share its worker process was given (so the parent sees it)."""
import os


def report_threads(job) -> None:
    raise RuntimeError(f"threads={os.environ.get('RIFLE_PADDLE_CPU_THREADS')}")
