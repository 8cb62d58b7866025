"""pitr-bundle diff OLD NEW and build --diff: what a reviewer reads before shipping."""

from __future__ import annotations

import shutil

from conftest import pitr_bundle


def build(specs, out):
    pitr_bundle("build", str(specs), "-o", str(out), check=True)
    return out / "pitr1"


def test_diff_of_a_port_change_names_roles_clusters_and_shows_the_lines(specs_copy, tmp_path):
    old = build(specs_copy, tmp_path / "old")
    spec = specs_copy / "clusters/pg168121.yaml"
    spec.write_text(spec.read_text().replace("port: 19212", "port: 19213"))
    new = build(specs_copy, tmp_path / "new")
    result = pitr_bundle("diff", str(old), str(new.parent / "pitr1.tar.gz"))
    assert result.returncode == 1
    text = result.stdout
    assert "changed  clusters/pg168121/60-standby.sh  (role standby, cluster pg168121)" in text
    assert ("changed  clusters/pg168121/50-basebackup.sh  (role basebackup, cluster pg168121, "
            "DESTRUCTIVE)") in text
    assert f"--- {old}/clusters/pg168121/60-standby.sh" in text
    assert any(line.startswith("-") and "19212" in line for line in text.splitlines())
    assert any(line.startswith("+") and "19213" in line for line in text.splitlines())
    assert "changed  clusters/pg168104/" not in text  # the other cluster did not change
    # the index files come after the scripts
    assert text.index("(bundle index)") > text.index("60-standby.sh")


def test_a_bundle_and_its_own_tarball_do_not_differ(specs_copy, tmp_path):
    bundle = build(specs_copy, tmp_path / "out")
    result = pitr_bundle("diff", str(bundle), str(bundle.parent / "pitr1.tar.gz"))
    assert result.returncode == 0 and result.stdout == ""


def test_foreign_files_and_mode_changes_show(specs_copy, tmp_path):
    bundle = build(specs_copy, tmp_path / "out")
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "host/15-evil.sh").write_text("rm -rf /\n")
    (copy / "host/10-pool.sh").chmod(0o777)
    result = pitr_bundle("diff", str(bundle), str(copy))
    assert result.returncode == 1
    assert "added    host/15-evil.sh  (FOREIGN: in no MANIFEST.json)" in result.stdout
    assert "+rm -rf /" in result.stdout
    assert "changed  host/10-pool.sh  (role pool, DESTRUCTIVE)\n  mode 0750 -> 0777\n" in result.stdout


def test_build_diff_shows_what_the_build_changes(specs_copy, tmp_path):
    out = tmp_path / "out"
    build(specs_copy, out)
    spec = specs_copy / "clusters/pg168121.yaml"
    spec.write_text(spec.read_text().replace("port: 19212", "port: 19213"))
    check = pitr_bundle("build", str(specs_copy), "-o", str(out), "--check", "--diff")
    assert check.returncode == 1 and "+" in check.stdout and "19213" in check.stdout
    result = pitr_bundle("build", str(specs_copy), "-o", str(out), "--diff", check=True)
    assert "changed  clusters/pg168121/60-standby.sh" in result.stdout
    assert "19213" in (out / "pitr1/clusters/pg168121/60-standby.sh").read_text()
    again = pitr_bundle("build", str(specs_copy), "-o", str(out), "--diff", check=True)
    assert "---" not in again.stdout  # nothing left to show
