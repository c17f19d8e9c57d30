"""Accounts reload in the receiver: on SIGHUP, ACCOUNTS_FILE again, used only if it is valid.

    kill -HUP <receiver pid>

As the workers' routing reload (workers/deliver/reload.py): the file is checked exactly as at start
(contract/accounts.py); a bad one keeps the accounts in use and logs `accounts.reload_refused` with the file's
own one-line error; a good one replaces the gate's accounts at once, so the next webhook with a new account's
token is taken and a removed account's token is refused (404). Under uvicorn with several workers the
supervisor restarts its worker processes on SIGHUP instead, and each reads the file as it starts: the same
outcome, except that a bad file then stops them (a reload is the safer way: one process a pod).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from contract import accounts, logs
from contract.settings import Settings
from service.auth import Gate

log = logs.get("service.reload")


def reload(gate: Gate, settings: Settings) -> bool:
    """Reads the accounts again; True once they are in use, False (the old ones kept) when the file is bad."""
    try:
        fresh = accounts.from_settings(settings)
    except accounts.AccountsError as e:
        log.error("accounts.reload_refused", reason=str(e), kept=",".join(gate.accounts.names))
        return False
    gate.accounts = fresh
    log.warning("accounts.reloaded", accounts=",".join(fresh.names))
    return True


def on_sighup(gate: Gate, settings: Settings) -> Callable[[], None]:
    """Reloads on every SIGHUP; returns the function that stops listening (a no-op where signals are not ours)."""
    if not settings.accounts_file:
        return lambda: None
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, reload, gate, settings)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        return lambda: None

    def off() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return off
