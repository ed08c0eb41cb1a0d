"""A sweep on a cluster: every run of the table one job of the lab's SLURM scheduler, submitted through submitit.

Why SLURM and submitit: SLURM is the scheduler of most university and lab GPU clusters, where sweeps of hundreds
of fine-tuning runs are run; submitit (Meta's, MIT licence, pure Python, two small dependencies) submits a Python
callable as a SLURM job (an array of them with one ``sbatch``), pickles its result or its traceback next to the
job's logs, requeues a job that reaches its time limit, and runs the same jobs as local processes
(``LocalExecutor``), which is how the tests run this path without a cluster. A Ray cluster would need a Ray
deployment that few of these labs run; ``--print`` still gives one ``train.py`` line per run for anything else.

Each job is one run (a table cell with one seed) on one GPU. It writes ``<output_dir>/<dataset>-<method>-s<seed>``
like the sweep on one machine, so ``report`` reads a cluster's results unchanged. When a job starts it looks at
its run directory again: a complete run is not trained again, a cut-short one continues from its newest checkpoint
(``train.resume=auto``). So submitting the same sweep again after some jobs were killed, preempted or timed out
resubmits exactly the runs that are not complete, and each continues where it stopped; a job that reaches its
time limit requeues itself (submitit's ``checkpoint``, up to 3 times) and continues the same way.

The optional extra: ``pip install "rifle-paddle[slurm]"`` (submitit); a plain install does not need it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import getpass
import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from .cards import CPU_THREADS_ENV, allotted_cores, loader_overrides

SCHEDULERS = ("slurm", "local")


class SchedulerError(RuntimeError):
    """The scheduler cannot be used or refused the jobs (one line, for the console)."""


def require_submitit():
    try:
        import submitit
    except ImportError:
        raise SchedulerError("--scheduler needs submitit, an optional extra: pip install \"rifle-paddle[slurm]\" "
                             "(or pip install submitit)") from None
    return submitit


@dataclass
class Resources:
    """What each job asks the scheduler for (one GPU always, on SLURM)."""

    partition: str | None = None
    account: str | None = None
    time_min: int = 24 * 60
    cpus: int = 8
    mem: str | None = None
    extra: dict = field(default_factory=dict)  # more sbatch options: {'qos': 'high', 'constraint': 'a100'}

    def flags(self) -> str:
        """The options a refusal is about, as the user typed them."""
        given = [f"--partition {self.partition}" if self.partition else "",
                 f"--account {self.account}" if self.account else "",
                 *(f"--slurm {k}={v}" for k, v in self.extra.items())]
        return ", ".join(g for g in given if g) or "the cluster's defaults"


def parse_slurm_options(pairs: list[str]) -> dict[str, str]:
    """``['qos=high', 'constraint=a100']`` -> sbatch options (``--qos=high --constraint=a100``)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SchedulerError(f"--slurm {pair!r}: expected an sbatch option as KEY=VALUE, e.g. qos=high")
        options[key.strip().lstrip("-").replace("-", "_")] = value
    return options


def make_executor(kind: str, folder: str, resources: Resources, job_name: str = "rifle-sweep"):
    """A submitit executor for ``kind`` ('slurm', or 'local': the same jobs as processes of this machine, all at
    once, on the CPU; for trying the path and for tests). Job logs and pickles go to ``folder``."""
    submitit = require_submitit()
    if kind == "local":
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(timeout_min=resources.time_min, gpus_per_node=0)
        return executor
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise SchedulerError(f"--scheduler slurm: {' and '.join(missing)} not found on this machine (PATH): run the "
                             f"sweep on a login node of the cluster, where SLURM's commands work")
    executor = submitit.SlurmExecutor(folder)
    parameters = dict(job_name=job_name, time=resources.time_min, nodes=1, ntasks_per_node=1,
                      gpus_per_node=1, cpus_per_task=resources.cpus, signal_delay_s=120)
    if resources.partition:
        parameters["partition"] = resources.partition
    if resources.account:
        parameters["account"] = resources.account
    if resources.mem:
        parameters["mem"] = resources.mem
    if resources.extra:
        parameters["additional_parameters"] = dict(resources.extra)
    executor.update_parameters(**parameters)
    return executor


