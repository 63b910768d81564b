#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into seeds/<target>/.

The image documents use the placeholders of fuzz_targets/common.rs ($CFG,
$LAYER, $MAN, $DIFF, ... expand to the digests and sizes of fixed blobs in
every archive), so valid seeds get all the way through `hull load`.
Deterministic: rerunning it rewrites the same files.
"""
import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
HEX = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def doc(value):
    # Placeholders for sizes stand where numbers go: "$CFGSIZE" -> $CFGSIZE.
    text = json.dumps(value, separators=(",", ":"))
    for token in ("$CFGSIZE", "$LAYERSIZE", "$MANSIZE"):
        text = text.replace('"%s"' % token, token)
    return text.encode()


def manifest_seeds():
    oci = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": "$CFG", "size": "$CFGSIZE"},
        "layers": [{"mediaType": OCI_LAYER_GZ, "digest": "$LAYER", "size": "$LAYERSIZE"}],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    docker = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": "$CFG", "size": "$CFGSIZE"},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": "$LAYER", "size": "$LAYERSIZE"}],
    }
    no_layers = dict(oci, layers=[])
    archive_paths = [{
        "Config": "blobs/sha256/$CFGHEX",
        "RepoTags": ["fuzz/docker:1", "localhost:5000/fuzz/docker:2"],
        "Layers": ["blobs/sha256/$LAYERHEX"],
    }]
    archive_legacy = [{"Config": "fuzz.json", "RepoTags": None, "Layers": ["fuzz/layer.tar"]}]
    return {
        "oci": doc(oci),
        "docker_v2": doc(docker),
        "no_layers": doc(no_layers),
        "docker_archive": doc(archive_paths),
        "docker_archive_legacy": doc(archive_legacy),
    }


def index_seeds():
    entry = {"mediaType": OCI_MANIFEST, "digest": "$MAN", "size": "$MANSIZE"}
    oci = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [dict(entry, platform={"architecture": "amd64", "os": "linux"},
                           annotations={"io.containerd.image.name": "docker.io/fuzz/index:1",
                                        "org.opencontainers.image.ref.name": "1"})],
    }
    docker_list = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            dict(entry, mediaType=DOCKER_MANIFEST, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
            dict(entry, mediaType=DOCKER_MANIFEST, platform={"architecture": "amd64", "os": "linux"}),
            {"mediaType": OCI_MANIFEST, "digest": "sha256:" + HEX, "size": 566,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ],
    }
    no_platform = {"schemaVersion": 2, "manifests": [dict(entry, annotations={"org.opencontainers.image.ref.name": "fuzz/x:3"})]}
    nested = {"schemaVersion": 2, "manifests": [{"mediaType": OCI_INDEX, "digest": "sha256:" + HEX, "size": 10}, entry]}
    return {"oci": doc(oci), "docker_list": doc(docker_list), "no_platform": doc(no_platform), "nested": doc(nested)}


def config_seeds():
    full = {
        "created": "2024-01-01T00:00:00Z",
        "author": "fuzz",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "fuzz:wheel",
            "ExposedPorts": {"80/tcp": {}},
            "Env": ["PATH=/usr/bin:/bin", "A=1"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hi"],
            "Volumes": {"/data": {}},
            "WorkingDir": "/srv",
            "Labels": {"k": "v"},
            "StopSignal": "SIGTERM",
        },
        "rootfs": {"type": "layers", "diff_ids": ["$DIFF"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD x /", "empty_layer": False}],
    }
    # oci-spec 0.7 (so Hull) requires `history`, which the image spec makes optional.
    no_history = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["$DIFF"]}}
    minimal = dict(no_history, history=[])
    numeric = dict(minimal, config={"User": "1000:10", "Cmd": ["sh"], "WorkingDir": "relative"})
    arm = dict(minimal, architecture="arm64", variant="v8", config={"User": "root", "Entrypoint": ["/bin/busybox"]})
    return {"full": doc(full), "minimal": doc(minimal), "no_history": doc(no_history),
            "numeric_user": doc(numeric), "arm64": doc(arm)}


def reference_seeds():
    names = [
        "busybox", "busybox:1.36", "library/busybox:latest", "docker.io/library/alpine:3",
        "index.docker.io/someone/tool", "localhost:5000/a/b:tag", "localhost/x",
        "ghcr.io/o/r:v1@sha256:" + HEX, "example.com:443/a/b/c@sha256:" + HEX,
        "sha256:" + HEX, HEX, "UPPER/case", "a_b.c-d/e__f:Tag-1.0", "[::1]:5000/x:1",
        "linux/arm64/v8", "linux/x86_64", "windows",
    ]
    return {"%02d" % i: n.encode() for i, n in enumerate(names)}


def template_seeds():
    rows = {"ID": "0123", "Names": ["a", "b"], "State": {"Status": "up"}, "Labels": {"x": "y"}}
    return {
        "ps": b"{{.ID}}\\t{{.Image}}\\t{{.Status}}",
        "table": b"table {{.Names}}\\t{{.Status}}\\n",
        "json": b"json",
        "range": b"{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
        "funcs": b'{{json .Config}} {{upper .State.Status}} {{lower .Name}} {{len .Config.Env}} {{title .Names}} {{join .Config.Env ","}}',
        "nested": b"{{range .Nested}}[{{range .}}{{.}},{{end}}]{{end}}{{.Nested.x.y}}",
        "with_data": b'{{range .Names}}{{.}} {{end}}{{json .Labels}}\x00' + json.dumps(rows).encode(),
    }


def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            info.mtime = info.mtime or 1700000000
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue().rstrip(b"\0")
    raw += b"\0" * (-len(raw) % 512)
    return raw + b"\0" * 1024


def member(name, kind=tarfile.REGTYPE, data=None, mode=0o644, link="", **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    if data is not None:
        info.size = len(data)
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


def unpack_seeds():
    basic = tar_bytes([
        member("./", tarfile.DIRTYPE, mode=0o755),
        member("etc/", tarfile.DIRTYPE, mode=0o755),
        member("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nfuzz:x:1000:1000::/home/fuzz:/bin/sh\n"),
        member("etc/group", data=b"root:x:0:\nfuzz:x:1000:\n"),
        member("bin/sh", data=b"#!binary\n", mode=0o4755, uid=0, gid=0),
        member("bin/ash", tarfile.SYMTYPE, link="sh", mode=0o777),
        member("bin/busybox", tarfile.LNKTYPE, link="bin/sh"),
        member("home/fuzz/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
        member("ro/", tarfile.DIRTYPE, mode=0o500),
        member("ro/file", data=b"x"),
    ])
    whiteouts = tar_bytes([
        member("dir/", tarfile.DIRTYPE, mode=0o755),
        member("dir/.wh..wh..opq", data=b""),
        member("dir/.wh.gone", data=b""),
        member(".wh..wh.plnk/", tarfile.DIRTYPE),
        member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        member("dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
        member("run/fifo", tarfile.FIFOTYPE, mode=0o600),
        member("dir/replaced", data=b"first"),
        member("dir/replaced", tarfile.SYMTYPE, link="/etc/shadow"),
    ])
    long_name = "d/" + "n" * 150 + "/" + "f" * 120
    pax = tar_bytes([
        member(long_name, data=b"long", pax_headers={"uid": "70000", "gid": "70001", "mtime": "1700000000.5"}),
        member("l", tarfile.SYMTYPE, link="t" * 200, pax_headers={"SCHILY.xattr.security.capability": "x"}),
    ], fmt=tarfile.PAX_FORMAT)
    gnu_long = tar_bytes([member("g/" + "x" * 180, data=b"gnu"), member("h" * 101, tarfile.LNKTYPE, link="g/" + "x" * 180)])
    hostile = [
        tar_bytes([member("../escape", data=b"x")]),
        tar_bytes([member("/abs", data=b"x")]),
        tar_bytes([
            member("link", tarfile.SYMTYPE, link="/"),
            member("link/tmp/owned", data=b"x"),
        ]),
        tar_bytes([
            member("up", tarfile.SYMTYPE, link="../../.."),
            member("up/owned", data=b"x"),
            member("hard", tarfile.LNKTYPE, link="../outside"),
            member("dot/.wh...", data=b""),
        ]),
    ]
    seeds = {
        "basic": basic,
        "basic.gz": gzip.compress(basic, mtime=0),
        "whiteouts": whiteouts,
        "pax": pax,
        "gnu_long": gnu_long,
        "whiteouts.gz": gzip.compress(whiteouts, mtime=0),
    }
    for i, data in enumerate(hostile):
        seeds["hostile%d" % i] = data
    return seeds


SEEDS = {
    "manifest": manifest_seeds(),
    "index": index_seeds(),
    "config": config_seeds(),
    "reference": reference_seeds(),
    "template": template_seeds(),
    "unpack": unpack_seeds(),
}

for target, seeds in SEEDS.items():
    directory = os.path.join(HERE, "seeds", target)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
