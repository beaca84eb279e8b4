"""Schedules on existing machinery: crontab lines, a Kubernetes CronJob, systemd units."""

from __future__ import annotations

import pytest
import yaml

from autoquant.errors import UserError
from autoquant.schedule.install import MARKER, cron_line, k8s_cronjob, on_calendar, systemd_units


def test_cron_line_runs_this_interpreter_on_absolute_paths() -> None:
    line = cron_line("0 3 * * 1", "/srv/fleet.yaml", "/srv/catalog")
    assert line.startswith("0 3 * * 1 ") and line.endswith(f"{MARKER}/srv/fleet.yaml")
    assert "-m autoquant schedule run /srv/fleet.yaml --catalog /srv/catalog --no-progress" in line
    assert ">> /srv/catalog/schedule.log 2>&1" in line
    with pytest.raises(UserError, match="five fields"):
        cron_line("every monday", "/srv/fleet.yaml", "/srv/catalog")


def test_k8s_cronjob_is_valid_yaml() -> None:
    doc = yaml.safe_load(k8s_cronjob("0 3 * * 1", "/srv/fleet.yaml", "/srv/catalog", "ray://head:10001"))
    assert doc["kind"] == "CronJob" and doc["spec"]["schedule"] == "0 3 * * 1"
    container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["autoquant", "schedule", "run", "/data/fleet.yaml"]
    assert container["command"][-2:] == ["--address", "ray://head:10001"]


def test_systemd_timer_translates_the_cron_fields() -> None:
    assert on_calendar("0 3 * * 1") == "Mon *-*-* 03:00:00"
    assert on_calendar("30 2 1 * *") == "*-*-01 02:30:00"
    assert on_calendar("@weekly") == "weekly"
    with pytest.raises(UserError, match="no ranges"):
        on_calendar("*/5 * * * *")
    units = systemd_units("0 3 * * 1", "/srv/fleet.yaml", "/srv/catalog")
    assert "Type=oneshot" in units and "OnCalendar=Mon *-*-* 03:00:00" in units and "WantedBy=timers.target" in units
