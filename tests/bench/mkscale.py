#!/usr/bin/env python3
"""A docker-archive (`docker save` of Docker <= 24, legacy layout) with N small one-layer images in R
repositories, for the scale part of `make bench`: image i is scale/r<i % R>:t<i // R>, with a
layer of one small file of its own. Deterministic: the same arguments give the same bytes.

    mkscale.py OUT.tar N R [FIRST]      (FIRST: number of the first image, default 0)
"""
import hashlib
import io
import json
import sys
import tarfile


def add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.mode = 0o644
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def layer(i):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as lt:
        add(lt, "etc/image", ("image %d\n" % i).encode())
    return buf.getvalue()


def main():
    out, n, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    manifest = []
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(first, first + n):
            data = layer(i)
            diff = hashlib.sha256(data).hexdigest()
            cfg = json.dumps({"architecture": "amd64", "os": "linux",
                              "created": "1970-01-01T00:00:00Z",
                              "config": {"Cmd": ["/bin/true"]},
                              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}},
                             separators=(",", ":")).encode()
            cfg_hex = hashlib.sha256(cfg).hexdigest()
            add(tf, diff + "/layer.tar", data)
            add(tf, cfg_hex + ".json", cfg)
            manifest.append({"Config": cfg_hex + ".json",
                             "RepoTags": ["scale/r%d:t%d" % (i % r, i // r)],
                             "Layers": [diff + "/layer.tar"]})
        add(tf, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())


main()
