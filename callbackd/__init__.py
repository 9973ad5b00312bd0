"""The callbackd process: the command and what it runs, above every layer."""
