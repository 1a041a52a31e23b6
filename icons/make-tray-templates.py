#!/usr/bin/env python3
"""Makes the macOS menu-bar ("template") versions of the tray icons: tray-<state>-template.png.

macOS draws a menu-bar template image from its alpha channel alone, in the bar's own colour, so
a coloured disc with a white glyph would show as a plain disc. Here the disc stays opaque black
and the light glyph becomes a hole, so each state keeps its shape. Run from icons/ after changing
a tray icon: `python3 make-tray-templates.py` (standard library only).
"""
import struct
import zlib

STATES = ["idle", "syncing", "paused", "error"]


def read_rgba(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 6, 0), f"{path}: only 8-bit RGBA, not interlaced"
    raw, stride, rows, prev = zlib.decompress(idat), width * 4, [], bytearray(width * 4)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 4] if i >= 4 else 0
            b, c = prev[i], prev[i - 4] if i >= 4 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, rows


def write_rgba(path, width, height, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def template(rows):
    out = []
    for row in rows:
        line = bytearray(len(row))
        for i in range(0, len(row), 4):
            r, g, b, a = row[i : i + 4]
            # The glyph is white, the disc a saturated or grey colour (its darkest channel is at
            # most ~0.45): light pixels become transparent, antialiased edges in between.
            light = min(max((min(r, g, b) / 255 - 0.6) / 0.3, 0.0), 1.0)
            line[i + 3] = round(a * (1 - light))
        out.append(line)
    return out


for state in STATES:
    width, height, rows = read_rgba(f"tray-{state}.png")
    write_rgba(f"tray-{state}-template.png", width, height, template(rows))
