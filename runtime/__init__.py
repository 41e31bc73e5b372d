"""Runtime plumbing shared by every process: configuration, logging, crypto, the Temporal client, embedded servers."""
