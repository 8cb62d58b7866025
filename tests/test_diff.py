"""pitr-bundle diff OLD NEW and build --diff: what a reviewer reads before shipping."""

from __future__ import annotations

import re
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


def test_a_change_to_a_shared_block_shows_once_naming_every_file(specs_copy, tmp_path):
    """The preamble is in every script: one line of it changed in all of them reads as one
    change, with the files and places listed, and `[shared change C1 ...]` in each file."""
    bundle = build(specs_copy, tmp_path / "out")
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    edited = []
    for path in sorted(copy.rglob("*.sh")):
        text = path.read_text()
        if "\nexport LC_ALL=C\n" in text:
            path.write_text(text.replace("\nexport LC_ALL=C\n", "\nexport LC_ALL=C.UTF-8\n"))
            edited.append(path.relative_to(copy).as_posix())
    assert len(edited) > 20
    grouped = pitr_bundle("diff", str(bundle), str(copy))
    each = pitr_bundle("diff", "--each-file", str(bundle), str(copy))
    assert grouped.returncode == each.returncode == 1
    added = "+export LC_ALL=C.UTF-8\n"
    assert each.stdout.count(added) >= len(edited)
    head, _, rest = grouped.stdout.partition("\n")
    places, files = (int(n) for n in re.match(
        r"shared change C1: the same lines change in (\d+) places of (\d+) files, shown once:",
        head).groups())
    named = re.findall(r"^  (\S+) @@ ", rest, re.M)
    assert len(named) == places and len(set(named)) == files > 20
    assert set(named) <= set(edited)
    for name in edited:  # each file says where the shared change stands, or shows its own
        assert f"changed  {name}  (" in grouped.stdout
    assert grouped.stdout.count("[shared change C1, shown above]") == places
    # C1 shown once; only the places with other context lines (not in C1) show it again
    assert grouped.stdout.count(added) == 1 + each.stdout.count(added) - places
