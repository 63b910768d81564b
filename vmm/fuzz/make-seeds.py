#!/usr/bin/env python3
"""Writes seed inputs (valid requests) for the fuzz targets into seeds/.

Input layout (see fuzz_targets/common.rs): 6 parameter bytes for the first
queue, 6 for the second, then the guest memory image: descriptor table at
0, available ring at 0x100, used ring at 0x1000, buffers from 0x2000.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PARAMS = bytes([4, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0])  # 16 entries, usual layout


def image(descs, extra):
    mem = bytearray(0x2800)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        mem[i * 16:(i + 1) * 16] = struct.pack('<QIHH', addr, length, flags, nxt)
    mem[0x100:0x106] = struct.pack('<HHH', 0, 1, 0)  # flags, idx=1, ring[0]=0
    for off, data in extra.items():
        mem[off:off + len(data)] = data
    return PARAMS + bytes(mem)


def vsock_header(op, length):
    return struct.pack('<QQIIIHHIII', 3, 2, 1000, 5000, length, 1, op, 0, 4096, 0)


SEEDS = {
    'blk_queue': {
        'write': image([(0x2000, 16, 1, 1), (0x2100, 512, 1, 2), (0x2400, 1, 2, 0)],
                       {0x2000: struct.pack('<IIQ', 1, 0, 1)}),
        'read': image([(0x2000, 16, 1, 1), (0x2100, 512, 3, 2), (0x2400, 1, 2, 0)],
                      {0x2000: struct.pack('<IIQ', 0, 0, 1)}),
    },
    'vsock_queue': {
        'request': image([(0x2000, 44, 0, 0)], {0x2000: vsock_header(1, 0)}),
        'rw': image([(0x2000, 48, 0, 0)], {0x2000: vsock_header(5, 4) + b'data'}),
    },
    'net_queue': {
        'frame': image([(0x2000, 12, 1, 1), (0x2100, 60, 0, 0)], {}),
    },
}

for target, seeds in SEEDS.items():
    os.makedirs(os.path.join(HERE, 'seeds', target), exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(HERE, 'seeds', target, name), 'wb') as f:
            f.write(data)
