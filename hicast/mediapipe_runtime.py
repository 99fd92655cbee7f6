"""Lazy access to the optional mediapipe extra (0.10.21 wheels carry the pose and selfie models)."""

INSTALL_HINT = ("install the optional extra: pip install --no-deps -r requirements-extras.txt "
                "(mediapipe 0.10.21; later wheels ship no models)")


def solutions(feature):
    """Return mediapipe.solutions, or raise naming FEATURE and the install command."""
    try:
        import mediapipe as mp
    except ImportError as e:
        raise RuntimeError(f"HiCAST {feature} needs mediapipe, which is not installed ({e}); {INSTALL_HINT}") from e
    if not hasattr(mp, "solutions"):
        raise RuntimeError(f"HiCAST {feature}: mediapipe {getattr(mp, '__version__', '?')} has no bundled "
                           f"solutions models; {INSTALL_HINT}")
    return mp.solutions
