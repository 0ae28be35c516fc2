"""Registry of subcommands, in pipeline order. Add a new command module here."""

from __future__ import annotations

import importlib

import typer

# (command name, module under srpsa.cli). A module exposes `command` (a function) or `app` (a group).
COMMANDS: list[tuple[str, str]] = [
    ("synth", "synth"),
    ("register", "register"),
    ("prepare", "prepare"),
    ("analyze", "analyze"),
    ("evaluate", "evaluate"),
    ("train", "train"),
]


def register(app: typer.Typer) -> None:
    for name, module_name in COMMANDS:
        module = importlib.import_module(f"srpsa.cli.{module_name}")
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name)
        else:
            app.command(name)(module.command)
