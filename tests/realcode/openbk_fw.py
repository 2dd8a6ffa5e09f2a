"""OpenBK's own config code, run out of the real OpenBK builds under Unicorn: a judge bkbench did not write.

The builds in fixtures/firmware/ are UG OTA packages; core/images/rbl.py unpacks them to the plain
application, Thumb code linked at 0x10000 with no symbols. The functions are found from their own log
strings, never from addresses remembered from one build:

- `CFG_InitAndLoad` is the function whose literal pool holds the address of the string "Config crc or
  ident mismatch" (a Thumb `ldr rX, [pc, #imm]` loads it). A function's entry is the nearest BL target at
  or before that load (every function we run is called by BL somewhere; a compiler may schedule an
  instruction before the `push`, so the push is not the entry).
- Walking its code (Thumb-1 only, so every 32-bit pair is a BL/BLX): the first call is
  `HAL_Configuration_ReadConfigMemory(&g_cfg, sizeof g_cfg)`, the second `CFG_CalcChecksum()`, the call right
  after the mismatch string is loaded is `addLogAdv`, the call after that `CFG_SetDefaultConfig()`, the last
  one `CFG_Save_IfThereArePendingChanges()`, whose last call is `HAL_Configuration_SaveConfigMemory`.
  `Tiny_CRC8` is the last call of `CFG_CalcChecksum`; `WiFI_GetMacAddress` the first of
  `CFG_SetDefaultConfig`. Each stub checks the arguments it is called with, so a wrong guess fails loudly.
- `PIN_GetPinRoleForPinIndex` / `...Channel...` / `...Channel2...` are found the same way from their
  "Pin index %i out of range" strings.

Only the flash read and write, the MAC read and the logger are replaced (they reach hardware); everything
else (checksum, ident check, defaults, version upgrade, strcpy/snprintf/memset of the SDK's libc) is the
real code. One emulator per build, reused: RAM is cleared before every run.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

try:
    import unicorn
    from unicorn import arm_const as A
except ImportError:  # the tests that use this module are skipped without it (tests/conftest.py)
    unicorn = None  # type: ignore[assignment]

BASE = 0x10000  # where the app is linked (CPU address of its first byte)
RAM, RAM_SIZE = 0x400000, 0x80000
STACK_TOP = RAM + RAM_SIZE - 0x100
RETURN = 0x200  # sentinel return address (mapped, never executed)
CFG_SIZE = 0xE00  # sizeof(mainConfig_t) on the 32-pin Beken builds


class HarnessError(RuntimeError):
    """The firmware does not look as this harness expects (a function not found, a stub misused)."""


@dataclass
class LoadResult:
    """What OpenBK's CFG_InitAndLoad did with one sector."""

    accepted: bool  # "Correct config has been loaded" (else "Config crc or ident mismatch")
    logs: list[str]  # format strings logged, in order
    saved: bytes | None  # what CFG_Save_IfThereArePendingChanges wrote back (None: nothing)
    cfg: bytes  # g_cfg after loading (what the firmware runs with)
    change_count_logged: int | None = None  # the %i of "Correct config ... with %i changes count"


@dataclass
class _Calls:
    read: int = 0
    logs: list[tuple[str, int]] = field(default_factory=list)
    saved: bytes | None = None


def _thumb_bl(hi: int, lo: int, addr: int) -> int | None:
    """Target of a Thumb-1 BL/BLX pair at `addr` (None when the halfwords are not one)."""
    if hi & 0xF800 != 0xF000 or lo & 0xE800 != 0xE800:
        return None
    off = (hi & 0x7FF) << 12 | (lo & 0x7FF) << 1
    if off & 0x400000:
        off -= 0x800000
    target = addr + 4 + off
    return target & ~3 if lo & 0xF800 == 0xE800 else target  # BLX goes to ARM code


