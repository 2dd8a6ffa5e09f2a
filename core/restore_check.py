"""Is this file a dump that may be restored onto this chip? Checked before anything is written.

A restore rewrites nearly the whole flash, so the file must be a full dump of the same chip family
and size, put in flash order if it was read rotated; a dump of another device (another MAC) is only
written on an explicit request, because it would give this plug another plug's Tuya identity.
"""

from __future__ import annotations

from .errors import ImageError
from .layout import BOOTLOADER_END, RF_OFFSET, SECTOR
from .ops.events import EventSink, Notice, null_sink


def _mac_of(flash: bytes, chip: str) -> str | None:
    from .analysis.dump import parse_tlv_mac

    rf = RF_OFFSET.get(chip)
    if rf is None or rf + SECTOR > len(flash):
        return None
    return parse_tlv_mac(flash[rf:rf + SECTOR])


def check_restore_image(image: bytes, info, expected_chip: str | None = None, accept_other_device: bool = False,
                        sink: EventSink = null_sink) -> bytes:
    """The image in flash order, or ImageError with one sentence saying what is wrong with it.

    `info` is the connected chip's ChipInfo (chip, flash_size, mac)."""
    from .images.recognize import recognize, unrotate

    if len(image) != info.flash_size:
        raise ImageError(f"the file is {len(image)} bytes, but this chip's flash is {info.flash_size} bytes: "
                         "not a full dump of it (truncated, or of another flash size)")
    body = image[BOOTLOADER_END:]
    if body.count(body[:1]) == len(body):
        raise ImageError(f"the file holds nothing but 0x{body[0]:02X} bytes after the bootloader: not a backup")
    found = recognize(image, "restore")
    if found.format != "dump":
        raise ImageError(f"the file is not a flash dump (it looks like: {found.description or found.format}); "
                         "restore only writes full backups", hint="to write firmware use `bkbench write`")
    flash = unrotate(image, found.rotation) if found.rotation else bytes(image)
    if found.rotation:
        sink(Notice("info", f"the dump was read starting at 0x{found.rotation:X} (rotated): put back in flash "
                            "order before writing"))
    chip = found.chip or expected_chip
    if found.bootloader is None:
        raise ImageError("the file has no known bootloader at its start (nor rotated): not a full dump bkbench can "
                         "vouch for")
    if chip != info.chip:
        raise ImageError(f"the file is a dump of a {chip or 'unknown chip'}, but this chip is a {info.chip}")
    if expected_chip and expected_chip != info.chip:
        raise ImageError(f"the file is a dump of a {expected_chip}, but this chip is a {info.chip}")
    dump_mac = _mac_of(flash, info.chip)
    chip_mac = getattr(info, "mac", None)
    if dump_mac and chip_mac and dump_mac.lower() != chip_mac.lower():
        if not accept_other_device:
            raise ImageError(
                f"the file is a dump of another device (MAC {dump_mac}; this chip is {chip_mac}): writing it would "
                "give this device the other one's firmware, Tuya keys and config",
                hint="pass --other-device if that is really what you want (the chip's own RF sector is still kept)")
        sink(Notice("warning", f"restoring a dump of another device (MAC {dump_mac}) onto {chip_mac}, as asked"))
    return flash
