"""README's "Writing a provider plugin", followed literally: its three files become a
distribution of their own, pip installs it into a fresh virtualenv beside helpdesk, and
``helpdesk providers`` lists it, a send goes through it, and the demo says why it cannot
stand in for it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.sink import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

pytestmark = pytest.mark.slow


def guide_files() -> dict[str, str]:
    """The plugin guide's files, by the names its layout gives them."""
    guide = README.read_text().split("## Writing a provider plugin", 1)[1].split("\n## ", 1)[0]
    layout = re.search(r"```\n(helpdesk-pigeon/\n(?:    \S+\n)+)```", guide).group(1)
    names = [line.strip() for line in layout.splitlines()[1:]]
    files = {}
    for name in names:
        # Each file is the fenced block after the paragraph naming it: `name`:
        found = re.search(rf"`{re.escape(name)}`:\n\n```\w+\n(.*?)```", guide, re.S)
        assert found, f"README names {name} in the layout but gives no text for it"
        files[name] = found.group(1)
    return files


def test_the_guide_gives_every_file_of_its_layout():
    assert set(guide_files()) == {"pyproject.toml", "setup.cfg", "helpdesk_pigeon.py"}


@pytest.fixture(scope="module")
def pigeon_env(tmp_path_factory):
    """A fresh virtualenv with helpdesk and the README's pigeon installed by pip. The
    dependencies (Flask…) are lent by this environment, after the virtualenv's own packages."""
    work = tmp_path_factory.mktemp("guide")
    plugin = work / "helpdesk-pigeon"
    plugin.mkdir()
    for name, text in guide_files().items():
        (plugin / name).write_text(text)
    env = work / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    dists = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dists),
                    str(ROOT)], check=True)
    wheel = next(dists.glob("helpdesk-*.whl"))
    subprocess.run([str(env / "bin" / "pip"), "install", "--no-deps", "-q", str(wheel),
                    str(plugin)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    lent = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_lent_dependencies.pth").write_text("\n".join(lent) + "\n")
    variables = {"PATH": f"{env / 'bin'}:/usr/bin:/bin", "HOME": str(work),
                 "HELPDESK_DATABASE_URL": f"sqlite:///{work / 'guide.db'}",
                 "HELPDESK_QUEUE_URL": str(work / "queue.db"),
                 "HELPDESK_PIGEON_LOFT": "the roof"}
    return env, site, variables, work


def test_helpdesk_providers_lists_the_installed_pigeon(pigeon_env):
    env, _, variables, work = pigeon_env
    listed = subprocess.run([str(env / "bin" / "helpdesk"), "providers"], env=variables,
                            cwd=work, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split("\t", 1) for line in listed.stdout.splitlines())
    assert lines["pigeon"].startswith("helpdesk-pigeon 0.1\tno capabilities"), lines
    assert lines["smtp"].startswith("helpdesk ")


SEND = r"""
import sys
from flask_migrate import upgrade
from helpdesk import create_app, plugins
from helpdesk.credentials import create_credential
import helpdesk, helpdesk_pigeon
assert helpdesk.__file__.startswith(sys.argv[1]) and helpdesk_pigeon.__file__.startswith(sys.argv[1])
app = create_app({"PROVIDER": "pigeon", "QUEUE_URL": "immediate"})
with app.app_context():
    upgrade()
    credential = create_credential("By air", [{"name": "Ann", "email": "ann@valley.example"}],
                                   state="published")
    recipient = credential.recipients[0]
    sent = plugins.provider("pigeon").sent
    assert sent == [("ann@valley.example", recipient.latest_delivery.correlation_id)], sent
    print(recipient.status, recipient.latest_delivery.provider_message_id)
"""


def test_a_send_goes_through_the_installed_pigeon(pigeon_env):
    env, site, variables, work = pigeon_env
    sent = subprocess.run([str(env / "bin" / "python"), "-c", SEND, str(site)], env=variables,
                          cwd=work, capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr[-3000:]
    assert sent.stdout.split() == ["not_opened", "pigeon-1"]


def test_the_demo_honours_the_provider_or_says_why_not(pigeon_env):
    env, _, variables, work = pigeon_env

    def demo(provider: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(env / "bin" / "helpdesk"), "demo", "--port", str(free_port())],
                              env={**variables, "HELPDESK_PROVIDER": provider}, cwd=work,
                              capture_output=True, text=True, timeout=120)

    unknown = demo("owl")
    assert unknown.returncode != 0
    assert "no provider 'owl' is registered (there are " in unknown.stderr
    assert "pigeon" in unknown.stderr
    pigeon = demo("pigeon")
    assert pigeon.returncode != 0
    assert "the provider 'pigeon' is registered, but its plugin offers no stand-in" in \
        pigeon.stderr
    assert "HELPDESK_PROVIDER=pigeon" in pigeon.stderr
