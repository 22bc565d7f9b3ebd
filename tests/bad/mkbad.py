#!/usr/bin/env python3
"""Write the bad-input corpus (issue 8) from real, good archives.

usage: mkbad.py OUTDIR APP.tar OCI.tar [BOMB_MIB]

  APP.tar   a docker-archive written by `skopeo copy ... docker-archive:` (tests/e2e/lib.sh
            e2e_fixtures app.tar: one image, two layers, two tags)
  OCI.tar   an oci-archive written by `skopeo copy ... oci-archive:` (gzip layers)
  BOMB_MIB  size of the zero-filled layer in the gzip bomb, in MiB (default 10240 = 10 GiB)

Each case becomes OUTDIR/<case>.tar (or .tar.gz, another compression's suffix, or a directory for
OCI layout directories); the expected outcome of each is in tests/bad/cases.txt, which names every
case this script writes. Nothing here is random: the same inputs give the same corpus. The cases
of issue 17 (sparse entries, names, compressions, messages, digests in names, trees as input) have
tar members written by hand where python's tarfile cannot write them.
"""
import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Member:
    def __init__(self, name, data=b"", kind="file", link=""):
        self.name, self.data, self.kind, self.link = name, data, kind, link


def read_tar(path):
    out = []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.isfile():
                out.append(Member(m.name, t.extractfile(m).read()))
            elif m.issym():
                out.append(Member(m.name, kind="sym", link=m.linkname))
            elif m.islnk():
                out.append(Member(m.name, kind="hard", link=m.linkname))
            elif m.isdir():
                out.append(Member(m.name, kind="dir"))
    return out


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            ti = tarfile.TarInfo(m.name)
            ti.mtime = 0
            ti.mode = 0o644
            if m.kind == "file":
                ti.size = len(m.data)
                t.addfile(ti, io.BytesIO(m.data))
            else:
                ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                           "dir": tarfile.DIRTYPE}[m.kind]
                ti.linkname = m.link
                ti.mode = 0o755 if m.kind == "dir" else 0o777
                t.addfile(ti)
    return buf.getvalue()


