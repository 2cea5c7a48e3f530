"""Devin's API: the client, the prompt and messages it receives, the composer that writes them, and routing."""
