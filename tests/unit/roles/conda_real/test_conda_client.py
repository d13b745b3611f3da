# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real conda reads what conda_mirror, failover's writer and the watcher write.

conda 26.7.1 (classic solver, set through CONDA_SOLVER in the environment, never in the file under
test) against two mirrors of a tiny channel on 127.0.0.2 and 127.0.0.3, each with its own access
log: the requests prove which mirror conda used.

Where conda looks: the role's default path is ``/opt/conda/.condarc``, i.e. ``$CONDA_ROOT/.condarc``
of a default install (conda sets CONDA_ROOT to its ``sys.prefix`` when it is unset). Each test sets
CONDA_ROOT to its own ``<tmp>/opt/conda``, the role writes ``<tmp>/opt/conda/.condarc`` there, and
CONDARC is unset, so conda finds the file through its own search path, as on an installed host.
``/etc/conda/.condarc`` (first in that search path) is not written here: it is the test machine's
real system file, shared with every other process on it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url
from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_condarc
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
BUILD_ZIPAPP = os.path.join(ROOT, "roles", "mirror_watch", "files", "build_zipapp.py")
REPODATA = "/anaconda/pkgs/main/noarch/repodata.json"
USERS = "# the user's own file\nchannels:\n  - conda-forge\n  - defaults\nauto_update_conda: false\n" \
        "custom_channels:\n  mylab: http://lab.invalid/conda\n"


# ------------------------------------------------------------------------------------------------ helpers

