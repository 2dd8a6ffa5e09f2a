"""`bkbench fetch`: list or download OpenBK releases (cached; works offline from the cache)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..chips import SUPPORTED_CHIPS
from ..errors import BkError
from ..images.releases import ReleaseClient, atomic_write
from .common import HelpFormatter, check_output_path, positive_int

CHIPS = {name.lower(): name for name in SUPPORTED_CHIPS}  # families with a known layout (core/chips.py)


def _list(client: ReleaseClient, args: argparse.Namespace, as_json: bool) -> int:
    rels = client.list_releases(args.count)
    chips = [CHIPS[args.chip]] if args.chip else list(CHIPS.values())
    if as_json:
        out = []
        for r in rels:
            files = {c: {v or "": _asset_name(r, c, v) for v in r.variants(c)} for c in chips}
            out.append({"tag": r.tag, "name": r.name, "published_at": r.published_at,
                        "prerelease": r.prerelease, "files": files})
        print(json.dumps(out, indent=2))
        return 0
    for r in rels:
        print(f"{r.tag}  {r.published_at[:10]}{'  (pre-release)' if r.prerelease else ''}")
        for c in chips:
            variants = r.variants(c)
            if variants:
                names = ", ".join(v or "plain" for v in variants)
                print(f"  {c}: {_asset_name(r, c, None) if '' in variants else '-'}  variants: {names}")
    return 0


def _asset_name(rel, chip: str, variant: str | None) -> str:
    try:
        return rel.choose_asset(chip, variant or None).name
    except BkError:
        return ""


def _devices(args: argparse.Namespace, as_json: bool) -> int:
    """`fetch --devices [FILE]`: download OpenBK's community device list (or take a copy) into the cache."""
    from ..analysis.device_list import MAX_LIST_SIZE, DeviceListNetworkError, DeviceListStore, default_url
    from ..files import read_input_file

    store = DeviceListStore(Path(args.cache_dir) / "devices" if args.cache_dir else None)
    warning = ""
    if isinstance(args.devices, str):  # a copy downloaded elsewhere (an offline Pi)
        data = read_input_file(args.devices, "device list", MAX_LIST_SIZE)
        dl = store.save(data, str(Path(args.devices).resolve()))
        verb = "imported"
    elif args.offline:
        cached = store.load()
        if cached is None:
            raise BkError("Offline mode and no cached device list.",
                          hint="Download it once with `bkbench fetch --devices`, or import a copy: "
                          "bkbench fetch --devices FILE")
        dl = cached
        verb = "cached"
    else:
        try:
            dl = store.fetch(args.devices_url or default_url())
            verb = "downloaded"
        except DeviceListNetworkError as exc:
            cached = store.load()
            if cached is None:
                raise BkError(str(exc), hint="Check the network, or download devices.json elsewhere and import "
                              "it: bkbench fetch --devices FILE") from None
            dl, verb = cached, "cached"
            warning = f"{exc} Keeping the cached list."
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        print(json.dumps({"path": str(store.path), "source": dl.source, "fetched_at": dl.fetched_at,
                          "entries": len(dl.entries), "version": dl.version, "sha256": dl.sha256,
                          "status": verb, "warnings": [warning] if warning else []}, indent=2))
    else:
        print(f"Community device list {verb}: {len(dl.entries)} entries from {dl.source} "
              f"({dl.fetched_at or 'time unknown'}), SHA-256 {dl.sha256[:16]}...")
        print(store.path)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    as_json = getattr(args, "json", False)
    if args.devices is not None:
        return _devices(args, as_json)
    client = ReleaseClient(api_base=args.api, cache_dir=args.cache_dir, offline=args.offline)
    if args.list:
        return _list(client, args, as_json)
    if not args.chip:
        raise BkError(f"Say which chip the image is for: --chip {' / '.join(CHIPS)}.")
    if args.output:
        check_output_path(args.output, overwrite=True)

    def progress(done: int, total: int) -> None:
        if not as_json and sys.stderr.isatty():
            pct = f" {done * 100 // total}%" if total else ""
            print(f"\rdownloading {done // 1024} KiB{pct}", end="", file=sys.stderr, flush=True)

    res = client.fetch(CHIPS[args.chip], version=args.version, variant=args.variant,
                       refresh=args.refresh, progress=progress)
    if not as_json and sys.stderr.isatty() and not res.from_cache:
        print(file=sys.stderr)
    path = res.path
    if args.output:
        path = Path(args.output)
        atomic_write(path, res.path.read_bytes())
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        out = res.to_json()
        out["path"] = str(path)
        out["cached_path"] = str(res.path)
        print(json.dumps(out, indent=2))
    else:
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch", help="download an OpenBK release image for a chip (cached)",
        formatter_class=HelpFormatter,
        description="Download the OpenBK UART image for a chip from the project's GitHub releases (the QIO file "
        "for a BK7231N, UA for a BK7231T) into the cache, and print its path. Cached files are used offline. "
        "With --devices, OpenBK's community device list instead, which `analyze` compares a dump with.",
        epilog="examples:\n  bkbench fetch --chip bk7231n\n  bkbench fetch --chip bk7231t --version 1.18.219 "
        "-o obk.bin\n  bkbench fetch --list --count 3\n  bkbench fetch --chip bk7231n --offline\n"
        "  bkbench fetch --devices                 (OpenBK's community device list, for analyze)\n"
        "  bkbench fetch --devices devices.json    (a copy downloaded elsewhere)")
    p.add_argument("--version", help="release tag (default: the latest release)")
    p.add_argument("--chip", type=str.lower, choices=sorted(CHIPS), help="chip family the image is for")
    p.add_argument("--variant", help="build variant (e.g. berry, tuyaMCU); default: the plain build")
    p.add_argument("--list", action="store_true", help="list releases and their files instead")
    p.add_argument("--devices", nargs="?", const=True, metavar="FILE",
                   help="download OpenBK's community device list (for `analyze`), or import a copy from FILE")
    p.add_argument("--devices-url", default=None, metavar="URL",
                   help="where --devices downloads from (env BKBENCH_DEVICES_URL; default OpenBK's web app)")
    p.add_argument("--count", type=positive_int, default=10, help="how many releases --list shows")
    p.add_argument("--output", "-o", help="also copy the image to this file")
    p.add_argument("--refresh", action="store_true", help="download again even if cached")
    p.add_argument("--offline", action="store_true", help="use only the cache")
    p.add_argument("--api", default=None, help="GitHub API base URL (env BKBENCH_GITHUB_API)")
    p.add_argument("--cache-dir", default=None, help="release cache directory (env BKBENCH_CACHE_DIR)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=cmd_fetch)