def member_bytes(m):
    """One member as it sits in a tar: header blocks, data, padding to 512 bytes."""
    one = tar_bytes([m])
    with tarfile.open(fileobj=io.BytesIO(one)) as t:
        ti = t.getmembers()[0]
    end = ti.offset_data + ((ti.size + 511) // 512) * 512
    return one[:end]


def get(members, name):
    for m in members:
        if m.name == name:
            return m
    raise KeyError(name)


def replace(members, name, data):
    return [Member(m.name, data, m.kind, m.link) if m.name == name else m for m in members]


def without(members, name):
    return [m for m in members if m.name != name]


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


# -- issue 17: hand-made tar members regpress's writers (python's tarfile) cannot write

def octal(value, width):
    """A tar number field: octal, or base-256 (GNU) when it does not fit."""
    digits = "%o" % value
    if len(digits) < width:
        return digits.rjust(width - 1, "0").encode() + b"\0"
    return b"\x80" + value.to_bytes(width - 1, "big")


def gnu_sparse_member(name, realsize, regions):
    """A GNU 'S' (old GNU sparse) member: regions [(offset, data)] (at most 4), realsize bytes
    in all, the rest holes; as `tar -S --format=gnu` writes it."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = octal(sum(len(d) for _, d in regions), 12)
    h[136:148] = octal(0, 12)
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    for i, (off, data) in enumerate(regions):
        h[386 + 24 * i:398 + 24 * i] = octal(off, 12)
        h[398 + 24 * i:410 + 24 * i] = octal(len(data), 12)
    h[483:495] = octal(realsize, 12)
    h[148:156] = b" " * 8
    h[148:156] = ("%06o" % sum(h)).encode() + b"\0 "
    data = b"".join(d for _, d in regions)
    return bytes(h) + data + bytes(-len(data) % 512)


def pax_sparse_member(name, realsize, regions, map_text=None):
    """A GNU sparse 1.0 member in a pax archive (what `tar -S --format=posix` writes): the map as
    decimal lines before the data. map_text replaces the map made from regions."""
    if map_text is None:
        map_text = ("%d\n" % len(regions) + "".join("%d\n%d\n" % (off, len(d))
                                                    for off, d in regions)).encode()
    body = map_text + bytes(-len(map_text) % 512) + b"".join(d for _, d in regions)
    ti = tarfile.TarInfo("GNUSparseFile.0/" + name[-60:])
    ti.size, ti.mtime, ti.mode = len(body), 0, 0o644
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}
    return ti.tobuf(format=tarfile.PAX_FORMAT) + body + bytes(-len(body) % 512)


def gnu_member(name, data=b"", kind="file", link=b"", fmt=tarfile.GNU_FORMAT):
    """A member with a name of raw bytes (latin-1 keeps them as they are; tarfile would
    re-encode a str); GNU format unless fmt says otherwise."""
    ti = tarfile.TarInfo(name.decode("latin-1"))
    ti.mtime, ti.mode, ti.size = 0, 0o644, len(data)
    if kind == "sym":
        ti.type, ti.linkname, ti.size, data = tarfile.SYMTYPE, link.decode("latin-1"), 0, b""
    return ti.tobuf(format=fmt, encoding="latin-1") + data + bytes(-len(data) % 512)


def with_tail(members, *tail):
    """The tar of members with raw members appended before the end-of-archive blocks."""
    body = b"".join(member_bytes(m) for m in members)
    return body + b"".join(tail) + bytes(1024)


class Corpus:
    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)

    def raw(self, name, data):
        with open(os.path.join(self.outdir, name), "wb") as f:
            f.write(data)

    def tar(self, case, members):
        self.raw(case + ".tar", tar_bytes(members))

    def directory(self, case, members):
        root = os.path.join(self.outdir, case)
        os.makedirs(root, exist_ok=True)
        for m in members:
            p = os.path.join(root, m.name)
            if m.kind == "dir":
                os.makedirs(p, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if m.kind == "sym":
                os.symlink(m.link, p)
            elif m.kind == "fifo":
                os.mkfifo(p)
            else:
                with open(p, "wb") as f:
                    f.write(m.data)


def docker_cases(c, app):
    man_m = get(app, "manifest.json")
    manifest = json.loads(man_m.data)
    img = manifest[0]
    cfg_name, layers = img["Config"], img["Layers"]
    good = tar_bytes(app)

    def with_manifest(m):
        return replace(app, "manifest.json", json.dumps(m).encode())

    def with_image(**kw):
        m = json.loads(man_m.data)
        m[0].update(kw)
        return with_manifest(m)

    # -- the tar itself
    with tarfile.open(fileobj=io.BytesIO(good)) as t:
        offsets = {m.name: (m.offset, m.offset_data, m.size) for m in t.getmembers()}
    hdr, data, size = offsets[layers[1]]
    c.raw("trunc-header.tar", good[:hdr + 100])        # inside a (pax) header block
    c.raw("trunc-layer.tar", good[:data + size // 2])  # inside a layer's bytes
    c.raw("not-a-tar.tar", b"This is not a tar archive, just some text.\n" * 40)
    c.raw("empty.tar", b"")
    c.raw("zeros.tar", bytes(10240))                    # only end-of-archive blocks

    # -- one flipped byte
    # in a layer: a byte of file content in the middle of the second layer
    lay = get(app, layers[1]).data
    c.tar("flip-layer", replace(app, layers[1], flip(lay, 600)))
    # in the config: a byte of its JSON (its name no longer matches its digest)
    cfg = get(app, cfg_name).data
    c.tar("flip-config", replace(app, cfg_name, flip(cfg, len(cfg) // 2)))
    # in manifest.json: its syntax ('[' -> 'Z'), and a character of the config's path
    c.tar("flip-manifest-syntax", replace(app, "manifest.json", flip(man_m.data, 0)))
    pos = man_m.data.index(cfg_name.encode()) + 10
    c.tar("flip-manifest-path", replace(app, "manifest.json", flip(man_m.data, pos)))

    # -- manifest.json itself
    c.tar("manifest-null", replace(app, "manifest.json", b"null"))
    c.tar("manifest-empty-array", replace(app, "manifest.json", b"[]"))
    c.tar("manifest-absent", without(app, "manifest.json"))
    c.tar("manifest-not-json", replace(app, "manifest.json", b"this is not JSON\n"))
    c.tar("manifest-object", replace(app, "manifest.json", b'{"Config":"x"}'))
    c.tar("manifest-item-not-object", replace(app, "manifest.json", b"[42]"))
    c.tar("manifest-no-config", with_manifest([{"RepoTags": img["RepoTags"],
                                                "Layers": layers}]))
    c.tar("manifest-duplicate-key", replace(app, "manifest.json", man_m.data.replace(
        b'"RepoTags"', b'"Layers":[],"RepoTags"', 1)))
    c.tar("repotags-null", with_image(RepoTags=None))
    c.tar("repotags-not-array", with_image(RepoTags="app:1"))
    c.tar("repotags-item-not-string", with_image(RepoTags=[7]))

    # -- paths that leave the archive
    c.tar("config-absolute", with_image(Config="/" + cfg_name))
    c.tar("config-dotdot", with_image(Config="../" + cfg_name))
    c.tar("config-dotdot-inner", with_image(Config="a/../../" + cfg_name))
    c.tar("layer-absolute", with_image(Layers=["/etc/passwd", layers[1]]))
    c.tar("layer-dotdot", with_image(Layers=[layers[0], "../../../etc/passwd"]))
    evil = app + [Member("evil/layer.tar", kind="sym", link="../../../../etc/passwd")]
    c.tar("layer-symlink-outside", replace(evil, "manifest.json", json.dumps(
        [dict(img, Layers=[layers[0], "evil/layer.tar"])]).encode()))
    evil = app + [Member("evil/layer.tar", kind="sym", link="/etc/passwd")]
    c.tar("layer-symlink-absolute", replace(evil, "manifest.json", json.dumps(
        [dict(img, Layers=[layers[0], "evil/layer.tar"])]).encode()))
    evil = app + [Member("evil.json", kind="sym", link="../etc/passwd")]
    c.tar("config-symlink-outside", replace(evil, "manifest.json", json.dumps(
        [dict(img, Config="evil.json")]).encode()))
    evil = app + [Member("evil/layer.tar", kind="hard", link="../etc/shadow")]
    c.tar("layer-hardlink-outside", replace(evil, "manifest.json", json.dumps(
        [dict(img, Layers=[layers[0], "evil/layer.tar"])]).encode()))
    loop = app + [Member("loop/a.tar", kind="sym", link="b.tar"),
                  Member("loop/b.tar", kind="sym", link="../loop/a.tar")]
    c.tar("layer-symlink-loop", replace(loop, "manifest.json", json.dumps(
        [dict(img, Layers=[layers[0], "loop/a.tar"])]).encode()))
    selfloop = app + [Member("self.tar", kind="sym", link="self.tar")]
    c.tar("layer-symlink-self", replace(selfloop, "manifest.json", json.dumps(
        [dict(img, Layers=["self.tar", layers[1]])]).encode()))
    dangling = app + [Member("dangling.tar", kind="sym", link="nowhere/layer.tar")]
    c.tar("layer-symlink-dangling", replace(dangling, "manifest.json", json.dumps(
        [dict(img, Layers=[layers[0], "dangling.tar"])]).encode()))
    c.tar("layer-is-directory", replace(app + [Member("somedir", kind="dir")], "manifest.json",
                                        json.dumps([dict(img, Layers=[layers[0], "somedir"])])
                                        .encode()))

    # -- content that does not add up
    c.tar("layer-absent", without(app, layers[1]))
    c.tar("layer-listed-not-present", with_image(Layers=[layers[0], "f" * 64 + ".tar"]))
    c.tar("config-absent", without(app, cfg_name))

    def with_config(cfg_obj, extra_img=None):
        data = json.dumps(cfg_obj, separators=(",", ":")).encode()
        name = sha(data) + ".json"
        ms = [m for m in app if m.name != cfg_name] + [Member(name, data)]
        m = dict(img, Config=name)
        if extra_img:
            m.update(extra_img)
        return replace(ms, "manifest.json", json.dumps([m]).encode())

    more = json.loads(cfg)
    more["rootfs"]["diff_ids"].append("sha256:" + "0" * 64)
    c.tar("diffids-more", with_config(more))
    c.tar("diffids-fewer-layers", with_image(Layers=layers[:1]))
    swapped = json.loads(cfg)
    swapped["rootfs"]["diff_ids"].reverse()
    c.tar("diffids-order", with_config(swapped))
    nodiff = json.loads(cfg)
    del nodiff["rootfs"]
    c.tar("config-no-rootfs", with_config(nodiff))
    badid = json.loads(cfg)
    badid["rootfs"]["diff_ids"][0] = "md5:abc"
    c.tar("diffid-not-sha256", with_config(badid))
    c.tar("config-not-object", with_config([1, 2, 3]))

    # -- the same name twice, different bytes
    c.tar("dup-manifest", app + [Member("manifest.json", b"[]")])
    c.tar("dup-layer", app + [Member(layers[1], flip(lay, 600))])
    c.tar("dup-layer-dotslash", app + [Member("./" + layers[1], flip(lay, 600))])
    c.tar("dup-config-symlink", app + [Member(cfg_name, kind="sym", link=layers[0])])

    # -- JSON too big or too deep (the tar is gzip-compressed: 17 MiB of JSON is ~20 KiB)
    huge = b'[{"Config":"' + cfg_name.encode() + b'","RepoTags":null,"Layers":[],"X":"' + \
        b"A" * (17 << 20) + b'"}]'
    c.raw("json-huge-manifest.tar.gz", gzip.compress(tar_bytes(
        replace(app, "manifest.json", huge)), 9, mtime=0))
    c.tar("json-deep-manifest", replace(app, "manifest.json", b"[" * 100000 + b"]" * 100000))
    c.tar("json-deep-manifest-3000", replace(app, "manifest.json", b"[" * 3000 + b"]" * 3000))
    deep_cfg = b'{"rootfs":' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep_name = sha(deep_cfg) + ".json"
    c.tar("json-deep-config", replace(app + [Member(deep_name, deep_cfg)], "manifest.json",
                                      json.dumps([dict(img, Config=deep_name)]).encode()))
    big_cfg = b'{"x":"' + b"B" * (17 << 20) + b'"}'
    big_name = sha(big_cfg) + ".json"
    c.raw("json-huge-config.tar.gz", gzip.compress(tar_bytes(
        replace(app + [Member(big_name, big_cfg)], "manifest.json",
                json.dumps([dict(img, Config=big_name)]).encode())), 9, mtime=0))
    many = [dict(img) for _ in range(3)]
    many[1]["RepoTags"] = ["t%d:%d" % (i, i) for i in range(5000)]
    c.tar("too-many-tags", with_manifest(many))

    # -- names
    for case, tag in [("name-uppercase", "Example.com/Team/App:1"),
                      ("name-dotdot", "example.com/../../etc:1"),
                      ("name-slash-dotdot", "a/../b:1"),
                      ("name-empty-component", "a//b:1"),
                      ("name-leading-dash", "-app:1"),
                      ("name-too-long", "a" * 300 + ":1"),
                      ("name-space", "my app:1"),
                      ("name-underscore-blobs", "app/_blobs:1"),
                      ("tag-empty", "app:"),
                      ("tag-bad-char", "app:v1/../../x"),
                      ("tag-leading-dot", "app:.hidden"),
                      ("tag-too-long", "app:" + "t" * 129),
                      ("digest-bad", "app@sha256:xyz"),
                      ("name-nul-escape", "app\u0000evil:1"),
                      ("name-newline", "app\nevil:1"),
                      ("name-registry-after-docker-io", "docker.io/example.com/app:1")]:
        c.tar(case, with_image(RepoTags=[tag]))

    return good


def oci_cases(c, oci):
    index = json.loads(get(oci, "index.json").data)
    desc = index["manifests"][0]
    mhex = desc["digest"][7:]
    mname = "blobs/sha256/" + mhex
    mdata = get(oci, mname).data
    manifest = json.loads(mdata)
    layer = manifest["layers"][-1]
    lname = "blobs/sha256/" + layer["digest"][7:]

    def with_index(ix):
        return replace(oci, "index.json", json.dumps(ix).encode())

    def with_manifest(m):
        data = json.dumps(m, separators=(",", ":")).encode()
        ms = oci + [Member("blobs/sha256/" + sha(data), data)]
        ix = json.loads(json.dumps(index))
        ix["manifests"][0].update(digest="sha256:" + sha(data), size=len(data))
        return replace(ms, "index.json", json.dumps(ix).encode())

    c.tar("oci-index-not-json", replace(oci, "index.json", b"{not json"))
    c.tar("oci-index-null", replace(oci, "index.json", b"null"))
    c.tar("oci-index-no-manifests", with_index({"schemaVersion": 2}))
    c.tar("oci-index-empty", with_index({"schemaVersion": 2, "manifests": []}))
    for case, digest in [("oci-desc-bad-digest", "sha256:xyz"),
                         ("oci-desc-digest-uppercase", "sha256:" + mhex.upper()),
                         ("oci-desc-digest-md5", "md5:" + mhex[:32]),
                         ("oci-desc-digest-dotdot", "sha256:../../../../etc/passwd")]:
        ix = json.loads(json.dumps(index))
        ix["manifests"][0]["digest"] = digest
        c.tar(case, with_index(ix))
    ix = json.loads(json.dumps(index))
    ix["manifests"][0]["size"] = desc["size"] + 1
    c.tar("oci-desc-size-mismatch", with_index(ix))
    ix = json.loads(json.dumps(index))
    ix["manifests"][0]["size"] = -1
    c.tar("oci-desc-size-negative", with_index(ix))
    ix = json.loads(json.dumps(index))
    ix["manifests"][0]["digest"] = "sha256:" + "e" * 64
    c.tar("oci-desc-absent", with_index(ix))
    # the manifest blob's bytes do not hash to its name
    c.tar("oci-manifest-digest-mismatch", replace(oci, mname, flip(mdata, len(mdata) // 2)))
    c.tar("oci-manifest-not-json", with_manifest_bytes(oci, index, b"not json at all"))
    # a layer whose size differs from its descriptor (manifest rewritten consistently)
    m = json.loads(mdata)
    m["layers"][-1]["size"] = layer["size"] + 1
    c.tar("oci-layer-size-mismatch", with_manifest(m))
    # a layer whose bytes do not hash to its name
    ldata = get(oci, lname).data
    c.tar("oci-layer-flipped", replace(oci, lname, flip(ldata, len(ldata) // 2)))
    c.tar("oci-layer-absent", without(oci, lname))
    m = json.loads(mdata)
    m["config"]["digest"] = "sha256:" + "c" * 64
    c.tar("oci-config-absent", with_manifest(m))
    # a directory layout whose blob is a symlink out of the layout
    evil = without(oci, lname) + [Member(lname, kind="sym", link="/etc/passwd")]
    c.directory("oci-dir-blob-symlink-outside", evil)
    # FIFOs in a layout directory: nothing may open them (an open would wait for a writer)
    c.directory("oci-dir-blob-fifo", without(oci, lname) + [Member(lname, kind="fifo")])
    c.directory("oci-dir-index-fifo", without(oci, "index.json") + [Member("index.json",
                                                                           kind="fifo")])
    c.tar("oci-blob-symlink-outside",
          without(oci, lname) + [Member(lname, kind="sym", link="../../../etc/passwd")])
    # an index whose only child descriptor is malformed
    c.tar("oci-nested-index-bad-child", with_manifest_bytes(oci, index, b"", json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:../../etc/passwd", "size": 10}]}).encode()))
    huge = b'{"schemaVersion":2,"manifests":[],"x":"' + b"A" * (17 << 20) + b'"}'
    c.raw("oci-index-huge.tar.gz", gzip.compress(tar_bytes(replace(oci, "index.json", huge)),
                                                 9, mtime=0))
    c.tar("oci-index-deep", replace(oci, "index.json", b'{"manifests":' + b"[" * 100000 +
                                    b"]" * 100000 + b"}"))
    # indexes of indexes of indexes... 20 deep around the real manifest (a chain of 100000
    # overflowed the stack before the builder capped the depth at 16)
    ms, d = list(oci), dict(desc)
    for _ in range(20):
        data = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [d]}, separators=(",", ":")).encode()
        ms.append(Member("blobs/sha256/" + sha(data), data))
        d = {"mediaType": "application/vnd.oci.image.index.v1+json",
             "digest": "sha256:" + sha(data), "size": len(data)}
    ix = json.loads(json.dumps(index))
    ix["manifests"][0].update(d)
    c.tar("oci-index-nested-deep", replace(ms, "index.json", json.dumps(ix).encode()))


def sparse_cases(c, app):
    """Sparse entries: what a tar's entries can honestly amount to (issue 17, 1)."""
    img = json.loads(get(app, "manifest.json").data)[0]

    def as_layer(name):
        return replace(app, "manifest.json", json.dumps(
            [dict(img, Layers=[img["Layers"][0], name])]).encode())

    block = b"x" * 512
    # the case: 1 PiB declared in a 24 KiB tar (read at 400 MB/s, a month of both cores)
    c.raw("sparse-pib.tar", with_tail(as_layer("huge.tar"),
                                      pax_sparse_member("huge.tar", 1 << 50, [(0, block)])))
    # 4 GiB of holes: under the absolute cap, far over the archive's 1100 times
    c.raw("sparse-bomb-gnu.tar", with_tail(as_layer("holes.tar"),
                                           gnu_sparse_member("holes.tar", 4 << 30, [(0, block)])))
    # each entry alone under the cap, all of them together far over it
    c.raw("sparse-many.tar", with_tail(app, *[pax_sparse_member("pad/%03d" % i, 64 << 20,
                                                                [(0, block)])
                                              for i in range(100)]))
    # a sparse map of 1M (plain) or 10M (gzip: 40 KB) empty regions, which libarchive parses
    # into memory (~48 bytes each) before it returns the entry
    many = b"1000000\n" + b"0\n0\n" * 1000000
    c.raw("sparse-map-huge.tar", with_tail(app, pax_sparse_member("map", 1024, [], many)))
    many = b"10000000\n" + b"0\n0\n" * 10000000
    c.raw("sparse-map-huge.tar.gz", gzip.compress(
        with_tail(app, pax_sparse_member("map", 1024, [], many)), 9, mtime=0))
    # data placed beyond the entry's declared size
    c.raw("sparse-map-beyond.tar", with_tail(as_layer("beyond.tar"), pax_sparse_member(
        "beyond.tar", 600, [(1024, block)])))
    # a plain (not sparse) entry declaring 8 GiB in a 20 KiB tar
    ti = tarfile.TarInfo("big.tar")
    ti.size, ti.mtime = 8 << 30, 0
    c.raw("entry-size-huge.tar", with_tail(as_layer("big.tar"),
                                           ti.tobuf(format=tarfile.GNU_FORMAT)))


def name_cases(c, app):
    """Names and link targets: each capped, and all of them together (issue 17, 2)."""
    def pax_name(i, length):
        return gnu_member((("%06d" % i) + "n" * (length - 6)).encode(), fmt=tarfile.PAX_FORMAT)

    c.raw("name-entry-long.tar.gz", gzip.compress(pax_name(0, 100000) + bytes(1024), 9,
                                                  mtime=0))
    c.raw("name-gnu-long.tar", with_tail(app, gnu_member(b"L" * 10000)))
    c.raw("name-link-long.tar", with_tail(app, gnu_member(b"link", kind="sym",
                                                          link=b"t/" * 2500)))
    # the case: 200 names of 900 KB in 200 KB (libarchive itself takes up to 1 MB),
    # written as one gzip member repeated
    one = gzip.compress(pax_name(0, 900000), 9, mtime=0)
    c.raw("names-bomb.tar.gz", one * 200 + gzip.compress(bytes(1024), 9, mtime=0))
    # names each under the cap, 80 MB of them together
    c.raw("names-many.tar.gz", gzip.compress(b"".join(pax_name(i, 4000) for i in range(20000))
                                             + bytes(1024), 6, mtime=0))


def compression_cases(c, app):
    """Compressions regpress does not read, some of which libarchive would run a program for
    (issue 17, 5): each named, none run."""
    good = tar_bytes(app)
    junk = bytes(range(256)) * 4
    c.raw("lrzip.tar.lrz", b"LRZI\x00\x06" + (len(good)).to_bytes(8, "little") + junk)
    c.raw("lzop.tar.lzo", b"\x89LZO\x00\r\n\x1a\n\x10\x30\x20\xa0\x09\x40\x03\x05" + junk)
    c.raw("grzip.tar.grz", b"GRZipII\x00\x02\x04:)" + junk)
    c.raw("lz4.tar.lz4", b"\x04\x22\x4d\x18\x64\x40\xa7" + junk)
    c.raw("lzip.tar.lz", b"LZIP\x01\x0c" + junk)
    c.raw("lzma.tar.lzma", lzma.compress(good, format=lzma.FORMAT_ALONE))
    c.raw("compress.tar.Z", b"\x1f\x9d\x90" + junk)
    c.raw("lz4-in-gzip.tar.lz4.gz", gzip.compress(b"\x04\x22\x4d\x18\x64\x40\xa7" + junk, 9,
                                                  mtime=0))


def message_cases(c, app):
    """Names that would drive a terminal or misread: C1 controls in both encodings, invalid
    UTF-8 (overlong ESC, overlong CSI), a right-to-left override (issue 17, 6). Each name appears
    twice, so the message quotes it."""
    for case, name in [("entry-c1-raw", b"evil\x9b2J.tar"),
                       ("entry-c1-utf8", b"evil\xc2\x9b2J.tar"),
                       ("entry-invalid-utf8", b"bad\xff\xfe\xc0\x9b\xe0\x82\x9b.tar"),
                       ("entry-bidi-override", "evil\u202eraj.tar".encode())]:
        c.raw(case + ".tar", with_tail(app, gnu_member(name, b"x"), gnu_member(name, b"y")))
    img = json.loads(get(app, "manifest.json").data)[0]
    c.tar("name-c1-utf8", replace(app, "manifest.json", json.dumps(
        [dict(img, RepoTags=["app\u009b[31m:1"])]).encode()))


def digest_cases(c, app, oci):
    """A digest in a name must be the digest of what it names (issue 17, 8)."""
    img = json.loads(get(app, "manifest.json").data)[0]
    for case, tag in [("repotags-digest", "app@sha256:" + "a" * 64),
                      ("repotags-tag-digest", "app:1@sha256:" + "b" * 64)]:
        c.tar(case, replace(app, "manifest.json", json.dumps(
            [dict(img, RepoTags=[tag])]).encode()))
    index = json.loads(get(oci, "index.json").data)
    index["manifests"][0]["annotations"] = {
        "io.containerd.image.name": "docker.io/library/app@sha256:" + "c" * 64}
    c.tar("oci-name-digest-mismatch", replace(oci, "index.json", json.dumps(index).encode()))


def tree_cases(c, oci):
    """A regpress tree as input (issue 17, 9): read by its registry/snapshot, which is checked."""
    mhex = json.loads(get(oci, "index.json").data)["manifests"][0]["digest"][7:]
    msize = len(get(oci, "blobs/sha256/" + mhex).data)
    mt = "application/vnd.oci.image.manifest.v1+json"

    def tree(snapshot):
        return oci + [Member("registry", kind="dir"), Member("registry/snapshot", snapshot)]

    c.tar("tree-snapshot-not-snapshot", tree(b"this is not a snapshot\n"))
    c.tar("tree-snapshot-tag-astray", tree((
        "regpress-snapshot 1\nmanifest library/app sha256:%s %d %s\n"
        "tag library/app 1 sha256:%s\n" % (mhex, msize, mt, "e" * 64)).encode()))
    c.tar("tree-snapshot-size-wrong", tree((
        "regpress-snapshot 1\nmanifest library/app sha256:%s %d %s\n"
        "tag library/app 1 sha256:%s\n" % (mhex, msize + 1, mt, mhex)).encode()))


def with_manifest_bytes(oci, index, data, real=None):
    """index.json names a manifest blob holding data (real, if given, replaces data)."""
    data = real if real is not None else data
    ms = oci + [Member("blobs/sha256/" + sha(data), data)]
    ix = json.loads(json.dumps(index))
    ix["manifests"][0].update(digest="sha256:" + sha(data), size=len(data))
    if real is not None:
        ix["manifests"][0]["mediaType"] = "application/vnd.oci.image.index.v1+json"
    return replace(ms, "index.json", json.dumps(ix).encode())


def bomb(c, app, mib):
    """A gzip bomb: app.tar's image whose second layer is MiB MiB of zeros, gzip-compressed.
    Written as many gzip members of one compressed 64 MiB chunk, so writing it is fast."""
    manifest = json.loads(get(app, "manifest.json").data)
    layers = manifest[0]["Layers"]
    before = [m for m in app if m.name != layers[1]]
    head = b"".join(member_bytes(m) for m in before)  # no end-of-archive blocks
    ti = tarfile.TarInfo(layers[1])
    ti.size = mib << 20
    ti.mtime = 0
    ti.mode = 0o644
    header = ti.tobuf(format=tarfile.PAX_FORMAT)
    chunk = 64 << 20
    zero_member = gzip.compress(bytes(chunk), 9, mtime=0)
    with open(os.path.join(c.outdir, "gzip-bomb.tar.gz"), "wb") as f:
        f.write(gzip.compress(head + header, 9, mtime=0))
        left = mib << 20
        while left >= chunk:
            f.write(zero_member)
            left -= chunk
        if left:
            f.write(gzip.compress(bytes(left), 9, mtime=0))
        f.write(gzip.compress(bytes(1024), 9, mtime=0))  # end of archive
    # the same bomb as a plain filter over a tar of nothing but zeros (no entries at all)
    with open(os.path.join(c.outdir, "gzip-bomb-zeros.tar.gz"), "wb") as f:
        for _ in range(max(1, mib // 64)):
            f.write(zero_member)
    # bzip2 and xz go far beyond gzip's 1032:1 (bzip2 writes 64 MiB of zeros in 79 bytes): the
    # same bomb, at least 1 GiB, as concatenated streams
    for name, compress in (("bzip2-bomb.tar.bz2", lambda d: bz2.compress(d, 9)),
                           ("xz-bomb.tar.xz", lambda d: lzma.compress(d, preset=1))):
        zero_stream = compress(bytes(chunk))
        with open(os.path.join(c.outdir, name), "wb") as f:
            f.write(compress(head + header))
            for _ in range(max(16, mib // 64)):
                f.write(zero_stream)
            f.write(compress(bytes(1024)))


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    outdir, app_path, oci_path = sys.argv[1:4]
    mib = int(sys.argv[4]) if len(sys.argv) == 5 else 10240
    c = Corpus(outdir)
    app = read_tar(app_path)
    docker_cases(c, app)
    oci = read_tar(oci_path)
    oci_cases(c, oci)
    sparse_cases(c, app)
    name_cases(c, app)
    compression_cases(c, app)
    message_cases(c, app)
    digest_cases(c, app, oci)
    tree_cases(c, oci)
    bomb(c, app, mib)


if __name__ == "__main__":
    main()