class Firmware:
    """One real OpenBK build: its code, the functions found in it and an emulator to run them."""

    def __init__(self, path: Path, chip: str) -> None:
        from bkbench.core.images.rbl import unpack_ota

        if unicorn is None:
            raise HarnessError("unicorn is not installed")
        self.path = path
        self.chip = chip
        self.code = unpack_ota(path.read_bytes())
        self._halves = struct.unpack_from(f"<{len(self.code) // 2}H", self.code)
        self._bl_targets = self._all_bl_targets()
        self._find_functions()
        self._uc = self._make_emulator()

    # --- static search ---
    def _all_bl_targets(self) -> list[int]:
        h = self._halves
        out = set()
        for i in range(len(h) - 1):
            t = _thumb_bl(h[i], h[i + 1], BASE + 2 * i)
            if t is not None and BASE <= t < BASE + len(self.code):
                out.add(t)
        return sorted(out)

    def string(self, text: bytes) -> int:
        """CPU address of the NUL-terminated string that starts with `text`."""
        pos = self.code.find(text)
        while pos > 0 and self.code[pos - 1] != 0:
            pos = self.code.find(text, pos + 1)
        if pos <= 0:
            raise HarnessError(f"string {text!r} not in {self.path.name}")
        return BASE + pos

    def u32(self, addr: int) -> int:
        return struct.unpack_from("<I", self.code, addr - BASE)[0]

    def _literal_loads(self, value: int) -> list[int]:
        """Addresses of Thumb `ldr rX, [pc, #imm]` instructions that load `value` from a literal pool."""
        sites = []
        for pos in range(0, len(self.code) - 3, 4):
            if self.code[pos : pos + 4] != struct.pack("<I", value):
                continue
            lit = BASE + pos
            for site in range(max(BASE, lit - 1024), lit, 2):
                hw = self._halves[(site - BASE) // 2]
                if hw & 0xF800 == 0x4800 and ((site + 4) & ~3) + (hw & 0xFF) * 4 == lit:
                    sites.append(site)
        return sites

    def _entry(self, site: int) -> int:
        import bisect

        i = bisect.bisect_right(self._bl_targets, site) - 1
        if i < 0:
            raise HarnessError(f"no function entry before 0x{site:X}")
        return self._bl_targets[i]

    def _calls(self, entry: int) -> list[tuple[int, int]]:
        """(site, target) of every BL from `entry` to the function's first literal pool."""
        out = []
        pool = BASE + len(self.code)
        a = entry
        while a < pool:
            hw = self._halves[(a - BASE) // 2]
            if hw & 0xF800 == 0x4800:  # ldr rX, [pc, #imm]: the pool follows the code
                pool = min(pool, ((a + 4) & ~3) + (hw & 0xFF) * 4)
            t = _thumb_bl(hw, self._halves[(a - BASE) // 2 + 1], a)
            if t is not None:
                out.append((a, t))
                a += 4
            else:
                a += 2
        return out

    def _function_loading(self, text: bytes) -> tuple[int, int]:
        """(entry of the function that loads the string starting with `text`, the load's address)."""
        sites = self._literal_loads(self.string(text))
        if len(sites) != 1:
            raise HarnessError(f"{text!r} is loaded {len(sites)} times, expected once")
        return self._entry(sites[0]), sites[0]

    def _find_functions(self) -> None:
        self.init_and_load, site = self._function_loading(b"CFG_InitAndLoad: Config crc or ident mismatch")
        calls = self._calls(self.init_and_load)
        if len(calls) < 5:
            raise HarnessError(f"CFG_InitAndLoad makes {len(calls)} calls, expected at least 5")
        self.read_config, self.calc_checksum = calls[0][1], calls[1][1]
        after = [t for s, t in calls if s > site]
        self.log, self.set_default = after[0], after[1]
        self.save = calls[-1][1]
        self.save_memory = self._calls(self.save)[-1][1]
        self.tiny_crc8 = self._calls(self.calc_checksum)[-1][1]
        self.get_mac = self._calls(self.set_default)[0][1]
        self.mismatch = self.string(b"CFG_InitAndLoad: Config crc or ident mismatch")
        self.correct = self.string(b"CFG_InitAndLoad: Correct config has been loaded")
        self.pin_get = {
            name: self._function_loading(f"PIN_Get{name}ForPinIndex: Pin index".encode())[0]
            for name in ("PinRole", "PinChannel", "PinChannel2")
        }

    # --- emulation ---
    def _make_emulator(self):
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB)
        uc.ctl_set_cpu_model(A.UC_CPU_ARM_946)  # ARMv5TE, as the BK7231's ARM968E-S
        code_end = (BASE + len(self.code) + 0xFFFF) & ~0xFFFF
        uc.mem_map(0, code_end)
        uc.mem_write(BASE, self.code)
        uc.mem_map(RAM, RAM_SIZE)

        def unmapped(uc, access, addr, size, value, data):
            raise HarnessError(f"the firmware touched unmapped memory at 0x{addr:08X} (pc 0x{self._pc():X})")

        uc.hook_add(unicorn.UC_HOOK_MEM_UNMAPPED, unmapped)
        self._hook(uc, self.read_config, self._on_read)
        self._hook(uc, self.log, self._on_log)
        self._hook(uc, self.get_mac, self._on_get_mac)
        self._hook(uc, self.save_memory, self._on_save)
        return uc

    def _pc(self) -> int:
        return self._uc.reg_read(A.UC_ARM_REG_PC)

    @staticmethod
    def _hook(uc, addr: int, action) -> None:
        def cb(uc, address, size, data):
            ret = action(uc)
            if ret is not None:
                uc.reg_write(A.UC_ARM_REG_R0, ret)
            uc.reg_write(A.UC_ARM_REG_PC, uc.reg_read(A.UC_ARM_REG_LR))

        uc.hook_add(unicorn.UC_HOOK_CODE, cb, begin=addr, end=addr)

    def _reg(self, n: int) -> int:
        return self._uc.reg_read(A.UC_ARM_REG_R0 + n)

    def _on_read(self, uc) -> int:
        dst, size = self._reg(0), self._reg(1)
        if size != CFG_SIZE or dst != self.g_cfg:
            raise HarnessError(f"ReadConfigMemory(0x{dst:X}, {size}) is not the config read this harness expects")
        uc.mem_write(dst, self._sector[:size])
        self._state.read += 1
        return size

    def _on_log(self, uc) -> None:
        fmt = self._reg(2)
        text = self.code[fmt - BASE : self.code.index(b"\0", fmt - BASE)].decode("latin-1") \
            if BASE <= fmt < BASE + len(self.code) else f"<fmt 0x{fmt:X}>"
        self._state.logs.append((text, self._reg(3)))

    def _on_get_mac(self, uc) -> None:
        uc.mem_write(self._reg(0), self._mac)

    def _on_save(self, uc) -> int:
        src, size = self._reg(0), self._reg(1)
        if src != self.g_cfg or size != CFG_SIZE:
            raise HarnessError(f"SaveConfigMemory(0x{src:X}, {size}) is not the config save this harness expects")
        self._state.saved = bytes(uc.mem_read(src, size))
        return 1

    def _call(self, entry: int, *args: int, count: int = 50_000_000) -> int:
        uc = self._uc
        for i, v in enumerate(args):
            uc.reg_write(A.UC_ARM_REG_R0 + i, v & 0xFFFFFFFF)
        uc.reg_write(A.UC_ARM_REG_SP, STACK_TOP)
        uc.reg_write(A.UC_ARM_REG_LR, RETURN | 1)
        uc.emu_start(entry | 1, RETURN, timeout=10_000_000, count=count)
        if self._pc() != RETURN:
            raise HarnessError(f"0x{entry:X} did not return (pc 0x{self._pc():X})")
        return uc.reg_read(A.UC_ARM_REG_R0)

    def _reset(self, sector: bytes = b"", mac: bytes = b"\0" * 6) -> None:
        self._uc.mem_write(RAM, b"\0" * RAM_SIZE)
        self._sector = bytes(sector) + b"\xff" * max(0, CFG_SIZE - len(sector))
        self._mac = bytes(mac)
        self._state = _Calls()

    @property
    def g_cfg(self) -> int:
        """Address of g_cfg: the first RAM address CFG_InitAndLoad loads from its literal pool."""
        if not hasattr(self, "_g_cfg"):
            for a in range(self.init_and_load, self.init_and_load + 0x40, 2):
                hw = self._halves[(a - BASE) // 2]
                if hw & 0xF800 == 0x4800:
                    v = self.u32(((a + 4) & ~3) + (hw & 0xFF) * 4)
                    if RAM <= v < RAM + RAM_SIZE:
                        self._g_cfg = v
                        break
            else:
                raise HarnessError("g_cfg not found in CFG_InitAndLoad")
        return self._g_cfg

    # --- what the tests ask ---
    def load(self, sector: bytes, mac: bytes = bytes.fromhex("c81234abcdef")) -> LoadResult:
        """Boot OpenBK's config loader on `sector` (the first 3584 bytes are what it reads)."""
        self._reset(sector, mac)
        self._call(self.init_and_load)
        if self._state.read != 1:
            raise HarnessError("CFG_InitAndLoad did not read the config exactly once")
        texts = [t for t, _ in self._state.logs]
        verdicts = [t for t in texts if t.startswith("CFG_InitAndLoad: C")]
        if len(verdicts) != 1:
            raise HarnessError(f"expected one verdict line, got {verdicts}")
        accepted = verdicts[0].startswith("CFG_InitAndLoad: Correct")
        count = next((v for t, v in self._state.logs if t.startswith("CFG_InitAndLoad: Correct")), None)
        cfg = bytes(self._uc.mem_read(self.g_cfg, CFG_SIZE))
        return LoadResult(accepted, texts, self._state.saved, cfg, count)

    def checksum(self, struct_bytes: bytes) -> int:
        """CFG_CalcChecksum() over g_cfg holding `struct_bytes` (it picks the size from the version)."""
        self._reset()
        self._uc.mem_write(self.g_cfg, bytes(struct_bytes[:CFG_SIZE]))
        return self._call(self.calc_checksum) & 0xFF

    def crc8(self, data: bytes) -> int:
        """The firmware's Tiny_CRC8(data, len)."""
        self._reset()
        self._uc.mem_write(RAM + 0x1000, bytes(data))
        return self._call(self.tiny_crc8, RAM + 0x1000, len(data)) & 0xFF

    def defaults(self, mac: bytes) -> bytes:
        """g_cfg as CFG_SetDefaultConfig() leaves it (WiFI_GetMacAddress answering `mac`)."""
        self._reset(mac=mac)
        self._call(self.set_default)
        return bytes(self._uc.mem_read(self.g_cfg, CFG_SIZE))

    def pin(self, struct_bytes: bytes, index: int) -> tuple[int, int, int] | None:
        """(role, channel, channel2) of pin `index` through the firmware's own PIN_Get...ForPinIndex, or
        None where the firmware refuses the index (it logs "out of range")."""
        self._reset()
        self._uc.mem_write(self.g_cfg, bytes(struct_bytes[:CFG_SIZE]))
        out = []
        for name in ("PinRole", "PinChannel", "PinChannel2"):
            before = len(self._state.logs)
            v = self._call(self.pin_get[name], index)
            if len(self._state.logs) > before:
                return None
            out.append(v & 0xFF)
        return out[0], out[1], out[2]

    def string_setters(self) -> dict[int, int]:
        """{offset in g_cfg: bytes written} for every function of the build that copies its string argument
        into g_cfg (the CFG_Set... setters: strcpy_safe_checkForChanges(g_cfg.field, s, sizeof field)).
        Found by running every function that loads a g_cfg field address in its first instructions with a
        3000-character argument: what it writes shows where the field starts and how long it is."""
        arg = RAM + 0x10000
        found: dict[int, int] = {}
        for entry in self._bl_targets:
            if not self._loads_cfg_field(entry):
                continue
            self._reset()
            self._uc.mem_write(self.g_cfg, b"\xee" * CFG_SIZE)
            self._uc.mem_write(arg, b"A" * 3000 + b"\0")
            try:
                self._call(entry, arg, 0, 0, 0, count=200_000)
            except (HarnessError, unicorn.UcError):
                continue
            after = bytes(self._uc.mem_read(self.g_cfg, CFG_SIZE))
            written = [i for i, b in enumerate(after) if b != 0xEE]
            if len(written) > 1 and written == list(range(written[0], written[-1] + 1)) \
                    and after[written[0]] == ord("A"):
                found[written[0]] = len(written)
        return found

    def _loads_cfg_field(self, entry: int) -> bool:
        for a in range(entry, entry + 24, 2):
            hw = self._halves[(a - BASE) // 2]
            if hw & 0xF800 == 0x4800:
                v = self.u32(((a + 4) & ~3) + (hw & 0xFF) * 4)
                if self.g_cfg < v < self.g_cfg + CFG_SIZE or v == self.g_cfg:
                    return True
        return False

    def flag_bits(self) -> dict[int, tuple[int, int]]:
        """{flag number: (offset in g_cfg, bit)} through the firmware's CFG_SetFlag: the function that
        CFG_SetDefaultConfig calls with (10, 1) (OBK_FLAG_MQTT_BROADCASTSELFSTATEONCONNECT, true)."""
        seen: list[tuple[int, int, int]] = []
        hooks = []
        for target in sorted({t for _s, t in self._calls(self.set_default)}):
            def cb(uc, address, size, data, target=target):
                seen.append((target, uc.reg_read(A.UC_ARM_REG_R0), uc.reg_read(A.UC_ARM_REG_R1)))
            hooks.append(self._uc.hook_add(unicorn.UC_HOOK_CODE, cb, begin=target, end=target))
        try:
            self.defaults(b"\0" * 6)
        finally:
            for h in hooks:
                self._uc.hook_del(h)
        setters = [t for t, r0, r1 in seen if (r0, r1) == (10, 1)]
        if not setters:
            raise HarnessError("CFG_SetFlag not found")
        set_flag = setters[0]  # the first call made with (10, 1); the next callee may inherit the registers
        out = {}
        for bit in range(64):
            self._reset()
            try:
                self._call(set_flag, bit, 1)
            except (HarnessError, unicorn.UcError):
                continue  # a flag whose change reaches hardware at once (12: LED state): not judged here
            after = bytes(self._uc.mem_read(self.g_cfg, CFG_SIZE))
            changed = [(i, b) for i, b in enumerate(after) if b]
            if len(changed) == 1 and bin(changed[0][1]).count("1") == 1:
                out[bit] = (changed[0][0], changed[0][1].bit_length() - 1)
        return out

    def pin_limit(self, struct_bytes: bytes = b"\0" * CFG_SIZE) -> int:
        """PLATFORM_GPIO_MAX as the build applies it: the first index its accessors refuse."""
        index = 0
        while self.pin(struct_bytes, index) is not None:
            index += 1
            if index > 64:
                raise HarnessError("the pin accessors refuse no index")
        return index


_cache: dict[Path, Firmware] = {}


def firmware(path: Path, chip: str) -> Firmware:
    """The build at `path` (an OpenBK UG package for `chip`), analysed once per process."""
    if path not in _cache:
        _cache[path] = Firmware(path, chip)
    return _cache[path]
