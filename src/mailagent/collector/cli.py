"""Sub-commands of this area (filled in by the area's own work)."""


def register(subparsers) -> None:
    return None
