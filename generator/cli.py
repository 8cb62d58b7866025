"""The command line: the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from generator import __version__
from generator.ansible import fleet_files
from generator.audit import (manifest_disagreements, read_manifest, run_bats, run_shellcheck,
                             verify_sums)
from generator.bundle import build_bundle, tarball
from generator.contents import SIGNATURE_SUFFIX, bundle_at, is_signature
from generator.diff import Side, built_side, diff_lines, read_side
from generator.errors import PitrBundleError, SpecError, UsageError
from generator.pgconfig import parse_pg_config
from generator.init import write_specs
from generator.pgpackages import import_section
from generator.reference import markdown as reference_markdown
from generator.review import review_side, review_text
from generator.review_plan import plan_bundle, plan_text
from generator.schema import MODELS
from generator.sign import kept_signatures, sign_bundle
from generator.validate import load_and_validate, warnings_of
from generator.write import compare_bundle, write_bundle, write_file


def _build_all(specs_dir: Path, out: Path, packer):
    """Validate and render every host before anything is written. Each host's tarball is
    packed by `packer` (a one-thread executor) while the next host renders and while the
    bundle's files are written: gzip runs outside the GIL, on the other core."""
    hosts = load_and_validate(specs_dir)
    print_warnings(hosts)
    built = []
    for host in hosts:
        files = build_bundle(host)
        files = sorted(files + kept_signatures(out / host.name, files), key=lambda f: f.path)
        built.append((host, files, packer.submit(tarball, host.name, files)))
    return built


def print_warnings(hosts) -> None:
    """file:line: field: warning: ... on stderr; a warning never fails a command."""
    for warning in warnings_of(hosts):
        print(str(warning), file=sys.stderr)


def cmd_validate(args) -> int:
    hosts = load_and_validate(Path(args.specs))
    print_warnings(hosts)
    clusters = sum(len(h.clusters) for h in hosts)
    retired = sum(len(h.retired) for h in hosts)
    print(f"ok: {len(hosts)} host spec(s), {clusters} cluster spec(s)"
          + (f", {retired} retired" if retired else ""))
    return 0


def cmd_build(args) -> int:

    out = Path(args.output)
    differs = False
    fleet = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tarball") as packer:
        try:
            built = _build_all(Path(args.specs), out, packer)
        except BaseException:
            packer.shutdown(wait=False, cancel_futures=True)
            raise
        for host, files, tar_bytes in built:
            bundle_dir, tar_path = out / host.name, out / f"{host.name}.tar.gz"
            if args.diff:
                old = read_side(bundle_dir) if bundle_dir.is_dir() else Side({}, {})
                sys.stdout.writelines(diff_lines(old, built_side(files), "a", "b"))
            if args.check:
                report = compare_bundle(bundle_dir, files, tar_path, tar_bytes)
            else:
                report = write_bundle(bundle_dir, files, tar_path, tar_bytes)
            if args.ansible:
                fleet.append((host, files, tar_bytes.result()))
            for status, path in report:
                differs |= status != "identical"
                if args.check and status == "identical":
                    continue
                why = _why_removed(host, bundle_dir, path) if status == "removed" else ""
                print(f"{status:<10} {path}{f'  ({why})' if why else ''}")
            for line in _cluster_removals(host, bundle_dir, report) + _signature_removals(
                    bundle_dir, report, args.check):
                print(line)
        for name, content in fleet_files(fleet) if args.ansible else []:
            status, path = write_file(out / name, content, 0o640, args.check)
            differs |= status != "identical"
            if not (args.check and status == "identical"):
                print(f"{status:<10} {path}")
    if args.check:
        print("bundle differs from the specs" if differs else "bundle matches the specs")
        return 1 if differs else 0
    return 0


def _removed_cluster(bundle_dir: Path, path: str) -> str | None:
    """The cluster whose folder (clusters/<name>/...) a removed path was in."""
    parts = Path(path).relative_to(bundle_dir).parts
    return parts[1] if len(parts) > 2 and parts[0] == "clusters" else None


def _why_removed(host, bundle_dir: Path, path: str) -> str:
    name = _removed_cluster(bundle_dir, path)
    if name is None or name in {c.spec.name for c in host.clusters}:
        return ""
    if name in {c.spec.name for c in host.retired}:
        return f"cluster {name} is retired"
    return f"cluster {name} has no spec any more"