class ClusterRun:
    """One run of the sweep as a scheduler job (picklable: submitit sends it to the node).

    The run's state is read again when the job starts, not when it was submitted: a job requeued after a timeout,
    or resubmitted after it was killed, continues from the newest checkpoint; a run completed meanwhile is left.
    """

    def __init__(self, job):
        self.job = job

    def __call__(self) -> str:
        from .sweep import DONE, _state, train_in_process
        state = _state(self.job.run_dir)
        if state == DONE:
            return f"{self.job.name}: already complete"
        share = allotted_cores()  # what the scheduler gave this job, not every core of the node
        os.environ.setdefault(CPU_THREADS_ENV, str(share))
        extra = loader_overrides((self.job.config or {}).get("data", {}).get("num_workers"), self.job.overrides,
                                 share)
        train_in_process(dataclasses.replace(self.job, state=state, overrides=[*self.job.overrides, *extra]))
        return self.job.run_dir

    def checkpoint(self, *args, **kwargs):
        """submitit calls this when the job reaches its time limit or is preempted: requeue the same run, which
        continues from its newest epoch checkpoint."""
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(ClusterRun(self.job))

    def __repr__(self) -> str:
        return f"ClusterRun({self.job.name})"


def submit(executor, jobs: list, resources: Resources | None = None) -> list:
    """Submit every job that is not done (one SLURM array); returns submitit's jobs, in the same order.

    A submission the scheduler refuses (a partition or account it does not know, a controller it cannot reach)
    raises ``SchedulerError`` with sbatch's own reason, and nothing is submitted."""
    pending = [job for job in jobs if job.state != "done"]
    if not pending:
        return []
    require_submitit()
    from submitit.core.utils import FailedJobError, FailedSubmissionError
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's refusal; it is in the error
            return executor.submit_array([ClusterRun(job) for job in pending])
    except (FailedJobError, FailedSubmissionError) as e:
        raise SchedulerError(f"the scheduler refused the jobs ({(resources or Resources()).flags()}): "
                             f"{sbatch_reason(str(e))}") from None


LEDGER = "submitted.json"


def record_submitted(folder: str, kind: str, jobs: list, submitted: list) -> None:
    """Note which job runs which run (``<jobs dir>/submitted.json``), for the next submission of the sweep."""
    ledger = _read_ledger(folder)
    pending = [job for job in jobs if job.state != "done"]
    ledger.update({run.name: {"scheduler": kind, "job_id": str(job.job_id)} for run, job in zip(pending, submitted)})
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, LEDGER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ledger, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(folder, LEDGER))


def _read_ledger(folder: str) -> dict:
    try:
        with open(os.path.join(folder, LEDGER), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def still_queued(folder: str) -> set[str]:
    """The runs whose job from an earlier submission is still queued or running: submitting them again would put
    two jobs on one run directory. SLURM: the job ids ``squeue`` lists for you; local: a live job process."""
    ledger = _read_ledger(folder)
    slurm_ids = {entry["job_id"] for entry in ledger.values() if entry["scheduler"] == "slurm"}
    queued = set()
    if slurm_ids:
        try:
            listed = subprocess.run(["squeue", "--noheader", "--array", f"--user={getpass.getuser()}", "--format=%i"],
                                    capture_output=True, text=True, timeout=60, check=True).stdout.split()
        except (OSError, subprocess.SubprocessError) as e:
            raise SchedulerError(f"cannot ask SLURM which jobs of the last submission are still queued (squeue: "
                                 f"{sbatch_reason(getattr(e, 'stderr', None) or str(e))})") from None
        queued |= set(listed) & slurm_ids
    for entry in ledger.values():
        if entry["scheduler"] == "local" and _process_alive(int(entry["job_id"])):
            queued.add(entry["job_id"])
    return {name for name, entry in ledger.items() if entry["job_id"] in queued}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sbatch_reason(stderr: str) -> str:
    """sbatch's own reason out of its output: its last ``error:`` line, e.g. ``Batch job submission failed:
    Invalid partition name specified``; else the last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return errors[-1] if errors else (lines[-1] if lines else "no reason given")


def wait(submitted: list, jobs: list) -> list[tuple[object, str]]:
    """Wait for every submitted job; ``(sweep job, error)`` for each that failed."""
    pending = [job for job in jobs if job.state != "done"]
    failures = []
    for run, job in zip(pending, submitted):
        error = job.exception()
        if error is not None:
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            failures.append((run, lines[-1] if lines else type(error).__name__))
    return failures
