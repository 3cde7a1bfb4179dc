"""``srlive profile``: validate a profile and its Micro-Manager configuration."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    prof = sub.add_parser("profile", help="validate a profile and its Micro-Manager config")
    prof.add_argument("profile", nargs="?", default=None)


def cmd(args: argparse.Namespace) -> int:
    from srlive.hardware.connect import connect
    from srlive.profiles import load_profile

    profile = load_profile(args.profile)
    scope = connect(profile)
    try:
        limits = scope.profile.limits  # the profile's limits met by the devices' own
        power = ", ".join(f"{line}: {mw:g}" for line, mw in sorted(limits.max_power_mw.items()))
        print(
            f"{profile.source}: ok ({len(scope.core.getLoadedDevices())} devices, "
            f"lasers {profile.laser_lines}, camera {scope.frame_shape}, max power mW {{{power}}}, "
            f"exposure {limits.min_exposure_ms:g}–{limits.max_exposure_ms:g} ms)"
        )
    finally:
        scope.core.unloadAllDevices()
    return 0