def _cluster_removals(host, bundle_dir: Path, report) -> list[str]:
    """One line per cluster whose files a build removed because it is retired or its spec is
    gone, saying what to run on the hosts."""
    counts: dict[str, int] = {}
    for status, path in report:
        name = _removed_cluster(bundle_dir, path) if status == "removed" else None
        if name and name not in {c.spec.name for c in host.clusters}:
            counts[name] = counts.get(name, 0) + 1
    retired = {c.spec.name for c in host.retired}
    lines = []
    for name, count in sorted(counts.items()):
        if name in retired:
            lines.append(f"{'retired':<10} {name}: removed {count} file(s) of clusters/{name}/; "
                         f"run clusters/{name}/primary/45-remove-from-primary.sh on its primary, "
                         f"then clusters/{name}/90-retire.sh on {host.name}")
        else:
            lines.append(f"{'gone':<10} {name}: no spec any more, removed {count} file(s) of "
                         f"clusters/{name}/; its standby, cron files and monitor lines stay on "
                         f"{host.name}: put the spec back with `retired: true` to get its "
                         "retire scripts")
    return lines


def _signature_removals(bundle_dir: Path, report, check: bool) -> list[str]:
    """One line when a build removes reviewers' signatures (they signed an older SHA256SUMS):
    who must sign again, and how."""
    names = [Path(path).name.removesuffix(SIGNATURE_SUFFIX) for status, path in report
             if status == "removed" and is_signature(Path(path).relative_to(bundle_dir).as_posix())]
    if not names:
        return []
    count = f"{len(names)} reviewer{'s' if len(names) > 1 else ''}"
    return [f"signatures {'stale' if check else 'removed'}: {count} must sign again "
            f"({', '.join(names)}), each with: pitr-bundle sign {bundle_dir} --key KEY"]


def cmd_diff(args) -> int:
    with bundle_at(Path(args.old)) as old, bundle_at(Path(args.new)) as new:
        lines = diff_lines(read_side(old), read_side(new), args.old, args.new,
                           group_shared=not args.each_file)
    sys.stdout.writelines(lines)
    return 1 if lines else 0


def cmd_check(args) -> int:
    with bundle_at(Path(args.bundle)) as bundle_dir:
        return _check_folder(bundle_dir, args)


def _check_folder(bundle_dir: Path, args) -> int:
    manifest = read_manifest(bundle_dir)
    failed = False
    bad = verify_sums(bundle_dir) + manifest_disagreements(manifest)
    if bad:
        print("SHA256SUMS mismatch: " + ", ".join(bad), file=sys.stderr)
        failed = True
    else:
        print("checksums: ok")
    shell_files = manifest.shell_files()
    if run_shellcheck(shell_files) != 0:
        print("shellcheck: findings above", file=sys.stderr)
        failed = True
    else:
        print(f"shellcheck: {len(shell_files)} file(s) clean")
    if not args.no_bats:
        if run_bats(bundle_dir, filter_text=args.filter, deep=args.deep,
                    each_cluster=args.each_cluster) != 0:
            print("bats: failures above", file=sys.stderr)
            failed = True
        else:
            print("bats: ok")
    return 1 if failed else 0


def cmd_plan(args) -> int:
    with bundle_at(Path(args.bundle)) as bundle_dir:
        steps = plan_bundle(bundle_dir)
    sys.stdout.write(plan_text(steps))
    return 1 if any(step.exit_code != 0 for step in steps) else 0


def cmd_review(args) -> int:
    with bundle_at(Path(args.bundle)) as bundle_dir:
        text = review_text(review_side(read_side(bundle_dir)), args.bundle)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(text.rstrip("\n").rpartition("\n")[2])  # the figures, on the terminal too
    else:
        sys.stdout.write(text)
    return 0


def cmd_sign(args) -> int:
    for path in sign_bundle(Path(args.bundle), Path(args.key), args.reviewer):
        print(f"signed     {path}")
    return 0


def cmd_init(args) -> int:
    for path in write_specs(args):
        print(f"new        {path}")
    print(f"next: review the comments in them, then pitr-bundle validate {args.folder} and "
          f"pitr-bundle build {args.folder} -o out/")
    return 0


