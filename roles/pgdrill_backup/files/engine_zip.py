"""Pack pgdrill's engine (a directory of .py files and its sub-packages, the Django app left out)
into one zip that Python imports from.

    engine_zip.py SOURCE_DIR OUTPUT.zip

Run on the controller by the pgdrill_backup role. The same sources always give the same bytes (sorted
names, fixed times and modes), so the copy to each host changes only when the engine does.
"""

import os
import sys
import zipfile


def main(source: str, output: str) -> int:
    names = []
    for directory, subdirs, files in os.walk(source):
        subdirs[:] = sorted(name for name in subdirs if name not in ("contrib", "__pycache__"))
        names += [os.path.relpath(os.path.join(directory, name), source).replace(os.sep, "/") for name in files if name.endswith(".py")]
    names.sort()
    if "cli.py" not in names:
        print(f"{source} does not hold pgdrill's engine (no cli.py): set pgdrill_backup_engine_src", file=sys.stderr)
        return 2
    partial = output + ".partial"
    with zipfile.ZipFile(partial, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(f"pgdrill/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(source, name), "rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=6)
    os.replace(partial, output)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]) if len(sys.argv) == 3 else 2)
