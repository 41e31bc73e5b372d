"""The `sagsflow` command line: every command is registered in cli/main.py."""
