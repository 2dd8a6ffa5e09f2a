"""The simulated demo chip: registration, and whether real hardware is attached."""

from __future__ import annotations

import os

DEMO_NAME = "demo"
DEMO_URL = f"sim://@{DEMO_NAME}"


def _hardware_present() -> bool:
    try:
        from bkbench.core.ports import list_ports

        return any(p.kind in ("usb", "pi-uart") for p in list_ports(check_in_use=False))
    except Exception:
        return False


def setup_demo() -> str:
    """Register the simulated demo chip (prints its boot log until reset) and return its URL."""
    from bkbench.core.sim import registry

    try:
        registry.get(DEMO_NAME)
    except KeyError:
        dump = None if os.environ.get("BKBENCH_DEMO_IMAGE") == "builtin" else registry.default_dump("BK7231N")
        if dump is None:
            # No real fixture dumps (an installed copy): the built-in synthetic plug and its boot log.
            # Its boot log is synthesised from its flash like any simulated chip's (core/sim/bootlog.py); no
            # process-wide BKBENCH_BOOTLOG, which would give every other simulated chip the demo's log.
            from bkbench.core.demo_image import demo_dump_path

            dump = demo_dump_path()
        # Real wire and flash timing by default, so the demo shows honest progress (0 turns it off).
        timing = os.environ.get("BKBENCH_DEMO_TIMING", "1") != "0"
        device = registry.create_device(chip="BK7231N", dump=dump, scenario="app-running", wiring="rts",
                                        timing=timing)
        registry.register(DEMO_NAME, device)
    return DEMO_URL


# Several plugs (`bkbench --demo 3`): real dumps of other devices when ../shared is there (N and T
# mixed, so each chip gets its own family's OpenBK), else the built-in plug with another MAC each.
EXTRA_DUMPS = ("bk7231t-feit-br30-rgbw-bulb.bin", "bk7231n-mirabella-genio-i003632-plug.bin",
               "bk7231t-globe-37783-rgbct-bulb.bin", "bk7231n-ap-smt-breaker02-relay.bin",
               "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin")


def setup_demo_chips(count: int) -> list[str]:
    """Register `count` simulated plugs (the demo chip first) and return their URLs."""
    from bkbench.core.paths import fixtures_dir
    from bkbench.core.sim import registry

    urls = [setup_demo()]
    fixtures = None if os.environ.get("BKBENCH_DEMO_IMAGE") == "builtin" else fixtures_dir()
    timing = os.environ.get("BKBENCH_DEMO_TIMING", "1") != "0"
    for i in range(2, count + 1):
        name = f"{DEMO_NAME}{i}"
        try:
            registry.get(name)
        except KeyError:
            dump = fixtures / "dumps" / EXTRA_DUMPS[(i - 2) % len(EXTRA_DUMPS)] if fixtures else None
            if dump is None or not dump.is_file():
                dump = _builtin_variant(i)
            device = registry.create_device(dump=dump, scenario="app-running", wiring="rts", timing=timing)
            registry.register(name, device)
        urls.append(f"sim://@{name}")
    return urls


def _builtin_variant(i: int):
    """The built-in plug with a MAC of its own (another device, so another backup), as a cached file."""
    import hashlib

    from bkbench.core import demo_image
    from bkbench.core.backups import atomic_write
    from bkbench.core.layout import RF_OFFSET
    from bkbench.core.paths import cache_dir

    flash = bytearray(demo_image.demo_flash())
    rf = RF_OFFSET[demo_image.CHIP]
    flash[rf:rf + 0x1000] = demo_image.rf_sector(demo_image.DEMO_MAC[:-2] + f"{0x30 + i:02x}")
    data = bytes(flash)
    path = cache_dir() / f"demo-{demo_image.CHIP.lower()}-{hashlib.sha256(data).hexdigest()[:12]}.bin"
    if not path.is_file() or path.read_bytes() != data:
        atomic_write(path, data, mode=0o644, overwrite=True)
    return path


DEMO_RELEASE_NOTE = "demo cache: OpenBK built by bkbench --demo, not downloaded"
DEMO_SEED = 2  # raised when the seeded images change (2: the stand-in app has a version banner)