def cmd_schema(args) -> int:
    if args.markdown:
        sys.stdout.write(reference_markdown())
        return 0
    if not args.kind:
        raise UsageError("schema: name a kind (host or cluster), or --markdown")
    print(json.dumps(MODELS[args.kind].model_json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_import_pg_config(args) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        text = Path(args.file).read_text(encoding="utf-8", errors="replace")
    sys.stdout.write(import_section(parse_pg_config(text), configure=args.configure))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pitr-bundle",
        description="Generate audited bash bundles for a central PostgreSQL PITR host on ZFS.")
    top.add_argument("--version", action="version", version=f"pitr-bundle {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check every spec and report all problems at once")
    p.add_argument("specs", help="the specs folder (with hosts/ and clusters/)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("build", help="write one bundle per backup-host spec")
    p.add_argument("specs", help="the specs folder (with hosts/ and clusters/)")
    p.add_argument("-o", "--output", default="out", help="where bundles go (default: out)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when the bundles on disk differ from the specs")
    p.add_argument("--diff", action="store_true",
                   help="also show what changes, file by file, as a unified diff")
    p.add_argument("--ansible", action="store_true",
                   help="also write ansible/inventory.yml and ansible/site.yml: ship and run "
                        "every host's bundle with ansible-playbook")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("plan", help="every backup-host script with --dry-run on a simulated "
                                    "fresh host: the commands a reviewer should expect")
    p.add_argument("bundle", help="a bundle folder or its tarball")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("review", help="what a first review reads: each block shared by several "
                                      "files once (sha256, the files carrying it), then each "
                                      "file's own lines")
    p.add_argument("bundle", help="a bundle folder or its tarball")
    p.add_argument("-o", "--output", help="write the review to this file instead of the terminal")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("sign", help="sign a reviewed bundle's SHA256SUMS with an OpenSSH key")
    p.add_argument("bundle", help="the bundle folder, e.g. out/pitr1 (its tarball is refreshed)")
    p.add_argument("--key", required=True, help="the reviewer's private key (ssh-keygen -Y sign -f)")
    p.add_argument("--reviewer", help="name of the signature file (default: the key's comment)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("diff", help="what differs between two bundles (folders or tarballs)")
    p.add_argument("old", help="the bundle before, e.g. the reviewed one")
    p.add_argument("new", help="the bundle after")
    p.add_argument("--each-file", action="store_true",
                   help="show a change in every file that has it (by default a change that "
                        "stands the same in several files, e.g. in the preamble, is shown once, "
                        "naming them)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("check", help="verify, shellcheck and bats-test a written bundle")
    p.add_argument("bundle", help="a bundle folder or its tarball, e.g. out/pitr1 or out/pitr1.tar.gz")
    p.add_argument("--no-bats", action="store_true", help="only checksums and shellcheck")
    p.add_argument("--filter", help="run only bats tests whose name matches this regex")
    p.add_argument("--deep", action="store_true",
                   help="also the exhaustive bats tests (every fault position, a simulated year "
                        "of snapshots): minutes per distinct view of a cluster")
    p.add_argument("--each-cluster", action="store_true",
                   help="run the cluster suites on every cluster, not once per distinct view of a cluster")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("import-pg-config",
                       help="turn a primary's pg_config output (or config.log line) into the "
                            "postgres: section of a cluster spec")
    p.add_argument("file", help="a file with the text, or - for standard input")
    p.add_argument("--configure", action="store_true",
                   help="print the configure options even when the primary's PostgreSQL came "
                        "from packages (by default: its bin folder, as postgres.binaries)")
    p.set_defaults(func=cmd_import_pg_config)

    p = sub.add_parser("init", help="write a first host spec and one cluster spec per primary "
                                    "(from each primary's pg_config or SHOW server_version)")
    p.add_argument("folder", help="the specs folder to write into (hosts/ and clusters/)")
    p.add_argument("--host", required=True, help="the backup host's name, e.g. pitr1")
    p.add_argument("--address", required=True, help="the backup host's address")
    p.add_argument("--pool", default="zp1", help="the ZFS pool's name (default zp1)")
    p.add_argument("--vdev", default="raidz2", choices=["raidz1", "raidz2", "raidz3", "mirror"],
                   help="the pool's redundancy (default raidz2)")
    p.add_argument("--disks", required=True,
                   help="the pool's disks, comma separated /dev/disk/by-id/ paths")
    p.add_argument("--log", help="separate intent log devices, comma separated (default none)")
    p.add_argument("--spare", help="hot spares, comma separated (default none)")
    p.add_argument("--cluster", action="append", default=[], metavar="NAME=ADDRESS[:PORT]",
                   help="a primary to back up (repeat per primary); NAME names its cluster")
    p.add_argument("--pg-config", action="append", default=[], metavar="NAME=FILE",
                   help="the primary's pg_config output, saved to FILE (packaged or built)")
    p.add_argument("--server-version", action="append", default=[], metavar="NAME=TEXT",
                   help="instead: the primary's SHOW server_version, e.g. '16.4 (Debian "
                        "16.4-1.pgdg120+1)' (tells Debian and Ubuntu packages)")
    p.add_argument("--data-dir", action="append", default=[], metavar="NAME=PATH",
                   help="the primary's data folder (default for packages: Debian's "
                        "/var/lib/postgresql/<major>/main, PGDG RPMs' /var/lib/pgsql/<major>/data)")
    p.add_argument("--first-port", type=int, default=15432,
                   help="the first standby's port on the backup host, the next ones follow "
                        "(default 15432)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("schema", help="print the JSON Schema of a spec kind, or --markdown: "
                                      "the reference of every field (docs/spec-reference.md)")
    p.add_argument("kind", nargs="?", choices=["host", "cluster"])
    p.add_argument("--markdown", action="store_true",
                   help="every field of both kinds as Markdown tables (type, default, description)")
    p.set_defaults(func=cmd_schema)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found; nothing was written", file=sys.stderr)
        return exc.exit_code
    except PitrBundleError as exc:
        print(f"pitr-bundle: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"pitr-bundle: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
