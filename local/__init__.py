"""Local development helpers: stand-ins for the services the Lambda talks to."""