def conda(client, root, *args, timeout=120):
    """Run the real conda with ``root`` as its install root (``$CONDA_ROOT``); ``(rc, output)``."""
    home = os.path.join(str(root), "..", "..", "home")
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "CONDA_ROOT": str(root),
           "CONDA_SOLVER": "classic", "CONDA_PKGS_DIRS": os.path.join(home, "pkgs"),
           "CONDA_ENVS_DIRS": os.path.join(home, "envs"),
           # a dead mirror fails in seconds, not minutes (defaults: 60 s read timeout, 3 retries)
           "CONDA_REMOTE_READ_TIMEOUT_SECS": "3", "CONDA_REMOTE_CONNECT_TIMEOUT_SECS": "3",
           "CONDA_REMOTE_MAX_RETRIES": "1", "CONDA_REMOTE_BACKOFF_FACTOR": "0",
           "CONDA_AUTO_UPDATE_CONDA": "false", "CONDA_NOTIFY_OUTDATED_CONDA": "false", "CONDA_REPORT_ERRORS": "false"}
    done = subprocess.run([os.path.join(client, "bin", "conda")] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout


def sources(client, root):
    rc, out = conda(client, root, "config", "--show-sources")
    assert rc == 0, out
    return re.findall(r"^==> (.*) <==$", out, re.M)


def shown(client, root):
    rc, out = conda(client, root, "config", "--json", "--show", "channels", "channel_alias", "default_channels",
                    "custom_channels")
    assert rc == 0, out
    data = json.loads(out)
    # --json gives channel_alias and default_channels as parsed channels ({scheme, location, name}): back to URLs
    data["default_channels"] = [_url(c) for c in data["default_channels"]]
    data["channel_alias"] = _url(data["channel_alias"])
    data["custom_channels"] = {name: _url(c) for name, c in data["custom_channels"].items()}  # the channel's URL
    return data


def _url(channel):
    if isinstance(channel, str):
        return channel
    return "%s://%s" % (channel["scheme"], "/".join(p for p in (channel["location"], channel["name"]) if p))


def dry_run(client, root, prefix):
    """``conda create --dry-run`` of tinypkg; asserts it solved and returns the output."""
    rc, out = conda(client, root, "create", "--dry-run", "--json", "-p", str(prefix), "tinypkg")
    assert rc == 0, out
    actions = json.loads(out)["actions"]["LINK"]
    assert sorted(a["name"] for a in actions) == ["tinydep", "tinypkg"], out
    return actions


def entry(name, url):
    return {"name": name, "url": url, "url_masked": mask_url(url), "insecure": True, "status": "ok", "latency_ms": 1}


def selected(chosen, *others, status="ok"):
    sel = dict(chosen, status=status)
    return dict(sel, ranked=[chosen] + list(others), rejected=[], message="")


def ansible_env(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(PATH="%s:%s" % (BIN, env.get("PATH", "")), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"),
               ANSIBLE_HOME=str(tmp_path / ".ansible-home"))
    return env


def playbook(tmp_path, plays, hostvars):
    """``ansible-playbook`` of ``plays`` on local-connection hosts; ``(output, {host: changed})``."""
    (tmp_path / "play.yml").write_text(json.dumps(plays))
    hosts = {name: dict(values, ansible_connection="local", ansible_python_interpreter=sys.executable)
             for name, values in hostvars.items()}
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], cwd=str(tmp_path), env=ansible_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:]
    changed = {host: int(count) for host, count in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", done.stdout, re.M)}
    return done.stdout, changed


def write_as_the_role(path, selection, current=None):
    """conda_mirror's write (mirror_config: render_condarc + client_files), for tests about what follows."""
    options = {"path": str(path), "service": "conda", "custom_channels": ["conda-forge", "pytorch", "nvidia"],
               "default_channels": ["main", "r"], "show_channel_urls": True}
    clients = [{"client": "condarc", "path": str(path), "options": options, "backup": True, "backup_keep": 5}]
    path.parent.mkdir(parents=True, exist_ok=True)  # conda installed there
    if current is not None:
        path.write_text(current)
    done = client_files.apply_plans(client_files.plan_files(clients, selection, []))
    assert done["errors"] == [], done
    return done


# ------------------------------------------------------------------------------------------------ the renderer

def test_channels_defaults_is_added_only_when_the_file_names_no_channels():
    sel = selected(entry("a", "http://127.0.0.2:1/anaconda"))
    for current in (None, "", "auto_update_conda: false\n", "channels:\n"):
        data = yaml.safe_load(render_condarc(current, sel)["content"])
        assert data["channels"] == ["defaults"], current
    # a user's list is never overridden nor reordered, even one without defaults, even an empty one
    for channels in (["conda-forge", "defaults"], ["conda-forge"], ["defaults", "mylab"], []):
        data = yaml.safe_load(render_condarc(yaml.safe_dump({"channels": channels}), sel)["content"])
        assert data["channels"] == channels
    # a second run (the file as written) changes nothing, byte for byte
    first = render_condarc(None, sel)["content"]
    assert render_condarc(first, sel)["changed"] is False
    # kept / none: untouched, a missing file stays missing
    for status in ("kept", "none"):
        assert render_condarc(None, dict(sel, status=status))["content"] == ""
        assert render_condarc("x: 1\n", dict(sel, status=status))["content"] == "x: 1\n"


# ------------------------------------------------------------------------------------------------ the role

def test_conda_mirror_role_bare_install_and_users_channels(conda_client, mirrors, tmp_path):
    """conda_mirror through ansible-playbook on two hosts: a bare install (no .condarc, no channels:
    conda >= 25.9 no longer implies defaults, it failed with NoChannelsConfiguredError) and one whose
    .condarc lists its own channels (kept as they are, in their order). A real install through a."""
    a, b = mirrors["a"], mirrors["b"]
    sel = selected(entry("a", a.url), entry("b", b.url))
    catalog = [{"name": "a", "url": a.url, "insecure": True}, {"name": "b", "url": b.url, "insecure": True}]
    roots = {host: tmp_path / host / "opt" / "conda" for host in ("bare", "users")}
    roots["users"].mkdir(parents=True)
    (roots["users"] / ".condarc").write_text(USERS)
    plays = [{"hosts": "all", "gather_facts": False,
              "vars": {"gpulab_mirrors": {"conda": catalog}, "gpulab_mirrors_selected": {"conda": sel},
                       "conda_mirror_pyyaml_package": ""},
              "roles": [{"role": "gpulab.provision.conda_mirror"}]}]
    hostvars = {host: {"conda_mirror_condarc_path": str(root / ".condarc"), "conda_mirror_create_parent": True}
                for host, root in roots.items()}
    _out, changed = playbook(tmp_path, plays, hostvars)
    assert changed == {"bare": 1, "users": 1}

    # conda reads the file the role wrote, where a system install looks for it
    for host, root in roots.items():
        assert str(root / ".condarc") in sources(conda_client, root), host
    bare, users = shown(conda_client, roots["bare"]), shown(conda_client, roots["users"])
    assert bare["channels"] == ["defaults"]
    assert bare["default_channels"] == [a.url + "/pkgs/main", a.url + "/pkgs/r"]
    assert bare["channel_alias"] == a.url + "/cloud"
    assert users["channels"] == ["conda-forge", "defaults"]  # the user's, in their order
    assert users["custom_channels"]["mylab"] == "http://lab.invalid/conda/mylab"  # the user's, kept
    assert users["custom_channels"]["conda-forge"] == a.url + "/cloud/conda-forge"

    # bare install: a real create of tinypkg, repodata and both packages through a, nothing from b
    rc, out = conda(conda_client, roots["bare"], "create", "-y", "-p", str(tmp_path / "env"), "tinypkg")
    assert rc == 0, out
    assert (tmp_path / "env" / "share" / "tinypkg" / "hello.txt").is_file()
    assert (tmp_path / "env" / "share" / "tinydep" / "README.txt").is_file()
    assert {REPODATA, "/anaconda/pkgs/r/noarch/repodata.json", "/anaconda/pkgs/main/noarch/tinypkg-1.0.0-0.conda",
            "/anaconda/pkgs/main/noarch/tinydep-1.0.0-0.tar.bz2"} <= set(a.gets(200)), a.log
    assert b.log == []

    # the user's channels: conda-forge (routed to a's /cloud by custom_channels) first, then defaults
    a.log.clear()
    actions = dry_run(conda_client, roots["users"], tmp_path / "env2")
    assert {x["channel"] for x in actions} == {"conda-forge"}, actions
    assert {"/anaconda/cloud/conda-forge/noarch/repodata.json", REPODATA} <= set(a.gets(200)), a.log
    assert b.log == []

    # a second run changes nothing
    _out, changed = playbook(tmp_path, plays, hostvars)
    assert changed == {"bare": 0, "users": 0}


# ------------------------------------------------------------------------------------------------ failover

def _probe_all_play(tmp_path, catalog, condarc):
    return [{"hosts": "all", "gather_facts": False, "tasks": [{
        "name": "failover's writer: probe, choose and switch .condarc in one call",
        "gpulab.provision.mirror_probe_all": {
            "mirrors": {"conda": catalog},
            "services": {"conda": {"kind": "conda", "channel": "pkgs/main", "subdir": "noarch"}},
            "policy": {"strategy": "first_healthy", "timeout_s": 3, "on_all_down": "keep"},
            "clients": {"conda": {"condarc_path": str(condarc)}},
            "write": True, "fact_path": str(tmp_path / "facts.d" / "gpulab_mirrors.fact"),
            "lock_path": str(tmp_path / "run" / "mirrors.lock"), "lock_wait_s": 5},
        "register": "probe"}, {
        "name": "the choice", "ansible.builtin.debug": {"msg": "CHOSEN={{ probe.selected.conda.name }}"}}]}]


def test_failover_writer_then_the_watcher_move_conda(conda_client, mirrors, tmp_path):
    """a dies: mirror_probe_all (write: true, the writer failover.yml and client_files share) moves the
    .condarc to b and conda follows; then b dies and a is back: the real watcher zipapp moves it back."""
    a, b = mirrors["a"], mirrors["b"]
    root = tmp_path / "opt" / "conda"
    condarc = root / ".condarc"
    write_as_the_role(condarc, selected(entry("a", a.url), entry("b", b.url)), current=USERS)
    dry_run(conda_client, root, tmp_path / "p0")
    assert REPODATA in a.gets(200) and b.log == []

    a.stop()
    a.log.clear()
    catalog = [{"name": "a", "url": a.url, "insecure": True}, {"name": "b", "url": b.url, "insecure": True}]
    out, _changed = playbook(tmp_path, _probe_all_play(tmp_path, catalog, condarc), {"h1": {}})
    assert "CHOSEN=b" in out, out[-3000:]
    assert str(condarc) in sources(conda_client, root)
    assert shown(conda_client, root)["channels"] == ["conda-forge", "defaults"]  # still the user's
    b.log.clear()
    dry_run(conda_client, root, tmp_path / "p1")
    assert {REPODATA, "/anaconda/cloud/conda-forge/noarch/repodata.json"} <= set(b.gets(200)), b.log
    assert a.log == []

    # the watcher: the zipapp mirror_watch installs, run as its timer runs it, with the fact failover recorded
    pyz = tmp_path / "gpulab-mirror-watch.pyz"
    subprocess.run([sys.executable, BUILD_ZIPAPP, ROOT, str(pyz)], check=True, stdout=subprocess.PIPE)
    built = watch_config({"conda": catalog}, {"conda": {"kind": "conda", "channel": "pkgs/main", "subdir": "noarch"}},
                         {"timeout_s": 3}, None, {"conda": {"condarc_path": str(condarc)}},
                         {"fact_path": str(tmp_path / "facts.d" / "gpulab_mirrors.fact"),
                          "state_path": str(tmp_path / "state.json"), "lock_path": str(tmp_path / "run" / "mirrors.lock"),
                          "lease_path": str(tmp_path / "lease"), "lock_wait_s": 5})
    (tmp_path / "mirrors.json").write_text(json.dumps(built["config"]))
    a.start()
    b.stop()
    b.log.clear()
    actions = []
    for _run in range(4):  # the watcher confirms a failure on consecutive runs before it switches
        done = subprocess.run(["/usr/bin/python3", str(pyz), "--config", str(tmp_path / "mirrors.json"), "--once",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)
        assert done.stdout.startswith("{"), (done.returncode, done.stdout, done.stderr)
        report = json.loads(done.stdout)["services"]["conda"]
        actions.append(report["action"])
        if report["action"] == "failover":
            assert report["to"] == "a", report
            break
    assert actions[-1] == "failover", (actions, done.stderr)
    a.log.clear()
    shown_now = shown(conda_client, root)
    assert shown_now["default_channels"] == [a.url + "/pkgs/main", a.url + "/pkgs/r"]
    assert shown_now["channels"] == ["conda-forge", "defaults"]
    dry_run(conda_client, root, tmp_path / "p2")
    assert {REPODATA, "/anaconda/cloud/conda-forge/noarch/repodata.json"} <= set(a.gets(200)), a.log
    assert b.log == []


@pytest.mark.parametrize("status", ["kept", "none"])
def test_kept_and_none_leave_conda_on_the_old_mirror(conda_client, mirrors, tmp_path, status):
    """Every mirror down as the writer saw it: the file stays byte-identical and conda, once a answers
    again, still installs through a (and never through b)."""
    a, b = mirrors["a"], mirrors["b"]
    root = tmp_path / "opt" / "conda"
    condarc = root / ".condarc"
    write_as_the_role(condarc, selected(entry("a", a.url), entry("b", b.url)))
    before = condarc.read_bytes()
    sel = {"status": status, "name": "a" if status == "kept" else None, "url": a.url if status == "kept" else None,
           "ranked": [], "rejected": [], "message": "every mirror down"}
    done = write_as_the_role(condarc, sel)
    assert done["written"] == [] and condarc.read_bytes() == before
    assert str(condarc) in sources(conda_client, root)
    rc, out = conda(conda_client, root, "create", "-y", "-p", str(tmp_path / "env"), "tinypkg")
    assert rc == 0, out
    assert "/anaconda/pkgs/main/noarch/tinypkg-1.0.0-0.conda" in a.gets(200) and b.log == []


# ------------------------------------------------------------------------------------------------ repository managers

# A conda mirror entry's url is a base under which pkgs/<channel> (the defaults) and cloud/<channel>
# (channel_alias: conda-forge, pytorch, ...) live. A repository manager gives that layout when its two
# conda proxy repositories are named pkgs (remote https://repo.anaconda.com/pkgs/) and cloud (remote
# https://conda.anaconda.org/): the base is then <nexus>/repository or <host>/artifactory/api/conda.
# The recipe's channel under both prefixes on one loopback server; no Nexus or Artifactory ran here.
@pytest.mark.parametrize("product", ["artifactory", "nexus"])
def test_probe_condarc_and_real_conda_through_the_managers_layout(conda_client, managers, product, tmp_path):
    server, urls = managers
    url = urls[product]
    prefix = url.split("%d" % server.port, 1)[1]
    result = run_probe("conda", [{"name": product, "url": url, "insecure": True}], 5, channel="pkgs/main",
                       subdir="noarch", require=["tinypkg=1.0.0"])["results"][0]
    assert result["healthy"], result
    assert run_probe("conda", [{"name": product, "url": url, "insecure": True}], 5, channel="pkgs/main",
                     subdir="noarch", require=["tinypkg=9.9"])["results"][0]["healthy"] is False

    root = tmp_path / "opt" / "conda"
    write_as_the_role(root / ".condarc", selected(entry(product, url)))
    seen = shown(conda_client, root)
    assert seen["default_channels"] == [url + "/pkgs/main", url + "/pkgs/r"]
    assert seen["custom_channels"]["conda-forge"] == url + "/cloud/conda-forge"

    server.log.clear()
    dry_run(conda_client, root, tmp_path / "env")
    rc, out = conda(conda_client, root, "create", "-y", "-p", str(tmp_path / "env2"), "-c", "conda-forge", "tinypkg")
    assert rc == 0, out
    gets = server.gets(200)
    assert prefix + "/pkgs/main/noarch/repodata.json" in gets, server.log
    assert prefix + "/cloud/conda-forge/noarch/repodata.json" in gets, server.log
    assert any(path.startswith(prefix + "/cloud/conda-forge/noarch/tinypkg-1.0.0") for path in gets), server.log
    assert all(path.startswith(prefix + "/") for _method, path, _code in server.log), server.log
