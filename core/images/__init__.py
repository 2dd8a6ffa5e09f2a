"""Firmware images: recognition, OTA (RBL/UG) parsing, UART image builders, release download."""

from __future__ import annotations

from .recognize import ImageInfo, WritePlan, check_compatible, plan_write, recognize, unrotate

__all__ = ["ImageInfo", "WritePlan", "check_compatible", "plan_write", "recognize", "unrotate"]
