"""Scheduled upkeep of a lake: named jobs (mirror, reproject, seal, verify, ...) on intervals or cron expressions.

- config: the TOML configuration file, the only source of jobs, and the triggers it makes;
- jobs: the job registry and one run of a job under its overlap lock, with its log line;
- state: the plain run state (next and last run per job) in a table of the lake's database, read as data;
- service: `serve` (APScheduler with an in-memory job store) and `run_once`.
"""

from eventlog.app.scheduler.config import (
    CRON_MISFIRE_GRACE,
    DEFAULT_TABLE,
    LEGACY_TABLE,
    JobSpec,
    SchedulerConfig,
    cron_trigger,
    job_trigger,
    load_config,
    parse_duration,
)
from eventlog.app.scheduler.jobs import (
    BUILTIN_JOBS,
    EXTRA_JOBS_ENV,
    RUN_DIR,
    JobFunc,
    JobRun,
    job_lock,
    job_registry,
    run_job,
    summarize,
)
from eventlog.app.scheduler.service import JOB_ID_PREFIX, run_once, serve, setup_lock
from eventlog.app.scheduler.state import JobState, RunStateTable, StoredState, open_engine

__all__ = [
    "BUILTIN_JOBS",
    "CRON_MISFIRE_GRACE",
    "DEFAULT_TABLE",
    "EXTRA_JOBS_ENV",
    "JOB_ID_PREFIX",
    "LEGACY_TABLE",
    "RUN_DIR",
    "JobFunc",
    "JobRun",
    "JobSpec",
    "JobState",
    "RunStateTable",
    "SchedulerConfig",
    "StoredState",
    "cron_trigger",
    "job_lock",
    "job_registry",
    "job_trigger",
    "load_config",
    "open_engine",
    "parse_duration",
    "run_job",
    "run_once",
    "serve",
    "setup_lock",
    "summarize",
]
