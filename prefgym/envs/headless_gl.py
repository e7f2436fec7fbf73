"""Pick a working OpenGL backend for MuJoCo ``rgb_array`` rendering on a machine without a display.

Gymnasium's MuJoCo renderer reads ``MUJOCO_GL`` when it creates its first
context. Unset, it tries ``glfw`` first, which needs a display; on a headless
machine that attempt binds PyOpenGL to the wrong platform and the process
aborts. :func:`ensure_mujoco_gl` runs before the first MuJoCo frame: when
``MUJOCO_GL`` is unset and there is no display, it tries ``egl`` then
``osmesa``, each in a short-lived subprocess (a failed attempt cannot be
undone inside this process), and sets ``MUJOCO_GL`` (and
``PYOPENGL_PLATFORM``) to the first that draws. Child processes (SB3's
``SubprocVecEnv`` workers, Gymnasium's async vector envs) inherit the choice.
A ``MUJOCO_GL`` the user set is never changed.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["HEADLESS_BACKENDS", "ensure_mujoco_gl", "has_display", "headless_gl_failures"]

HEADLESS_BACKENDS = ("egl", "osmesa")
_PROBE = (
    "import os, sys; backend = sys.argv[1]; os.environ['MUJOCO_GL'] = backend; "
    "os.environ.setdefault('PYOPENGL_PLATFORM', backend); "
    "import importlib; ctx = importlib.import_module('mujoco.' + backend).GLContext(8, 8); "
    "ctx.make_current(); ctx.free()"
)
_failures: dict[str, str] = {}


def has_display() -> bool:
    """Whether a window system is reachable (always True off Linux, where MuJoCo uses its own default)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _probe(backend: str, timeout: float) -> str | None:
    """None if ``backend`` creates a MuJoCo GL context in a fresh process, else the reason it failed."""
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE, backend], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if run.returncode == 0:
        return None
    lines = (run.stderr or run.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {run.returncode}"


def ensure_mujoco_gl(timeout: float = 30.0) -> str | None:
    """Set ``MUJOCO_GL`` to a working headless backend when it is unset and there is no display.

    Returns
    -------
    str or None
        The backend in use (``MUJOCO_GL`` after the call), or None when there
        is a display (MuJoCo's own default then applies) or no headless
        backend works; :func:`headless_gl_failures` then says why.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen or has_display():
        return chosen or None
    if "OpenGL" in sys.modules:  # PyOpenGL is bound to a platform already: follow it
        platform = os.environ.get("PYOPENGL_PLATFORM")
        if platform in HEADLESS_BACKENDS:
            os.environ["MUJOCO_GL"] = platform
            return platform
    for backend in HEADLESS_BACKENDS:
        if backend in _failures:
            continue
        reason = _probe(backend, timeout)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            if os.environ.get("PYOPENGL_PLATFORM") in (None, ""):
                os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        _failures[backend] = reason
    return None


def headless_gl_failures() -> dict[str, str]:
    """Why each headless backend failed in :func:`ensure_mujoco_gl` (empty if none was tried or one works)."""
    return dict(_failures)
