"""``cxr``: every verb of the project in one place, one subcommand each.

Each verb's own parser (its flags, its help) lives beside the code it runs; this table
names them and imports a verb's module only when it is called, so ``cxr users list``
never loads TensorFlow. ``cxr --help`` lists the verbs; ``cxr VERB --help`` its flags.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    module: str  # the module whose ``main(argv) -> int`` runs the verb
    summary: str
    function: str = "main"


VERBS: dict[str, Verb] = {
    "ingest": Verb("services.ingest", "queue files, folders and zips for analysis"),
    "worker": Verb("services.worker", "process the queue: analyse studies, store their results"),
    "pacs": Verb("services.pacs.service", "the PACS service: receiver, results built and sent to the PACS"),
    "receiver": Verb("services.pacs.receiver", "DICOM Storage SCP alone (C-STORE, C-ECHO)"),
    "outbox": Verb("cli.outbox", "results for the PACS that failed: list, resend"),
    "predict": Verb("cli.predict", "run the model on files and print JSON"),
    "labels": Verb("services.reference_labels", "import reference labels (NIH format)"),
    "users": Verb("db.users", "create, disable, enable, list accounts"),
    "migrate": Verb("db.migrate", "upgrade the database to the latest schema"),
    "backup": Verb("db.backup", "online backup of the SQLite database, or restore"),
    "retrain": Verb("cli.models", "refit the current model's head on the site's reads", "retrain_main"),
    "models": Verb("cli.models", "list, compare, promote, shadow and roll back model versions"),
    "train": Verb("training.train", "train a model folder"),
    "evaluate": Verb("training.evaluate", "evaluate a model folder on labelled images"),
    "compare-runs": Verb("training.compare_runs", "compare training runs on the same split"),
    "domain-check": Verb("training.domain_check", "check the out-of-domain gate"),
    "pretrained": Verb("training.pretrained", "convert the ImageNet checkpoint to Keras weights"),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {name.ljust(width)}  {verb.summary}" for name, verb in VERBS.items()]
    return "usage: cxr VERB [ARGS...]\n\nverbs:\n" + "\n".join(lines) + "\n\n`cxr VERB --help` for a verb's flags."


def resolve(name: str) -> Callable[[list[str]], int]:
    verb = VERBS[name]
    return getattr(importlib.import_module(verb.module), verb.function)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in VERBS:
        print(f"cxr: unknown verb {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return int(resolve(name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
