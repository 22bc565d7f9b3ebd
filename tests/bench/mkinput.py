#!/usr/bin/env python3
"""Inputs for tests/bench/run.sh. Nothing here is timed.

  mkinput.py layers OUTDIR CAP_MB:DIR[,DIR...] ...
      One uncompressed layer tar per argument (OUTDIR/layer1.tar, layer2.tar, ...), holding the
      regular files found under the DIRs in name order until CAP_MB megabytes (1e6 bytes); a file
      is never in two layers. Then OUTDIR/layerN.tar with one pseudo-random 100 KB file, the
      "small blob" the serving benchmark fetches. umoci adds these tars to the image.

  mkinput.py big OUT.tar SIZE_MB
      A docker-archive (skopeo layout: manifest.json, config, one layer tar) whose only layer holds
      one pseudo-random file of SIZE_MB megabytes, written in one streaming pass (the layer's
      diff_id is hashed on the way; the metadata follows the layer, as in every docker save).
"""
import hashlib
import io
import json
import os
import random
import sys
import tarfile

MB = 1000 * 1000


def tarinfo(name, size, mode=0o644, mtime=0):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, mode, mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def layers(outdir, specs):
    os.makedirs(outdir, exist_ok=True)
    seen = set()
    n = 0
    for spec in specs:
        cap_mb, dirs = spec.split(":", 1)
        cap = int(cap_mb) * MB
        files, total = [], 0
        for top in dirs.split(","):
            if not os.path.isdir(top) or os.path.islink(top):
                continue
            for root, dnames, fnames in os.walk(top):
                dnames.sort()
                for f in sorted(fnames):
                    p = os.path.join(root, f)
                    if p in seen or os.path.islink(p) or not os.path.isfile(p):
                        continue
                    try:
                        size = os.path.getsize(p)
                        if not os.access(p, os.R_OK):
                            continue
                    except OSError:
                        continue
                    if total + size > cap:
                        continue
                    files.append(p)
                    seen.add(p)
                    total += size
                if total >= cap * 0.999:
                    break
            if total >= cap * 0.999:
                break
        n += 1
        with tarfile.open(os.path.join(outdir, "layer%d.tar" % n), "w",
                          format=tarfile.PAX_FORMAT) as tf:
            for p in files:
                st = os.stat(p)
                with open(p, "rb") as fh:
                    tf.addfile(tarinfo(p.lstrip("/"), st.st_size, st.st_mode & 0o7777,
                                       int(st.st_mtime)), fh)
        print("layer%d: %d files, %.1f MB from %s" % (n, len(files), total / MB, dirs))
    n += 1
    data = random.Random(100).randbytes(100 * 1000)
    with tarfile.open(os.path.join(outdir, "layer%d.tar" % n), "w",
                      format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(tarinfo("srv/blob100k.bin", len(data)), io.BytesIO(data))
    print("layer%d: one pseudo-random 100 KB file" % n)


class LayerStream(io.RawIOBase):
    """The bytes of a layer tar holding one pseudo-random file, hashed as they are read."""

    def __init__(self, size):
        super().__init__()
        head = tarinfo("data/big.bin", size).tobuf(format=tarfile.USTAR_FORMAT)
        pad = (512 - size % 512) % 512
        self.parts = [("bytes", head), ("random", size), ("bytes", b"\0" * (pad + 1024))]
        self.total = len(head) + size + pad + 1024
        self.rng = random.Random(2)
        self.pool = b""
        self.sha = hashlib.sha256()

    def readable(self):
        return True

    def read(self, n=-1):
        out = bytearray()
        while self.parts and (n < 0 or len(out) < n):
            kind, val = self.parts[0]
            want = (1 << 20) if n < 0 else n - len(out)
            if kind == "bytes":
                take, rest = val[:want], val[want:]
                self.parts[0] = (kind, rest)
                out += take
                if not rest:
                    self.parts.pop(0)
            else:
                take = min(want, val)
                while len(self.pool) < take:
                    self.pool += self.rng.randbytes(1 << 20)
                out += self.pool[:take]
                self.pool = self.pool[take:]
                val -= take
                self.parts[0] = (kind, val)
                if not val:
                    self.parts.pop(0)
        self.sha.update(out)
        return bytes(out)


def big(out, size_mb):
    layer = LayerStream(int(size_mb) * MB)
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
        tf.addfile(tarinfo("layer.tar", layer.total), layer)
        diff_id = "sha256:" + layer.sha.hexdigest()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        config = json.dumps({"architecture": arch, "os": "linux",
                             "config": {"Cmd": ["/bin/true"]},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                             "history": [{"created_by": "regpress bench"}]},
                            separators=(",", ":")).encode()
        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        tf.addfile(tarinfo(cfg_name, len(config)), io.BytesIO(config))
        manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["bench/big:1"],
                                "Layers": ["layer.tar"]}]).encode()
        tf.addfile(tarinfo("manifest.json", len(manifest)), io.BytesIO(manifest))
    os.rename(tmp, out)
    print("%s: one layer of %s MB" % (out, size_mb))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "layers":
        layers(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "big":
        big(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
