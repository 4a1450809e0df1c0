"""Decoders that misbehave for real, for the containment tests. They run inside the rendering
child processes (so they must be importable by name there)."""

from __future__ import annotations

import os
import signal
import sys
import time

from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.core.transform import TransformRequest, Variant
from imgpipe.engine import render_unhashed
from imgpipe.engine.transform import transform


def hang(data: bytes, options: RenderOptions) -> RenderResult:
    if data.startswith(b"HANG"):
        time.sleep(3600)
    return render_unhashed(data, options)


def crash(data: bytes, options: RenderOptions) -> RenderResult:
    if data.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return render_unhashed(data, options)


def hoard(data: bytes, options: RenderOptions) -> RenderResult:
    if data.startswith(b"HOARD"):
        chunks = []
        while True:  # until the address-space limit says no
            chunks.append(bytearray(64 * 1024 * 1024))
    return render_unhashed(data, options)


def render_and_list_modules(data: bytes, options: RenderOptions) -> RenderResult:
    """Not a misbehaving one: renders as a rendering process does (render_unhashed), and adds
    to the facts which modules the process has imported by then (the test of what a
    rendering process loads)."""
    result = render_unhashed(data, options)
    return result._replace(facts={**result.facts, "modules": sorted(sys.modules)})


def crash_transform(data: bytes, request: TransformRequest) -> Variant:
    if data.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return transform(data, request)


def hang_transform(data: bytes, request: TransformRequest) -> Variant:
    if data.startswith(b"HANG"):
        time.sleep(3600)
    return transform(data, request)


def transform_and_list_modules(data: bytes, request: TransformRequest) -> Variant:
    """Not a misbehaving one: transforms as a rendering process does, and hands back, in
    place of the image's bytes, the modules the process has imported by then."""
    variant = transform(data, request)
    return variant._replace(data="\n".join(sorted(sys.modules)).encode())
