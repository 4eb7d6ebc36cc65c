"""The one way these tests wait for a condition that no line or message signals: call a
check until it holds, bounded in time. (A process's readiness is signalled by a line on
its stdout: `conftest.Proc.wait_for` waits on that instead.)

Standard library only: `dashboard_browser.py` also runs as a script."""

import time

#: Seconds between two checks.
POLL_SECONDS = 0.05


class NotYet(Exception):
    """Raised by a check whose condition does not hold yet; the message says what is
    missing (it ends up in the failure at the deadline)."""


def wait_until(check, what, timeout, retry_on=(), interval=POLL_SECONDS):
    """Call `check()` until it returns (rather than raise `NotYet` or one of the exception
    classes `retry_on`) and return what it returned. At the deadline: `AssertionError`
    naming `what` and the last reason it was not done."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (NotYet, *retry_on) as e:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout} s: {e}") from e
        time.sleep(interval)