def demo_cache_dir():
    """The demo's own cache (releases, demo dumps): its OpenBK files never mix with the user's real cache,
    so a write on real hardware never picks a file the demo made."""
    from bkbench.core.paths import cache_dir

    base = cache_dir()
    return base if base.name == "demo" else base / "demo"


def seed_demo_openbk() -> list[str]:
    """Offline OpenBK for the demo plugs, in the (demo) release cache: the real OpenBK OTA packages of
    ../shared turned into QIO images with each family's bootloader; without them a stand-in app for
    BK7231N made here (it boots as "OpenBK7231N 0.0.0-demo" on the simulator). Returns the asset names."""
    import json
    import struct

    from bkbench.core.images.builders import bootloader_from_dump, build_from_ota, build_qio
    from bkbench.core.images.releases import atomic_write, default_cache_dir, sha256_of
    from bkbench.core.paths import fixtures_dir
    from bkbench.core.sim import registry

    cache = default_cache_dir()
    fixtures = None if os.environ.get("BKBENCH_DEMO_IMAGE") == "builtin" else fixtures_dir()
    tag = "1.18.219"
    made = _seeded(cache, tag if fixtures else "0.0.0-demo")
    if made:  # built on an earlier start (building takes seconds); the lookup checks their SHA-256
        return made
    builds: dict[str, bytes] = {}
    for chip in ("BK7231N", "BK7231T"):
        ota = fixtures / "firmware" / f"OpenBeken-v{tag}_{chip.lower()}.ug.bin" if fixtures else None
        dump = registry.default_dump(chip) if fixtures else None
        if ota is not None and ota.is_file() and dump is not None:
            builds[chip] = build_from_ota(ota.read_bytes(), dump.read_bytes(), chip)["qio"]
    if not builds:
        from bkbench.core import demo_image

        tag = "0.0.0-demo"
        app = bytearray(demo_image._stream(b"bkbench demo OpenBK stand-in", 256 * 1024))
        app[:32] = struct.pack("<I", 0xEA00000E) + struct.pack("<I", 0xE59FF014) * 7  # an app's vectors
        # OpenBK's version banner (name, version, build date), so analysis, `image` and the simulated chip's
        # boot log name it as OpenBK 0.0.0-demo; then what it is.
        text = (b"\0OpenBK7231N 0.0.0-demo Jan 15 2026 10:00:00\0"
                b"a stand-in app made by the bkbench demo, no real code\0")
        app[0x8000:0x8000 + len(text)] = text
        boot = bootloader_from_dump(demo_image.demo_flash())
        builds["BK7231N"] = build_qio(bytes(app), boot, "BK7231N")
    names = [f"OpenBK{chip[2:]}_QIO_{tag}.bin" for chip in builds]
    rel = {"tag_name": tag, "name": f"{tag} ({DEMO_RELEASE_NOTE})", "published_at": "2025-11-25T18:10:00Z",
           "bkbench_demo_seed": DEMO_SEED,
           "prerelease": False, "assets": [
               {"name": name, "size": len(data), "browser_download_url": f"file:///demo/{name}"}
               for name, data in zip(names, builds.values())]}
    folder = cache / tag
    for name, data in zip(names, builds.values()):
        path = folder / name
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, data)
            atomic_write(folder / f"{name}.sha256", f"{sha256_of(data)}  {name}\n".encode())
    blob = json.dumps(rel, indent=1).encode()
    atomic_write(folder / "release.json", blob)
    atomic_write(cache / "latest.json", blob)  # the demo's own cache: its latest is what the demo made
    return names


def _seeded(cache, tag: str) -> list[str]:
    """The asset names of a demo release seeded before (with its checksums), else []."""
    import json

    try:
        rel = json.loads((cache / tag / "release.json").read_text("utf-8"))
        latest = json.loads((cache / "latest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return []
    if DEMO_RELEASE_NOTE not in str(rel.get("name")) or latest.get("tag_name") != tag \
            or rel.get("bkbench_demo_seed") != DEMO_SEED:
        return []
    names = [a.get("name", "") for a in rel.get("assets") or []]
    ok = names and all((cache / tag / n).is_file() and (cache / tag / f"{n}.sha256").is_file() for n in names)
    return names if ok else []
