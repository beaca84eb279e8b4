"""Scheduling on existing machinery, no daemon of our own: a crontab entry, a Kubernetes CronJob,
or a systemd service + timer, each running `autoquant schedule run FLEET --catalog DIR`.

The crontab line ends with a marker naming the fleet spec (`# autoquant-schedule:<path>`), so
installing again replaces that spec's line and `--remove` deletes only it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from autoquant.errors import UserError

MARKER = "# autoquant-schedule:"
DEFAULT_IMAGE = "autoquant:latest"


def run_command(fleet: str, catalog: str, address: str | None = None, python: str | None = None) -> list[str]:
    """The argv of the scheduled run: this interpreter, absolute paths (cron starts in $HOME)."""
    argv = [python or sys.executable, "-m", "autoquant", "schedule", "run", fleet, "--catalog", catalog, "--no-progress"]
    return argv + (["--address", address] if address else [])


def _check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 5 and not (len(fields) == 1 and fields[0].startswith("@")):
        raise UserError(f"invalid --cron {expr!r}: expected five fields (minute hour day month weekday), "
                        "e.g. \"0 3 * * 1\", or @daily / @weekly")
    return " ".join(fields)


def cron_line(expr: str, fleet: str, catalog: str, address: str | None = None) -> str:
    """One crontab line: environment the run needs, the command, its log, the marker."""
    env = []
    for var in ("AUTOQUANT_CACHE", "HF_HOME", "HF_HUB_OFFLINE"):
        if os.environ.get(var):
            env.append(f"{var}={shlex.quote(os.environ[var])}")
    log = str(Path(catalog) / "schedule.log")
    cmd = " ".join(env + [shlex.join(run_command(fleet, catalog, address))]) + f" >> {shlex.quote(log)} 2>&1"
    if "%" in cmd:  # cron turns % into a newline
        raise UserError(f"cannot put {cmd!r} in a crontab: cron reads % as a line break; rename the paths")
    return f"{_check_cron(expr)} {cmd} {MARKER}{fleet}"


def _crontab() -> str:
    exe = shutil.which("crontab")
    if exe is None:
        raise UserError("cron is not installed (no `crontab` command): install cron (apt-get install cron), "
                        "or use --print k8s / --print systemd")
    return exe


def read_crontab() -> list[str]:
    done = subprocess.run([_crontab(), "-l"], capture_output=True, text=True)
    if done.returncode != 0:  # "no crontab for <user>"
        return []
    return done.stdout.splitlines()


def _write_crontab(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n" if lines else ""
    done = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"crontab refused the entry: {done.stderr.strip().splitlines()[0] if done.stderr.strip() else done.returncode}")


def install_cron(expr: str, fleet: str, catalog: str, address: str | None = None) -> str:
    """Add (or replace) the spec's crontab line; returns it."""
    line = cron_line(expr, fleet, catalog, address)
    keep = [l for l in read_crontab() if not l.endswith(f"{MARKER}{fleet}")]
    _write_crontab(keep + [line])
    return line


def remove_cron(fleet: str) -> bool:
    """Delete the spec's crontab line; False when there was none."""
    lines = read_crontab()
    keep = [l for l in lines if not l.endswith(f"{MARKER}{fleet}")]
    if len(keep) == len(lines):
        return False
    _write_crontab(keep)
    return True


def _name(fleet: str) -> str:
    stem = "".join(c if c.isalnum() else "-" for c in Path(fleet).stem.lower()).strip("-")
    return f"autoquant-schedule-{stem or 'fleet'}"[:52]  # CronJob names: 52 characters at most


def k8s_cronjob(expr: str, fleet: str, catalog: str, address: str | None = None, image: str = DEFAULT_IMAGE) -> str:
    """A Kubernetes CronJob; the spec and the catalog live on a volume mounted at /data."""
    name = _name(fleet)
    argv = ["autoquant", "schedule", "run", f"/data/{Path(fleet).name}", "--catalog", "/data/catalog", "--no-progress"]
    argv += ["--address", address] if address else []
    args = "\n".join(f"                - {shlex.quote(a)}" for a in argv)
    return f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "{_check_cron(expr)}"
  concurrencyPolicy: Forbid        # a slow run is never overlapped by the next one
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: schedule
              image: {image}
              command:
{args}
              volumeMounts:
                - name: data          # holds {Path(fleet).name} and catalog/ (was {catalog})
                  mountPath: /data
          volumes:
            - name: data
              persistentVolumeClaim:
                claimName: {name}-data
"""


_SYSTEMD_CALENDAR = {"@hourly": "hourly", "@daily": "daily", "@weekly": "weekly", "@monthly": "monthly"}
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def on_calendar(expr: str) -> str:
    """A cron expression as systemd's OnCalendar= (plain numbers, lists and * only)."""
    expr = _check_cron(expr)
    if expr.startswith("@"):
        if expr not in _SYSTEMD_CALENDAR:
            raise UserError(f"--cron {expr} has no systemd equivalent; use one of {', '.join(_SYSTEMD_CALENDAR)}")
        return _SYSTEMD_CALENDAR[expr]
    minute, hour, day, month, weekday = expr.split()
    for f in (minute, hour, day, month, weekday):
        if not all(p == "*" or p.isdigit() for p in f.split(",")):
            raise UserError(f"--cron {expr!r}: --print systemd takes numbers, lists and * only (no ranges or steps)")
    days = "" if weekday == "*" else ",".join(_WEEKDAYS[int(d) % 8] for d in weekday.split(",")) + " "

    def pad(f: str) -> str:
        return ",".join(p if p == "*" else f"{int(p):02d}" for p in f.split(","))

    return f"{days}*-{pad(month)}-{pad(day)} {pad(hour)}:{pad(minute)}:00"


def systemd_units(expr: str, fleet: str, catalog: str, address: str | None = None) -> str:
    """A oneshot service and the timer that starts it: two files, separated by comment headers."""
    name = _name(fleet)
    env = "".join(f"Environment={var}={os.environ[var]}\n" for var in ("AUTOQUANT_CACHE",) if os.environ.get(var))
    return f"""# /etc/systemd/system/{name}.service
[Unit]
Description=autoquant scheduled searches for {fleet}

[Service]
Type=oneshot
{env}ExecStart={shlex.join(run_command(fleet, catalog, address))}

# /etc/systemd/system/{name}.timer  (then: systemctl enable --now {name}.timer)
[Unit]
Description=Run {name} on schedule ({expr})

[Timer]
OnCalendar={on_calendar(expr)}
Persistent=true

[Install]
WantedBy=timers.target
"""
