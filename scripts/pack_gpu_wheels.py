"""Pack what the GPU machine lacks into one small archive, `.gpu/site.tar.xz`, that device scripts unpack to
/tmp/site (scripts/device_site.sh); carry `.gpu`. The device tool carries the tracked tree and this archive in
64 MiB, so ViZDoom's 121 MB wheel is trimmed to what headless frame generation uses, losslessly for the frames:

- freedoom1.wad and the bundled scenarios go (only Freedoom2's maps are played on the GPU machine);
- freedoom2.wad loses its sound effects and music (relickit.doom turns sound off);
- ICU's three libraries (27 MB of data, 17 MB of code; 1.6 MB compressed) become stubs exporting what the loader
  resolves: ViZDoom links boost_regex, which links ICU for its Unicode regex classes, but never uses them. The
  stubs' functions abort, so a call into ICU would stop the frame generation rather than change its frames.
- diffusers loses its pipelines (20 of its 30 MB): relickit uses its Wan autoencoder alone, and diffusers imports a
  submodule only when a name from it is asked for.
Frames generated with the silenced WAD and the ICU stubs are byte-identical to the full wheel's (docs/runs/campaign.md).

    python scripts/pack_gpu_wheels.py --wheels VIZDOOM_CP312.whl diffusers-*.whl importlib_metadata-*.whl

Every other wheel is unpacked as it is. Needs gcc and xz.
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

DROP = ("vizdoom/freedoom1.wad", "vizdoom/scenarios/",  # vizdoom/__init__ lists scenarios/: it stays, empty
        "diffusers/pipelines/", "diffusers/modular_pipelines/")  # imported lazily, by name, and never by relickit
SILENT_LUMPS = (b"DS", b"DP", b"D_")  # sound effects, PC-speaker sounds, music
# what the loader resolves in ICU 60 (ViZDoom 1.3.2's): the data library's table (read by the real libicuuc only),
# and the functions libboost_regex imports (`nm -D --undefined-only`; it is linked with BIND_NOW)
ICU_STUBS = {
    "libicudata": {"data": ("icudt60_dat",), "functions": ()},
    "libicuuc": {"data": (), "functions": ("u_charFromName_60", "u_charType_60", "u_digit_60", "u_isblank_60",
                                           "u_isspace_60", "u_tolower_60", "_ZN6icu_606LocaleC1ERKS0_",
                                           "_ZN6icu_606LocaleC1Ev", "_ZN6icu_606LocaleD1Ev")},
    "libicui18n": {"data": (), "functions": ("_ZN6icu_608Collator14createInstanceERKNS_6LocaleER10UErrorCode",)},
}


def silence_wad(data: bytes) -> bytes:
    """The WAD without its sound and music lumps (directory rewritten, other lumps byte for byte)."""
    kind, count, offset = struct.unpack_from("<4sii", data)
    lumps = []
    for i in range(count):
        pos, size, name = struct.unpack_from("<ii8s", data, offset + 16 * i)
        if not name.startswith(SILENT_LUMPS) or size == 0:
            lumps.append((name, data[pos:pos + size]))
    body, directory, pos = bytearray(), bytearray(), 12
    for name, lump in lumps:
        directory += struct.pack("<ii8s", pos if lump else 0, len(lump), name)
        body += lump
        pos += len(lump)
    return struct.pack("<4sii", kind, len(lumps), pos) + bytes(body) + bytes(directory)


def icu_stub(soname: str, workdir: Path) -> bytes:
    """A shared library named `soname` exporting the symbols ICU_STUBS lists for it: zeroed data, aborting functions."""
    stub = next(v for k, v in ICU_STUBS.items() if soname.startswith(k + "-") or soname.startswith(k + "."))
    lines = ["#include <stdlib.h>"] + [f"const char {name}[16] = {{0}};" for name in stub["data"]]
    for i, name in enumerate(stub["functions"]):
        lines += [f'void stub{i}(void) __asm__("{name}");', f"void stub{i}(void) {{ abort(); }}"]
    src = workdir / "icu_stub.c"
    src.write_text("\n".join(lines) + "\n")
    out = workdir / soname
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", f"-Wl,-soname,{soname}", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


def members(wheel: Path, workdir: Path):
    """(name, bytes, mode) of a wheel's files, trimmed as the module docstring says."""
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or name.startswith(DROP):
                continue
            data = z.read(info)
            base = Path(name).name
            if base == "freedoom2.wad":
                data = silence_wad(data)
            elif base.startswith(tuple(ICU_STUBS)):
                data = icu_stub(base, workdir)
            yield name, data, (info.external_attr >> 16) & 0o777 or 0o644


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheels", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path(".gpu/site.tar.xz"))
    a = p.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_tar = Path(tmp) / "site.tar"
        with tarfile.open(tmp_tar, "w") as tar:
            empty = tarfile.TarInfo("vizdoom/scenarios")
            empty.type, empty.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(empty)
            for wheel in a.wheels:
                for name, data, mode in members(wheel, Path(tmp)):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), mode
                    tar.addfile(info, fileobj=io.BytesIO(data))
        partial = a.out.with_suffix(".partial")
        with open(partial, "wb") as f:
            subprocess.run(["xz", "-9e", "-T0", "-c", str(tmp_tar)], stdout=f, check=True)
        partial.replace(a.out)
    print(f"{a.out}: {a.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
