"""The one metrics writer: text format, naming rules, atomic files, state and its lock."""
import errno
import json
import os
import stat
import threading

import pytest

import promtool
from ansible_collections.gpulab.provision.plugins.module_utils import metrics as m


def _families():
    return [
        m.family("gpulab_mirror_active_info", "gauge", "The mirror in use, per service.",
                 [({"service": "pypi", "mirror": "tuna", "url": "https://user:s3cret@mirror.example/simple",
                    "status": "ok"}, 1)]),
        m.family("gpulab_mirror_switches_total", "counter", "Mirror switches.",
                 [({"service": "pypi", "from": "a\"b", "to": "c\\d\ne", "reason": "failover"}, 2),
                  ({"service": "conda", "from": "x", "to": "y", "reason": "ansible"}, 1)]),
        m.family("gpulab_mirror_probe_duration_seconds", "gauge", "Probe latency.\nSecond line.",
                 [({"service": "pypi", "mirror": "tuna"}, 0.125)]),
        m.family("gpulab_mirror_watch_last_run_timestamp_seconds", "gauge", "Last run.", [({}, 1764880000.5)]),
        m.family("gpulab_empty", "gauge", "No samples: left out.", []),
    ]


def test_render_is_valid_exposition_text_and_masks_credentials():
    text = m.render(_families())
    promtool.check_metrics(text)
    assert "s3cret" not in text and "user" not in text
    assert 'url="https://***@mirror.example/simple"' in text
    assert 'from="a\\"b"' in text and 'to="c\\\\d\\ne"' in text
    assert "# HELP gpulab_mirror_probe_duration_seconds Probe latency.\\nSecond line." in text
    assert "gpulab_empty" not in text
    # no timestamps: every sample line is "name{labels} value"
    for line in text.splitlines():
        if not line.startswith("#"):
            assert len(line.rsplit(" ", 1)) == 2 and "} " in line or line.count(" ") == 1


def test_render_is_stable_whatever_the_input_order():
    one = m.render(_families())
    fams = list(reversed(_families()))
    for fam in fams:
        fam["samples"].reverse()
    assert m.render(fams) == one
    assert one.index("gpulab_mirror_active_info") < one.index("gpulab_mirror_switches_total")
    # series sort by their sorted label pairs: from="a.." before from="x"
    assert one.index('from="a') < one.index('from="x"')


@pytest.mark.parametrize("fam, words", [
    (m.family("mirror_up", "gauge", "h", [({}, 1)]), "start with gpulab_"),
    (m.family("gpulab_bad-name", "gauge", "h", [({}, 1)]), "must match"),
    (m.family("gpulab_switches", "counter", "h", [({}, 1)]), "ends in _total"),
    (m.family("gpulab_x_total", "gauge", "h", [({}, 1)]), "only a counter"),
    (m.family("gpulab_x", "histogram", "h", [({}, 1)]), "kind"),
    (m.family("gpulab_x", "gauge", "", [({}, 1)]), "HELP"),
    (m.family("gpulab_x", "gauge", "h", [({"__name": "a"}, 1)]), "label name"),
    (m.family("gpulab_x", "gauge", "h", [({"bad-label": "a"}, 1)]), "label name"),
    (m.family("gpulab_x", "gauge", "h", [({"a": "1"}, 1), ({"a": "1"}, 2)]), "twice"),
    (m.family("gpulab_x_info", "gauge", "h", [({}, 2)]), "_info series is 1"),
    (m.family("gpulab_x_total", "counter", "h", [({}, -1)]), ">= 0"),
])
def test_malformed_families_are_refused(fam, words):
    with pytest.raises(m.MetricsError, match=words):
        m.render([fam])


def test_a_family_defined_twice_is_refused():
    fam = m.family("gpulab_x", "gauge", "h", [({}, 1)])
    with pytest.raises(m.MetricsError, match="defined twice"):
        m.render([fam, dict(fam)])


