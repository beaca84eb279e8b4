"""Scheduled searches for a fleet: re-search what changed, keep a catalog of recommended plans.

Follow one `autoquant schedule run fleet.yaml` through the package:

    fleet.py     FleetSpec: models x hardware x workloads x budgets, validated (one-line errors)
    targets.py   one Target per combination; the fingerprint of its inputs, component by component
    status.py    current / stale / new, and why (which component changed)
    runner.py    Ray tasks: one profile per model, one search per stale target; records each result
    (autoquant/catalog.py: catalog.json, versioned, the schema shared with the app)
    changes.py   the section each run appends to CHANGES.md
    install.py   crontab entry, Kubernetes CronJob, systemd service + timer
"""

from autoquant.catalog import (CATALOG_VERSION, DEFAULT_CATALOG_DIR, Catalog, CatalogEntry, Latency,
                                        Quality, read_catalog, write_catalog)
from autoquant.schedule.fleet import BudgetSpec, FleetSpec, Workload, load_fleet, parse_fleet
from autoquant.catalog import SearchOutcome
from autoquant.schedule.runner import ScheduleReport, run_schedule
from autoquant.schedule.status import TargetStatus, target_status
from autoquant.schedule.targets import ResolvedTarget, Target, expand, resolve_all

__all__ = [
    "BudgetSpec", "CATALOG_VERSION", "Catalog", "CatalogEntry", "DEFAULT_CATALOG_DIR", "FleetSpec", "Latency",
    "Quality", "ResolvedTarget", "ScheduleReport", "SearchOutcome", "Target", "TargetStatus", "Workload",
    "expand", "load_fleet", "parse_fleet", "read_catalog", "resolve_all", "run_schedule", "target_status",
    "write_catalog",
]
