"""One build at a time per output location: a lease file ``OUT/.fmstf-build.lock``.

A build writes the lease (who holds it: host, process, a random token; until when) before it touches anything under
``OUT``, renews it every :data:`RENEW_SECONDS` while it runs and removes it at the end. A second build finds a live
lease and stops with exit code 2, naming the holder. A lease is stale, and is taken over, when it has expired
(:data:`LEASE_SECONDS` after its last renewal) or when its holder ran on this host and that process is gone (a
killed build is rerun at once, without waiting for the lease to expire).

Works on local disks and object stores alike (the lease is an ordinary file written atomically): after writing, the
build reads the lease back after :data:`SETTLE_SECONDS` and gives up if another build's token is there, so two
builds starting together do not both proceed. This is a lease, not a distributed lock service: on an object store
two builds starting within the same fraction of a second could in principle both read back their own token.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from fmstf_data.errors import FmstfError
from fmstf_data.store.storage import Storage

logger = logging.getLogger(__name__)

LOCK_NAME = ".fmstf-build.lock"
#: a lease not renewed for this long is stale (a build that died on another host)
LEASE_SECONDS = 600.0
#: how often a running build renews its lease
RENEW_SECONDS = 60.0
#: pause between writing the lease and reading it back
SETTLE_SECONDS = 0.3


class BuildLockedError(FmstfError):
    """Another build holds the output location."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class BuildLock:
    """The lease on one output location; use as a context manager around a build."""

    def __init__(self, storage: Storage, *, lease_seconds: float = LEASE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS) -> None:
        self.storage = storage
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = time.time()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _lease(self) -> dict[str, Any]:
        return {"token": self.token, "host": self.host, "pid": self.pid, "started": _iso(self.started),
                "expires_unix": time.time() + self.lease_seconds}

    def _read(self) -> dict[str, Any] | None:
        if not self.storage.exists(LOCK_NAME):
            return None
        try:
            lease = json.loads(self.storage.read_bytes(LOCK_NAME))
        except (FmstfError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # vanished or unreadable: treated as no lease
        return lease if isinstance(lease, dict) else None

    def stale_reason(self, lease: dict[str, Any]) -> str | None:
        """Why ``lease`` no longer holds (expired, or its process on this host is gone), or None when it holds."""
        if float(lease.get("expires_unix", 0)) < time.time():
            return f"expired at {_iso(float(lease.get('expires_unix', 0)))}"
        if lease.get("host") == self.host and isinstance(lease.get("pid"), int) and not _alive(lease["pid"]):
            return f"its process {lease['pid']} on this host is gone"
        return None

    def _refuse(self, lease: dict[str, Any]) -> BuildLockedError:
        return BuildLockedError(
            f"{self.storage.display()} is being built by process {lease.get('pid')} on host {lease.get('host')} "
            f"(since {lease.get('started')}; its lease runs until {_iso(float(lease.get('expires_unix', 0)))}). "
            f"Wait for that build, stop it, or build into another --out; a lease left by a build killed on another "
            f"host expires {self.lease_seconds / 60:.0f} minutes after its last renewal")

    def acquire(self) -> None:
        """Take the lease, or raise :class:`BuildLockedError` naming the build that holds it."""
        existing = self._read()
        if existing is not None and existing.get("token") != self.token:
            reason = self.stale_reason(existing)
            if reason is None:
                raise self._refuse(existing)
            logger.warning("taking over the build lease of process %s on %s: %s", existing.get("pid"),
                           existing.get("host"), reason)
        self.storage.write_bytes_atomic(LOCK_NAME, json.dumps(self._lease()).encode())
        time.sleep(SETTLE_SECONDS)
        now = self._read()
        if now is None or now.get("token") != self.token:
            raise self._refuse(now or {})
        self._renewer = threading.Thread(target=self._renew, name="build-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            try:
                current = self._read()
                if current is not None and current.get("token") != self.token:
                    logger.error("the build lease on %s was taken by process %s on %s", self.storage.display(),
                                 current.get("pid"), current.get("host"))
                    return
                self.storage.write_bytes_atomic(LOCK_NAME, json.dumps(self._lease()).encode())
            except OSError as error:
                logger.warning("could not renew the build lease: %s", error)

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            current = self._read()
            if current is not None and current.get("token") == self.token:
                self.storage.delete(LOCK_NAME)
        except OSError as error:  # never hide the build's own outcome behind a failed clean-up
            logger.warning("could not remove the build lease %s: %s", self.storage.display(LOCK_NAME), error)

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
