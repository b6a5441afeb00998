"""Sign-in refusals, timed: can an attacker tell a deactivated or a missing account from a wrong
password by how long the answer takes?

Through the real app (Flask's test client, SQLite, the account limit counting in memory), the
same POST /login many times, interleaved so that the machine's load falls on every case alike:
a wrong password for an active account (the baseline), the right password for a deactivated
account, and any password for an address with no account. Each case's median over the
baseline's is printed; goal: every ratio within 0.9 and 1.1.

    python bench/login.py [--repeat 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, summary  # noqa: E402

LOW, HIGH = 0.9, 1.1
PASSWORD = "the right password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from helpdesk import create_app
    from helpdesk.auth import create_user
    from helpdesk.models import db

    folder = Path(tempfile.mkdtemp(prefix="helpdesk-bench-login-"))
    app = create_app({"INSTANCE_PATH": str(folder), "QUEUE_URL": "immediate",
                      "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                      # never blocked: every attempt is checked in full
                      "LOGIN_ACCOUNT_MAX_FAILURES": 10 ** 9})
    with app.app_context():
        db.create_all()
        create_user("active@issuer.example", PASSWORD)
        create_user("gone@issuer.example", PASSWORD).active = False
        db.session.commit()
        client = app.test_client()
        cases = {"wrong password (baseline)": ("active@issuer.example", "not it"),
                 "deactivated account": ("gone@issuer.example", PASSWORD),
                 "no such account": ("nobody@issuer.example", PASSWORD)}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.repeat + 5):
            for name, (email, password) in cases.items():
                start = time.perf_counter()
                status = client.post("/login", data={"email": email, "password": password})
                took = time.perf_counter() - start
                assert status.status_code == 401, (name, status.status_code)
                if round_ >= 5:  # the first rounds warm up
                    times[name].append(took)
    print(machine())
    baseline = statistics.median(times["wrong password (baseline)"])
    met = True
    for name, samples in times.items():
        ratio = statistics.median(samples) / baseline
        met &= LOW <= ratio <= HIGH
        print(f"{name:27}: {summary(samples)}; ratio {ratio:.3f}")
    print(f"goal: every ratio within {LOW} and {HIGH}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