@pytest.mark.parametrize("value, text", [
    (True, "1"), (False, "0"), (3, "3"), (2.0, "2"), (0.5, "0.5"), (float("nan"), "NaN"),
    (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (1764880000.25, "1764880000.25"),
])
def test_values(value, text):
    assert m.format_value(value) == text


def test_write_prom_atomic_unchanged_and_check_mode(tmp_path):
    fams = _families()
    assert m.write_prom(str(tmp_path), "mirrors", fams, check=True) is True
    assert not list(tmp_path.iterdir())
    assert m.write_prom(str(tmp_path), "mirrors", fams) is True
    path = tmp_path / "gpulab_mirrors.prom"
    assert path.read_text() == m.render(fams)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    inode = path.stat().st_ino
    assert m.write_prom(str(tmp_path), "mirrors", fams) is False
    assert path.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["gpulab_mirrors.prom"]


def test_write_prom_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    fams = _families()
    m.write_prom(str(tmp_path), "mirrors", fams)
    before = (tmp_path / "gpulab_mirrors.prom").read_text()

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(m, "replace_text", full)
    fams[0]["samples"][0][0]["mirror"] = "ustc"
    with pytest.raises(m.MetricsError) as info:
        m.write_prom(str(tmp_path), "mirrors", fams)
    assert "gpulab_metrics_dir" in str(info.value) and "no space left" in str(info.value)
    assert "\n" not in str(info.value)
    assert (tmp_path / "gpulab_mirrors.prom").read_text() == before


def test_a_real_full_tmpfs_keeps_the_previous_file(tmp_path):
    """ENOSPC from a real 16 KiB tmpfs (root only: skipped where mount is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system("mount -t tmpfs -o size=16k tmpfs %s 2>/dev/null" % mnt) != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        small = [m.family("gpulab_x", "gauge", "h", [({"n": "1"}, 1)])]
        m.write_prom(str(mnt), "big", small)
        big = [m.family("gpulab_x", "gauge", "h", [({"n": str(i), "pad": "p" * 200}, i) for i in range(400)])]
        with pytest.raises(m.MetricsError, match="no space left"):
            m.write_prom(str(mnt), "big", big)
        assert (mnt / "gpulab_big.prom").read_text() == m.render(small)
        assert sorted(p.name for p in mnt.iterdir()) == ["gpulab_big.prom"]
    finally:
        os.system("umount %s" % mnt)


def test_dir_problems_name_the_variable(tmp_path):
    assert m.dir_problem(str(tmp_path)) is None
    for bad in ("relative/dir", "", None):
        assert "gpulab_metrics_dir" in m.dir_problem(bad)
    missing = m.dir_problem(str(tmp_path / "nope"))
    assert "gpulab_metrics_dir" in missing and "does not exist" in missing
    afile = tmp_path / "f"
    afile.write_text("x")
    assert "not a directory" in m.dir_problem(str(afile))
    with pytest.raises(m.MetricsError, match="does not exist"):
        m.write_prom(str(tmp_path / "nope"), "mirrors", _families())
    with pytest.raises(m.MetricsError, match="concern"):
        m.prom_path(str(tmp_path), "../etc")


def test_update_state_counts_across_runs_and_under_concurrency(tmp_path):
    directory = str(tmp_path)

    def bump(data):
        counters = data.setdefault("switches", {})
        m.counter_add(counters, m.series_key({"service": "pypi", "from": "a", "to": "b"}))
        fam = m.family("gpulab_mirror_switches_total", "counter", "Switches.",
                       [(m.key_labels(k), v) for k, v in counters.items()])
        return data, [fam]

    threads = [threading.Thread(target=m.update_state, args=(directory, "mirrors", bump)) for _thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = (tmp_path / "gpulab_mirrors.prom").read_text()
    assert 'gpulab_mirror_switches_total{from="a",service="pypi",to="b"} 8' in text
    saved = json.loads((tmp_path / ".gpulab-mirrors.json").read_text())
    assert saved["version"] == 1
    assert stat.S_IMODE((tmp_path / ".gpulab-mirrors.json").stat().st_mode) == 0o600
    # check mode: nothing saved, nothing written
    assert m.update_state(directory, "mirrors", bump, check=True) is True
    assert (tmp_path / "gpulab_mirrors.prom").read_text() == text
    assert m.read_state(directory, "mirrors")["switches"] == saved["data"]["switches"]


def test_an_unusable_state_starts_afresh(tmp_path):
    (tmp_path / ".gpulab-mirrors.json").write_text("{not json")
    assert m.read_state(str(tmp_path), "mirrors") == {}
    (tmp_path / ".gpulab-mirrors.json").write_text(json.dumps({"version": 99, "data": {"a": 1}}))
    assert m.read_state(str(tmp_path), "mirrors") == {}
    assert m.key_labels("not json") is None
    assert m.key_labels(m.series_key({"a": None, "b": 2})) == {"a": "", "b": "2"}
