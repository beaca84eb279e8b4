from autoquant.cli import entry

entry()
