"""A plain wheel (not only an editable install) gives a working app: templates, static files,
help articles, migrations and the built-in plugins ship inside it."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(out), str(ROOT)], check=True)
    return next(out.glob("helpdesk-*.whl"))


def _tracked_files(folder: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return listed or [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts]


def test_the_wheel_carries_everything_the_app_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {"templates": "helpdesk/templates", "helpdesk": "helpdesk",
               "plugins/helpdesk_smtp": "helpdesk_smtp",
               "plugins/helpdesk_sendgrid": "helpdesk_sendgrid",
               "plugins/helpdesk_mailgun": "helpdesk_mailgun",
               "plugins/helpdesk_postmark": "helpdesk_postmark",
               "plugins/helpdesk_ses": "helpdesk_ses"}
    missing = [f"{inside}{path[len(folder):]}" for folder, inside in shipped.items()
               for path in _tracked_files(folder)
               if f"{inside}{path[len(folder):]}" not in names]
    assert not missing, f"files the wheel leaves out: {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for line in ("smtp = helpdesk_smtp", "sendgrid = helpdesk_sendgrid",
                 "mailgun = helpdesk_mailgun", "postmark = helpdesk_postmark",
                 "ses = helpdesk_ses", "helpdesk = helpdesk.cli:main"):
        assert line in text


SMOKE = r"""
import sys, helpdesk
from helpdesk import create_app, plugins
for name, module in list(sys.modules.items()):
    if name.split(".")[0] in ("helpdesk", "helpdesk_smtp", "helpdesk_sendgrid",
                              "helpdesk_mailgun", "helpdesk_postmark", "helpdesk_ses") \
            and getattr(module, "__file__", None):
        assert module.__file__.startswith(sys.argv[1]), module.__file__
from flask_migrate import upgrade
app = create_app({"INSTANCE_PATH": sys.argv[2], "QUEUE_URL": "immediate"})
with app.app_context():
    upgrade()
    assert set(plugins.providers()) == {"smtp", "sendgrid", "mailgun", "postmark", "ses"}
client = app.test_client()
assert b"Email is bounced" in client.get("/help").data
assert client.get("/help/statuses").status_code == 200
assert client.get("/static/style.css").status_code == 200
assert b"Sign in" in client.get("/login").data
print("ok")
"""


def test_the_installed_wheel_serves_pages_and_builds_its_schema(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    # -S: no site hooks, so the checkout's editable install cannot lend the wheel a module it
    # lacks; the dependencies come from this environment's site-packages, after the wheel.
    site_packages = [p for p in sys.path if p.endswith("site-packages")]
    result = subprocess.run([sys.executable, "-S", "-c", SMOKE, str(target),
                             str(tmp_path / "inst")],
                            env={"PYTHONPATH": os.pathsep.join([str(target), *site_packages]),
                                 "PATH": "/usr/bin:/bin"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def _imported_top_level_modules() -> set[str]:
    found = set()
    for path in [*ROOT.joinpath("helpdesk").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_code_imports_is_a_declared_requirement():
    requirements = {_canonical(re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0])
                    for r in metadata.requires("helpdesk") if "extra ==" not in r}
    ours = {"helpdesk", "helpdesk_smtp", "helpdesk_sendgrid", "helpdesk_mailgun"}
    distributions = metadata.packages_distributions()
    undeclared = {}
    for module in _imported_top_level_modules() - ours - set(sys.stdlib_module_names):
        names = {_canonical(d) for d in distributions.get(module, [module])}
        if not names & requirements:
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not in install_requires: {undeclared}"
